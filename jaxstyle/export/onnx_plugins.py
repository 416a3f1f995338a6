"""jax2onnx lowerings for jaxstyle's reflect and edge padding, nearest
upsampling and space-to-depth / depth-to-space.

Without them jax2onnx traces `jnp.pad(mode='reflect')` into slices, reversals
and `Range` chains (which also need the image size known at trace time), and
broadcast+reshape upsampling into `Expand`/`Reshape` with computed shapes.
While `to_onnx` traces, each plugin swaps the function in
`jaxstyle.models.layers` for a primitive that becomes one ONNX op: `Pad` with
mode 'reflect' or 'edge' and `Resize` (nearest, integer scales). Outside export the
primitives evaluate with the layers' own code, so a traced function still runs.
The block rearrangements become `SpaceToDepth` / `DepthToSpace` (DCR) between
NHWC↔NCHW transposes, which the NCHW rewrite cancels; traced as reshapes they
would need rank-6 tensors (Core ML stops at rank 5) and concrete sizes.
"""

import jax
from jax.extend.core import Primitive
from jax.interpreters import mlir
import numpy as np

from jax2onnx.plugins._patching import MonkeyPatchSpec
from jax2onnx.plugins.plugin_system import PrimitiveLeafPlugin, register_primitive

from jaxstyle.models import layers

_LAYERS = "jaxstyle.models.layers"

pad_p = Primitive("jaxstyle_pad")  # reflect or edge, H and W
upsample_nearest_p = Primitive("jaxstyle_upsample_nearest")
space_to_depth_p = Primitive("jaxstyle_space_to_depth")
depth_to_space_p = Primitive("jaxstyle_depth_to_space")


# The layers' own functions, taken before any export patches them: what the
# primitives compute outside export. A rename in layers.py fails here, not by
# silently exporting the slow form.
_PATCHED = ("reflect_pad", "edge_pad", "upsample_nearest", "space_to_depth", "depth_to_space")
_missing = [n for n in _PATCHED if not callable(getattr(layers, n, None))]
if _missing:
  raise ImportError(f"jaxstyle.models.layers.{_missing} gone: update jaxstyle/export/onnx_plugins.py")
_LAYER_FN = {name: getattr(layers, name) for name in _PATCHED}

_IMPLS = {
    pad_p: lambda x, *, pad, mode: _LAYER_FN[f"{mode}_pad"](x, pad),
    upsample_nearest_p: lambda x, *, factor: _LAYER_FN["upsample_nearest"](x, factor),
    space_to_depth_p: lambda x, *, block: _LAYER_FN["space_to_depth"](x, block),
    depth_to_space_p: lambda x, *, block: _LAYER_FN["depth_to_space"](x, block),
}
for _prim, _impl in _IMPLS.items():
  _prim.def_impl(_impl)
  mlir.register_lowering(_prim, mlir.lower_fun(_impl, multiple_results=False))


def _replace(name, function):
  """Swaps `layers.<name>` for `function` while jax2onnx traces."""
  return MonkeyPatchSpec(_LAYERS, name, lambda orig: function)


def _bind_output(ctx, eqn, value):
  spec = ctx.get_value_for_var(eqn.outvars[0])
  value.type, value.shape = spec.type, spec.shape
  ctx.bind_value_for_var(eqn.outvars[0], value)


def _constant(ctx, name, array):
  return ctx.builder.add_initializer_from_array(name=ctx.fresh_name(name), array=array)


@register_primitive(jaxpr_primitive=pad_p.name, since="jaxstyle",
                    context="primitives.jaxstyle", component="pad",
                    onnx=[{"component": "Pad"}], testcases=[])
class PadPlugin(PrimitiveLeafPlugin):
  """`layers.reflect_pad` / `layers.edge_pad` (NHWC, H and W) → one ONNX `Pad`
  with mode 'reflect' / 'edge'."""
  _PRIM = pad_p

  @staticmethod
  def abstract_eval(x, *, pad, mode):
    b, h, w, c = x.shape
    return jax.core.ShapedArray((b, h + 2 * pad, w + 2 * pad, c), x.dtype)

  def lower(self, ctx, eqn):
    p = eqn.params["pad"]
    x = ctx.get_value_for_var(eqn.invars[0])
    pads = _constant(ctx, "pads", np.array([0, p, p, 0, 0, p, p, 0], np.int64))
    _bind_output(ctx, eqn, ctx.builder.Pad(x, pads, mode=eqn.params["mode"],
                                           _outputs=[ctx.fresh_name(f"{eqn.params['mode']}_pad")]))

  @classmethod
  def binding_specs(cls):
    def pad(mode):
      return lambda x, pad: x if pad == 0 else pad_p.bind(x, pad=int(pad), mode=mode)
    return [_replace("reflect_pad", pad("reflect")), _replace("edge_pad", pad("edge"))]


