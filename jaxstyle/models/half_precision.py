"""Runs a network as a float16 deployment would, inside float32 training.

A Core ML fp16 package stores the weights and every op's output in float16.
Training can measure (and penalize, config.loss.stability_perturbation='fp16')
what that does to the output by rounding the same values here: the weights, the
input and each submodule's output. The rounding error is held as a relative
error, x · r(x)/x with the ratio a constant: its gradient then scales with x,
as the real error does. (A straight-through round trip would hold the absolute
error fixed, and a penalty could then shrink it by growing the activations
before an instance norm: free in float32, useless on device.) Ops inside one
module (e.g. the steps of an instance norm) are not rounded one by one, so
this slightly underestimates the package's error; the export's MIL
interpreter rounds after every op.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Half the spacing of float16 numbers in [1, 2): the largest relative rounding
# error.
UNIT_ROUNDOFF = 2.0**-11


def round_to_fp16(tree: Any) -> Any:
  """Every floating leaf rounded to the nearest float16, kept in its dtype;
  the gradient is that of x · (a constant relative rounding factor)."""
  def round_leaf(x):
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
      return x
    rounded = x.astype(jnp.float16).astype(x.dtype)
    factor = jnp.where(x == 0, jnp.ones_like(x), rounded / jnp.where(x == 0, 1, x))
    return x * jax.lax.stop_gradient(factor)
  return jax.tree.map(round_leaf, tree)


def apply_fp16(model: nn.Module, params: Any, images: jax.Array,
               condition: jax.Array | None = None) -> jax.Array:
  """`model.apply` with weights, input, every submodule output and the result
  rounded to float16 (and the condition of a multi-style network, if any)."""
  def round_outputs(next_fun, args, kwargs, context):
    return round_to_fp16(next_fun(*args, **kwargs))
  extra = () if condition is None else (round_to_fp16(condition),)
  with nn.intercept_methods(round_outputs):
    out = model.apply({"params": round_to_fp16(params)}, round_to_fp16(images), *extra)
  return round_to_fp16(out)
