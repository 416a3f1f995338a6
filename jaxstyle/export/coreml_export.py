"""Core ML ML Program (.mlpackage) from the exporter's NCHW ONNX graph.

A translator of our own onto coremltools' MIL builder (coremltools 9 has no
ONNX frontend, and onnx2coreml 1.1 mis-lowers NHWC Resize, inflates Expand
and cannot take the Range chains of traced reflect padding). The ONNX it reads
is `onnx_export.trace(io='nchw')`: after the rewrites there every tensor is
NCHW, so each ONNX op maps to native MIL ops one to one:

  Conv → conv (groups for depthwise)         Pad(reflect) → pad(mode='reflect')
  Resize(nearest, ×k) → upsample_nearest_neighbor   Concat → concat
  InstanceNormalization → reduce_mean, sub, mul, reduce_mean, rsqrt, mul, add
  Relu/Sigmoid/Log/Add/Sub/Mul/Div/Max/Sqrt/Transpose/Identity → same-named ops
  Clip (constant bounds) → clip (the photo skip's logits, unet.logit)
  Gemm → linear, Reshape → reshape, ReduceSum → reduce_sum (a multi-style
  network's style weights → per-channel scale and bias)

Instance norm is kept in that mean-based form (not MIL `instance_norm`): every
intermediate is an fp16 tensor whose value this repository's interpreter
checks (mil_interpreter), where the fused op's internal sums in fp16 on a
device are not something Linux can verify; coremltools' fusion pass that would
fold it back is removed from the pipeline for that reason.

Input `image`: ct.ImageType RGB, 1×3×H×W, pixel values 0–255 scaled by 1/255 in
the model; output `stylized`: RGB image (the network's [0, 1] output × 255).
H and W range over 64…2048 (RangeDim) and must be multiples of the network's
size multiple. A multi-style network also takes `style_weights` (MultiArray
[N]) and, with strength control, `strength` (MultiArray [1]).
"""

import contextlib
import io

import numpy as np
import onnx
from onnx import numpy_helper

from jaxstyle.export.errors import ExportError
from jaxstyle.export.onnx_graph import attr

MIN_SIZE, MAX_SIZE = 64, 2048
TARGET_NAME = "iOS15 / macOS12"


def _ct():
  try:
    import coremltools as ct
  except ImportError as e:  # not installed where it has no wheel (Linux aarch64)
    raise ExportError(
        f"coreml: coremltools is not installed ({e}); PyPI has no Linux aarch64 wheel of it. "
        "Export Core ML on Linux x86-64 or macOS, or pass --formats onnx,savedmodel") from e
  return ct


# Would fold the mean-based norm back into `instance_norm` (see module doc).
_REMOVED_PASSES = ["common::fuse_layernorm_or_instancenorm"]


def to_mil(proto: onnx.ModelProto, *, target=None):
  """MIL Program (fp32) of an NCHW-io ONNX graph; input 'image', output 'stylized',
  both 0–255 (scaled to and from the network's [0, 1] here)."""
  ct = _ct()
  from coremltools.converters.mil.mil import Builder as mb
  from coremltools.converters.mil.mil import Function, Program, types
  from coremltools.converters.mil.mil.program import get_new_symbol

  target = target or ct.target.iOS15
  graph = proto.graph
  inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
  (inp, *controls), (out,) = graph.input, graph.output
  shape = (1, 3, get_new_symbol(), get_new_symbol())
  centered_pads, centered_rearranged = _centerable_pads(graph, inp.name)
  placeholders = {inp.name: mb.placeholder(shape=shape, dtype=types.fp32)}
  for c in controls:  # style_weights [N], strength [1]: static shapes
    placeholders[c.name] = mb.placeholder(
        shape=tuple(d.dim_value for d in c.type.tensor_type.shape.dim), dtype=types.fp32)
  with Function(placeholders, opset_version=target) as func:
    pixels = func.inputs[inp.name]  # 0–255: integers, exact in fp16
    values = {inp.name: mb.mul(x=pixels, y=np.float32(1 / 255), name="image_scaled")}
    values.update({c.name: func.inputs[c.name] for c in controls})
    centered = {}  # tensor name → its centered version

    def get(name):
      if name in values:
        return values[name]
      if name in inits:
        return np.asarray(inits[name], np.float32) if inits[name].dtype.kind == "f" else inits[name]
      raise ExportError(f"Core ML: tensor {name!r} is used before it is defined")

    for node in graph.node:
      if (node in centered_pads or node in centered_rearranged) and not centered:
        offset = mb.round(x=mb.reduce_mean(x=pixels, axes=[2, 3], keep_dims=True))
        centered[inp.name] = mb.mul(x=mb.sub(x=pixels, y=offset), y=np.float32(1 / 255),
                                    name="image_centered")
      if node in centered_rearranged:
        centered[node.output[0]] = _space_to_depth(mb, node, centered.get, inits)
      if node in centered_pads:
        values[node.output[0]] = _pad(mb, node, centered.get, inits)
        continue
      lower = _LOWERINGS.get(node.op_type)
      if lower is None:
        raise ExportError(
            f"Core ML: ONNX op {node.op_type} (node {node.name or node.output[0]}) has no "
            f"lowering in jaxstyle/export/coreml_export.py; supported: {sorted(_LOWERINGS)}")
      try:
        result = lower(mb, node, get, inits)
      except ExportError:
        raise
      except Exception as e:
        raise ExportError(f"Core ML: lowering ONNX op {node.op_type} (node "
                          f"{node.name or node.output[0]}) failed: {e}") from e
      values[node.output[0]] = result
    func.set_outputs([mb.mul(x=values[out.name], y=np.float32(255.0), name="stylized")])
  prog = Program()
  prog.add_function("main", func)
  return prog


