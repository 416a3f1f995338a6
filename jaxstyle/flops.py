"""Multiply-accumulate counting from a function's jaxpr.

Counts the MACs of convolutions and matrix products, the convention used for
CNN cost tables (elementwise work, norms and padding are not counted).
"""

from typing import Any, Callable

import jax
from jax.extend import core as jex_core
import numpy as np


def _eqn_macs(eqn) -> int:
  prim = eqn.primitive.name
  if prim == "conv_general_dilated":
    out = eqn.outvars[0].aval.shape
    rhs = eqn.invars[1].aval.shape
    dn = eqn.params["dimension_numbers"]
    # rhs_spec = (out_feature_dim, in_feature_dim, *spatial_dims)
    kernel_in = rhs[dn.rhs_spec[1]]
    kernel_spatial = int(np.prod([rhs[d] for d in dn.rhs_spec[2:]]))
    # For grouped/depthwise convolutions the kernel's input dim is already C_in/groups.
    return int(np.prod(out)) * kernel_spatial * kernel_in
  if prim == "dot_general":
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    contract = int(np.prod([lhs[d] for d in lhs_contract]))
    return int(np.prod(eqn.outvars[0].aval.shape)) * contract
  return 0


def _sub_jaxprs(params):
  """Jaxprs nested in an equation's params (jit, custom_jvp, scan, cond...)."""
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jex_core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jex_core.Jaxpr):
        yield item


def _jaxpr_macs(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    total += _eqn_macs(eqn)
    for sub in _sub_jaxprs(eqn.params):
      total += _jaxpr_macs(sub)
  return total


def count_macs(fn: Callable[..., Any], *args, **kwargs) -> int:
  """MACs of one call of `fn(*args, **kwargs)` (args may be ShapeDtypeStructs)."""
  closed = jax.make_jaxpr(fn)(*args, **kwargs)
  return _jaxpr_macs(closed.jaxpr)