@register_primitive(jaxpr_primitive=upsample_nearest_p.name, since="jaxstyle",
                    context="primitives.jaxstyle", component="upsample_nearest",
                    onnx=[{"component": "Resize"}], testcases=[])
class UpsampleNearestPlugin(PrimitiveLeafPlugin):
  """`layers.upsample_nearest(x, f)` (NHWC) → ONNX `Resize` (nearest, scales 1,f,f,1)."""
  _PRIM = upsample_nearest_p

  @staticmethod
  def abstract_eval(x, *, factor):
    b, h, w, c = x.shape
    return jax.core.ShapedArray((b, h * factor, w * factor, c), x.dtype)

  def lower(self, ctx, eqn):
    f = float(eqn.params["factor"])
    x = ctx.get_value_for_var(eqn.invars[0])
    roi = _constant(ctx, "resize_roi", np.zeros((0,), np.float32))
    scales = _constant(ctx, "resize_scales", np.array([1, f, f, 1], np.float32))
    _bind_output(ctx, eqn, ctx.builder.Resize(
        x, roi, scales, mode="nearest", coordinate_transformation_mode="asymmetric",
        nearest_mode="floor", _outputs=[ctx.fresh_name("upsample_nearest")]))

  @classmethod
  def binding_specs(cls):
    return [_replace("upsample_nearest",
                     lambda x, factor=2: upsample_nearest_p.bind(x, factor=int(factor)))]


def _nchw_wrapped(ctx, eqn, op, **attrs):
  """NHWC x → Transpose → `op` (defined on NCHW) → Transpose → NHWC output."""
  x = ctx.get_value_for_var(eqn.invars[0])
  t = ctx.builder.Transpose(x, perm=[0, 3, 1, 2], _outputs=[ctx.fresh_name("to_nchw")])
  y = getattr(ctx.builder, op)(t, _outputs=[ctx.fresh_name(op.lower())], **attrs)
  _bind_output(ctx, eqn, ctx.builder.Transpose(y, perm=[0, 2, 3, 1],
                                               _outputs=[ctx.fresh_name("to_nhwc")]))


@register_primitive(jaxpr_primitive=space_to_depth_p.name, since="jaxstyle",
                    context="primitives.jaxstyle", component="space_to_depth",
                    onnx=[{"component": "SpaceToDepth"}], testcases=[])
class SpaceToDepthPlugin(PrimitiveLeafPlugin):
  """`layers.space_to_depth(x, b)` (NHWC) → ONNX `SpaceToDepth` on NCHW."""
  _PRIM = space_to_depth_p

  @staticmethod
  def abstract_eval(x, *, block):
    b, h, w, c = x.shape
    return jax.core.ShapedArray((b, h // block, w // block, c * block * block), x.dtype)

  def lower(self, ctx, eqn):
    _nchw_wrapped(ctx, eqn, "SpaceToDepth", blocksize=eqn.params["block"])

  @classmethod
  def binding_specs(cls):
    return [_replace("space_to_depth",
                     lambda x, block: space_to_depth_p.bind(x, block=int(block)))]


@register_primitive(jaxpr_primitive=depth_to_space_p.name, since="jaxstyle",
                    context="primitives.jaxstyle", component="depth_to_space",
                    onnx=[{"component": "DepthToSpace"}], testcases=[])
class DepthToSpacePlugin(PrimitiveLeafPlugin):
  """`layers.depth_to_space(x, b)` (NHWC) → ONNX `DepthToSpace` (DCR) on NCHW."""
  _PRIM = depth_to_space_p

  @staticmethod
  def abstract_eval(x, *, block):
    b, h, w, c = x.shape
    return jax.core.ShapedArray((b, h * block, w * block, c // (block * block)), x.dtype)

  def lower(self, ctx, eqn):
    _nchw_wrapped(ctx, eqn, "DepthToSpace", blocksize=eqn.params["block"], mode="DCR")

  @classmethod
  def binding_specs(cls):
    return [_replace("depth_to_space",
                     lambda x, block: depth_to_space_p.bind(x, block=int(block)))]