def _centerable_pads(graph, input_name):
  """Pads of the image (or of its `SpaceToDepth`) that feed bias-free
  convolutions normalized right after.

  Those get the image minus its rounded per-channel mean, in 0–255 units, then
  scaled by 1/255. In exact arithmetic that changes nothing (space-to-depth and
  reflect padding keep a per-channel constant a per-channel constant, the
  convolution is linear, instance norm removes per-channel offsets). In fp16 it
  does: x/255 rounds to 1/16 of a gray level, and the first convolution's
  edge-like channels, near zero on smooth regions, are scaled up ~50× by the
  norm; integer differences are exact and small values keep their relative
  precision (max error 0.018 → 0.009 at 2048² on the tiny test model,
  docs/export.md). Returns (pads, the SpaceToDepth nodes between image and pad).
  """
  users = {}
  for n in graph.node:
    for i in n.input:
      users.setdefault(i, []).append(n)
  image_like, rearranged = [input_name], []
  for node in users.get(input_name, []):
    if node.op_type == "SpaceToDepth":
      image_like.append(node.output[0])
      rearranged.append(node)
  found = []
  for pad in (u for name in image_like for u in users.get(name, [])):
    mode = attr(pad, "mode", b"constant")
    if pad.op_type != "Pad" or mode not in (b"reflect", b"edge", "reflect", "edge"):
      continue
    convs = users.get(pad.output[0], [])
    if not all(c.op_type == "Conv" and (len(c.input) < 3 or not c.input[2]) for c in convs):
      continue
    if convs and all(u.op_type == "InstanceNormalization"
                     for c in convs for u in users.get(c.output[0], [])):
      found.append(pad)
  return found, [n for n in rearranged if any(p.input[0] == n.output[0] for p in found)]


def _conv(mb, node, get, inits):
  w = inits.get(node.input[1])
  if w is None:
    raise ExportError(f"Core ML: Conv {node.name} needs a constant kernel")
  pads = list(attr(node, "pads", [0, 0, 0, 0]))
  kwargs = dict(x=get(node.input[0]), weight=np.asarray(w, np.float32),
                strides=list(attr(node, "strides", [1, 1])),
                dilations=list(attr(node, "dilations", [1, 1])),
                groups=int(attr(node, "group", 1)))
  if len(node.input) > 2 and node.input[2]:
    kwargs["bias"] = np.asarray(inits[node.input[2]], np.float32)
  if attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
    raise ExportError(f"Core ML: Conv {node.name} auto_pad is not supported")
  if any(pads):
    kwargs.update(pad_type="custom", pad=[pads[0], pads[2], pads[1], pads[3]])
  else:
    kwargs.update(pad_type="valid")
  return mb.conv(**kwargs)


