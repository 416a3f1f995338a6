"""Simulated float16 inference against numpy float16 rounding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.models import half_precision


def _f16(x):
  with np.errstate(over="ignore"):
    return np.asarray(x, np.float64).astype(np.float16).astype(np.float64)


def test_round_to_fp16_values_and_relative_gradient():
  x = jnp.asarray([0.0, 1.0, 1 + 2**-12 + 2**-20, -3.14159, 1e-3, 70000.0], jnp.float32)
  got = half_precision.round_to_fp16(x)
  np.testing.assert_allclose(np.asarray(got), _f16(x), rtol=1e-6)
  assert not np.isfinite(np.asarray(got)[-1])  # beyond float16's range: inf, as on device
  grad = jax.grad(lambda v: jnp.sum(half_precision.round_to_fp16(v)))(x[:-1])
  # d/dx of x · (r(x)/x held constant) is r(x)/x: 1 at 0, within 2^-11 of 1 elsewhere.
  want = np.where(np.asarray(x[:-1]) == 0, 1.0, _f16(x[:-1]) / np.where(x[:-1] == 0, 1, x[:-1]))
  np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-6)
  assert np.all(np.abs(np.asarray(grad) - 1) <= half_precision.UNIT_ROUNDOFF)


def test_apply_fp16_rounds_weights_input_and_every_layer_output():
  model = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(3)])
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 7)), jnp.float32)
  params = model.init(jax.random.key(0), x)["params"]
  got = np.asarray(half_precision.apply_fp16(model, params, x), np.float64)
  p = jax.tree.map(lambda v: _f16(v), params)
  h = _f16(_f16(x) @ p["layers_0"]["kernel"] + p["layers_0"]["bias"])
  want = _f16(np.maximum(h, 0) @ p["layers_2"]["kernel"] + p["layers_2"]["bias"])
  # Dense computes in float32 before rounding: at most one float16 step apart.
  np.testing.assert_allclose(got, want, rtol=2 * half_precision.UNIT_ROUNDOFF, atol=1e-7)
  exact = np.asarray(model.apply({"params": params}, x), np.float64)
  assert 0 < np.abs(got - exact).max() < 1e-2