def _pad(mb, node, get, inits):
  pads = inits[node.input[1]].reshape(2, -1)
  mode = attr(node, "mode", b"constant")
  mode = mode.decode() if isinstance(mode, bytes) else mode
  if pads.shape[1] != 4 or pads[:, :2].any():
    raise ExportError(f"Core ML: Pad {node.name} pads {pads.tolist()}: only H and W of NCHW")
  if mode == "edge":
    mode = "replicate"
  pad = [int(pads[0, 2]), int(pads[1, 2]), int(pads[0, 3]), int(pads[1, 3])]
  kwargs = {}
  if mode == "constant" and len(node.input) > 2 and node.input[2]:
    kwargs["constant_val"] = float(inits[node.input[2]].reshape(()))
  return mb.pad(x=get(node.input[0]), pad=np.array(pad, np.int32), mode=mode, **kwargs)


def _instance_norm(mb, node, get, inits):
  """Mean-based: every value stays O(activation²), finite in fp16."""
  x = get(node.input[0])
  scale = np.asarray(inits[node.input[1]], np.float32).reshape(1, -1, 1, 1)
  bias = np.asarray(inits[node.input[2]], np.float32).reshape(1, -1, 1, 1)
  eps = float(attr(node, "epsilon", 1e-5))
  mean = mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True)
  centered = mb.sub(x=x, y=mean)
  var = mb.reduce_mean(x=mb.mul(x=centered, y=centered), axes=[2, 3], keep_dims=True)
  inv_std = mb.mul(x=mb.rsqrt(x=var, epsilon=eps), y=scale)
  return mb.add(x=mb.mul(x=centered, y=inv_std), y=bias)


def _resize(mb, node, get, inits):
  mode = attr(node, "mode", b"nearest")
  mode = mode.decode() if isinstance(mode, bytes) else mode
  scales = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
  ctm = attr(node, "coordinate_transformation_mode", b"half_pixel")
  ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
  nearest = attr(node, "nearest_mode", b"round_prefer_floor")
  nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
  if (mode != "nearest" or scales is None or list(scales[:2]) != [1, 1]
      or any(s != int(s) for s in scales[2:]) or ctm != "asymmetric" or nearest != "floor"):
    raise ExportError(f"Core ML: Resize {node.name} ({mode}, scales {scales}, {ctm}, {nearest}):"
                      " only nearest upsampling by integer factors")
  return mb.upsample_nearest_neighbor(x=get(node.input[0]), scale_factor_height=int(scales[2]),
                                      scale_factor_width=int(scales[3]))


def _space_to_depth(mb, node, get, inits):
  return mb.space_to_depth(x=get(node.input[0]), block_size=int(attr(node, "blocksize")))


def _depth_to_space(mb, node, get, inits):
  mode = attr(node, "mode", b"DCR")
  mode = mode.decode() if isinstance(mode, bytes) else mode
  x, block = get(node.input[0]), int(attr(node, "blocksize"))
  # MIL depth_to_space orders channels as TensorFlow's DepthToSpace (its TF
  # frontend maps one onto the other), which is ONNX's DCR; pixel_shuffle is
  # PyTorch's, ONNX's CRD.
  if mode == "DCR":
    return mb.depth_to_space(x=x, block_size=block)
  return mb.pixel_shuffle(x=x, upscale_factor=block)


def _binary(op):
  def lower(mb, node, get, inits):
    return getattr(mb, op)(x=get(node.input[0]), y=get(node.input[1]))
  return lower


def _unary(op):
  def lower(mb, node, get, inits):
    return getattr(mb, op)(x=get(node.input[0]))
  return lower


def _reduce(op):
  def lower(mb, node, get, inits):
    axes = (inits[node.input[1]] if len(node.input) > 1 else attr(node, "axes"))
    return getattr(mb, op)(x=get(node.input[0]), axes=[int(a) for a in np.ravel(axes)],
                           keep_dims=bool(attr(node, "keepdims", 1)))
  return lower


def _clip(mb, node, get, inits):
  """Clip with constant bounds (inputs 1, 2; attributes before opset 11)."""
  bounds = []
  for i, key, default in ((1, "min", -np.inf), (2, "max", np.inf)):
    name = node.input[i] if len(node.input) > i else ""
    if name and name not in inits:
      raise ExportError(f"Core ML: Clip {node.name} needs constant bounds")
    bounds.append(float(np.ravel(inits[name])[0]) if name else float(attr(node, key, default)))
  return mb.clip(x=get(node.input[0]), alpha=bounds[0], beta=bounds[1])


def _gemm(mb, node, get, inits):
  """x · B (+ C) with constant B and C: `linear` (weight [out, in])."""
  w = inits.get(node.input[1])
  if w is None or attr(node, "transA", 0) or attr(node, "alpha", 1.0) != 1.0:
    raise ExportError(f"Core ML: Gemm {node.name} needs a constant B, no transA and alpha 1")
  weight = np.asarray(w if attr(node, "transB", 0) else w.T, np.float32)
  kwargs = {}
  beta = float(attr(node, "beta", 1.0))
  if len(node.input) > 2 and node.input[2] and beta:
    kwargs["bias"] = beta * np.asarray(inits[node.input[2]], np.float32).reshape(-1)
  return mb.linear(x=get(node.input[0]), weight=weight, **kwargs)


def _reshape(mb, node, get, inits):
  shape = inits.get(node.input[1])
  if shape is None:
    raise ExportError(f"Core ML: Reshape {node.name} needs a constant shape")
  return mb.reshape(x=get(node.input[0]), shape=np.asarray(shape, np.int32))


_LOWERINGS = {
    "Conv": _conv,
    "Pad": _pad,
    "InstanceNormalization": _instance_norm,
    "Resize": _resize,
    "SpaceToDepth": _space_to_depth,
    "DepthToSpace": _depth_to_space,
    "Concat": lambda mb, node, get, inits: mb.concat(
        values=[get(i) for i in node.input], axis=int(attr(node, "axis"))),
    "Transpose": lambda mb, node, get, inits: mb.transpose(
        x=get(node.input[0]), perm=list(attr(node, "perm"))),
    "ReduceMean": _reduce("reduce_mean"), "ReduceSum": _reduce("reduce_sum"),
    "Gemm": _gemm, "Reshape": _reshape,
    "Add": _binary("add"), "Sub": _binary("sub"), "Mul": _binary("mul"),
    "Div": _binary("real_div"), "Max": _binary("maximum"), "Min": _binary("minimum"),
    "Relu": _unary("relu"), "Sigmoid": _unary("sigmoid"), "Sqrt": _unary("sqrt"),
    "Tanh": _unary("tanh"), "Identity": _unary("identity"), "Reciprocal": _unary("inverse"),
    "Log": _unary("log"), "Clip": _clip,
}


def convert(proto: onnx.ModelProto, *, precision: str = "fp16", metadata: dict | None = None,
            description: str = "", license: str = "", multiple: int = 1, target=None,
            input_descriptions: dict[str, str] | None = None):
  """ct.models.MLModel (not yet saved) of an NCHW-io ONNX graph."""
  ct = _ct()
  from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipeline
  target = target or ct.target.iOS15
  prog = to_mil(proto, target=target)
  # The MIL frontend passes `inputs` on but not `outputs`: declare the image
  # output on the function itself.
  prog.functions["main"].set_output_types(
      [ct.ImageType(name="stylized", color_layout=ct.colorlayout.RGB)])
  size = ct.RangeDim(lower_bound=MIN_SIZE, upper_bound=MAX_SIZE, default=512)
  pipeline = PassPipeline.DEFAULT
  pipeline.remove_passes(_REMOVED_PASSES)
  if precision not in ("fp16", "fp32"):
    raise ValueError(f"precision={precision!r}: 'fp16' or 'fp32'")
  with contextlib.redirect_stderr(io.StringIO()):  # coremltools' per-pass progress bars
    mlmodel = ct.convert(
      prog, convert_to="mlprogram", minimum_deployment_target=target,
        compute_precision=(ct.precision.FLOAT16 if precision == "fp16"
                           else ct.precision.FLOAT32),
        inputs=[ct.ImageType(name="image", shape=(1, 3, size, size), scale=1.0,
                             color_layout=ct.colorlayout.RGB)] + [
            ct.TensorType(name=c.name, shape=tuple(d.dim_value for d in
                                                   c.type.tensor_type.shape.dim))
            for c in proto.graph.input[1:]],
        outputs=[ct.ImageType(name="stylized", color_layout=ct.colorlayout.RGB)],
        pass_pipeline=pipeline, skip_model_load=True)
  mlmodel.short_description = description
  mlmodel.license = license
  mlmodel.author = "jaxstyle"
  mlmodel.input_description["image"] = (
      f"RGB image, {MIN_SIZE}…{MAX_SIZE} pixels per side, sides multiples of {multiple}")
  mlmodel.output_description["stylized"] = "Stylized RGB image, same size as the input"
  for name, text in (input_descriptions or {}).items():
    mlmodel.input_description[name] = text
  for key, value in (metadata or {}).items():
    mlmodel.user_defined_metadata[key] = str(value)
  return mlmodel
