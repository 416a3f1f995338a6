"""Runs a saved Core ML ML Program on Linux: numpy semantics for its MIL ops.

Core ML's own runtime needs macOS, so `export --verify` loads the SAVED
.mlpackage back into a MIL program (coremltools' milproto frontend: the same
bytes a device reads, weights included) and executes it op by op here. Each
op computes in float32 from its inputs and its result is then stored in the
op's declared output type, so an fp16 program is rounded to fp16 after every
op, as it would be held on a device; an op whose result is not finite is
reported by name. Only the ops the exporter emits are implemented; any other
op stops the run with its name.
"""

import dataclasses

import numpy as np


class UnsupportedOp(RuntimeError):
  pass


@dataclasses.dataclass
class NonFinite:
  op_name: str
  op_type: str
  count: int


def load(path: str):
  """(MIL Program, MLModel spec) of a saved .mlpackage, weights read from disk."""
  import coremltools as ct
  from coremltools.converters.mil.frontend.milproto.load import load as load_milproto
  mlmodel = ct.models.MLModel(path, skip_model_load=True)
  spec = mlmodel.get_spec()
  if not spec.HasField("mlProgram"):
    raise ValueError(f"{path} is not an ML Program")
  return load_milproto(spec, spec.specificationVersion, mlmodel.weights_dir), spec


def _np_dtype(var):
  from coremltools.converters.mil.mil import types
  return np.dtype(types.nptype_from_builtin(var.dtype))


def _f32(a):
  return np.asarray(a, np.float32) if np.asarray(a).dtype.kind == "f" else np.asarray(a)


def _conv(x, weight, bias=None, strides=(1, 1), pad_type="valid", pad=None,
          dilations=(1, 1), groups=1):
  x, weight = _f32(x), _f32(weight)
  if tuple(dilations) != (1, 1):
    raise UnsupportedOp(f"conv with dilations {tuple(dilations)}")
  kh, kw = weight.shape[2:]
  if pad_type == "custom":
    t, b, l, r = (int(v) for v in pad)
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
  elif pad_type != "valid":
    raise UnsupportedOp(f"conv pad_type {pad_type!r}")
  n, c, h, w = x.shape
  sh, sw = strides
  oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
  o = weight.shape[0]

  def window(a, i, j):
    return a[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]

  if groups == c == o and weight.shape[1] == 1:  # depthwise: k² multiply-adds
    out = np.zeros((n, o, oh, ow), np.float32)
    for i in range(kh):
      for j in range(kw):
        out += window(x, i, j) * weight[:, 0, i, j][None, :, None, None]
  else:
    cg, og = c // groups, o // groups
    out = np.empty((n, o, oh, ow), np.float32)
    for g in range(groups):
      xg = x[:, g * cg:(g + 1) * cg]
      wg = weight[g * og:(g + 1) * og]
      acc = np.zeros((n, og, oh * ow), np.float32)
      for i in range(kh):
        for j in range(kw):
          patch = window(xg, i, j).reshape(n, cg, oh * ow)
          acc += np.matmul(wg[:, :, i, j], patch)
      out[:, g * og:(g + 1) * og] = acc.reshape(n, og, oh, ow)
  if bias is not None:
    out += _f32(bias)[None, :, None, None]
  return out


def _pad(x, pad, mode="constant", constant_val=0.0):
  pad = [int(v) for v in np.ravel(pad)]
  widths = [(0, 0)] * (x.ndim - len(pad) // 2) + [
      (pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
  if mode == "constant":
    return np.pad(x, widths, constant_values=constant_val)
  return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


def _upsample(x, scale_factor_height=1, scale_factor_width=1):
  return np.repeat(np.repeat(x, int(scale_factor_height), axis=-2), int(scale_factor_width), axis=-1)


def _space_to_depth(x, block_size):
  """NCHW; output channel (i·b + j)·C + c holds pixel (i, j) of each b×b block
  of channel c (TensorFlow's SpaceToDepth, which coremltools maps onto this op)."""
  n, c, h, w = x.shape
  b = int(block_size)
  x = x.reshape(n, c, h // b, b, w // b, b)
  return x.transpose(0, 3, 5, 1, 2, 4).reshape(n, b * b * c, h // b, w // b)


def _depth_to_space(x, block_size):
  """Inverse of `_space_to_depth` (TensorFlow's DepthToSpace, ONNX's DCR)."""
  n, c, h, w = x.shape
  b = int(block_size)
  x = x.reshape(n, b, b, c // (b * b), h, w)
  return x.transpose(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def _pixel_shuffle(x, upscale_factor):
  """PyTorch's pixel_shuffle (ONNX DepthToSpace mode CRD): channel c·b² + i·b + j."""
  n, c, h, w = x.shape
  b = int(upscale_factor)
  x = x.reshape(n, c // (b * b), b, b, h, w)
  return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (b * b), h * b, w * b)


def _concat(values, axis, interleave=False):
  if interleave:
    raise UnsupportedOp("concat with interleave=True")
  return np.concatenate([_f32(v) for v in values], axis=int(axis))


def _cast(x, dtype):
  return np.asarray(x).astype({"fp16": np.float16, "fp32": np.float32, "int32": np.int32,
                               "bool": bool}[dtype])


OPS = {
    "add": lambda x, y: _f32(x) + _f32(y),
    "sub": lambda x, y: _f32(x) - _f32(y),
    "mul": lambda x, y: _f32(x) * _f32(y),
    "real_div": lambda x, y: _f32(x) / _f32(y),
    "maximum": lambda x, y: np.maximum(_f32(x), _f32(y)),
    "minimum": lambda x, y: np.minimum(_f32(x), _f32(y)),
    "relu": lambda x: np.maximum(_f32(x), 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-_f32(x))),
    "tanh": lambda x: np.tanh(_f32(x)),
    "sqrt": lambda x: np.sqrt(_f32(x)),
    "rsqrt": lambda x, epsilon=1e-12: 1 / np.sqrt(_f32(x) + np.float32(epsilon)),
    "inverse": lambda x, epsilon=1e-4: 1 / (_f32(x) + np.float32(epsilon)),
    "identity": lambda x: x,
    "log": lambda x, epsilon=1e-45: np.log(_f32(x) + np.float32(epsilon)),
    "clip": lambda x, alpha, beta: np.clip(_f32(x), np.float32(alpha), np.float32(beta)),
    "round": lambda x: np.round(_f32(x)),
    "reduce_mean": lambda x, axes=None, keep_dims=False: np.mean(
        _f32(x), axis=None if axes is None else tuple(int(a) for a in np.ravel(axes)),
        keepdims=bool(keep_dims), dtype=np.float64).astype(np.float32),
    "reduce_sum": lambda x, axes=None, keep_dims=False: np.sum(
        _f32(x), axis=None if axes is None else tuple(int(a) for a in np.ravel(axes)),
        keepdims=bool(keep_dims), dtype=np.float64).astype(np.float32),
    "linear": lambda x, weight, bias=None: (
        _f32(x) @ _f32(weight).T + (0 if bias is None else _f32(bias))).astype(np.float32),
    "reshape": lambda x, shape: np.reshape(x, [int(s) for s in np.ravel(shape)]),
    "conv": _conv,
    "pad": _pad,
    "upsample_nearest_neighbor": _upsample,
    "concat": _concat,
    "space_to_depth": _space_to_depth,
    "depth_to_space": _depth_to_space,
    "pixel_shuffle": _pixel_shuffle,
    "transpose": lambda x, perm: np.transpose(x, [int(p) for p in perm]),
    "cast": _cast,
}


def run(prog, inputs: dict[str, np.ndarray], *, on_op=None, round_fp16=None):
  """Outputs of `prog`'s main function for `inputs`, and the first non-finite op.

  Returns (outputs dict, NonFinite | None). Intermediates are freed after
  their last use (a 2048² run holds only the live tensors). `round_fp16(op)`,
  for an fp32 program: round that op's float32 result (a const: its weights)
  to fp16 and back, to find which ops an fp16 build's error comes from
  (tools/fp16_error_sources.py).
  """
  func = prog.functions["main"]
  ops = list(func.operations)
  env = {name: np.asarray(v) for name, v in inputs.items()}
  missing = set(func.inputs) - set(env)
  if missing:
    raise ValueError(f"missing inputs {sorted(missing)}")
  last_use = {}
  for i, op in enumerate(ops):
    for v in _input_vars(op):
      last_use[v.name] = i
  keep = {v.name for v in func.outputs}
  unsupported = sorted({op.op_type for op in ops if op.op_type != "const" and op.op_type not in OPS})
  if unsupported:
    raise UnsupportedOp(f"MIL op(s) {unsupported} have no numpy implementation in "
                        "jaxstyle/export/mil_interpreter.py")
  first_bad = None
  for i, op in enumerate(ops):
    out = op.outputs[0]
    if op.op_type == "const":
      value = out.val
      if (round_fp16 is not None and isinstance(value, np.ndarray) and value.dtype == np.float32
          and value.size > 1 and round_fp16(op)):
        value = value.astype(np.float16).astype(np.float32)
      env[out.name] = value
      continue
    kwargs = {}
    for name, var in op.inputs.items():
      if isinstance(var, (list, tuple)):
        kwargs[name] = [_value(v, env) for v in var]
      else:
        kwargs[name] = _value(var, env)
    result = np.asarray(OPS[op.op_type](**kwargs))
    with np.errstate(over="ignore"):  # an overflow to inf is reported below, by op name
      result = result.astype(_np_dtype(out), copy=False)
      if round_fp16 is not None and result.dtype == np.float32 and round_fp16(op):
        result = result.astype(np.float16).astype(np.float32)
    if result.dtype.kind == "f" and first_bad is None:
      bad = int(result.size - np.count_nonzero(np.isfinite(result)))
      if bad:
        first_bad = NonFinite(op.name, op.op_type, bad)
    env[out.name] = result
    if on_op is not None:
      on_op(op, result)
    for v in _input_vars(op):
      if last_use.get(v.name) == i and v.name not in keep:
        env.pop(v.name, None)
  return {v.name: env[v.name] for v in func.outputs}, first_bad


def _input_vars(op):
  for var in op.inputs.values():
    yield from (var if isinstance(var, (list, tuple)) else [var])


def _value(var, env):
  if var.name in env:
    return env[var.name]
  if var.val is not None:
    v = var.val
    return v.decode() if isinstance(v, bytes) else v
  raise KeyError(f"MIL value {var.name} used before it is computed")


def op_counts(prog) -> dict[str, int]:
  counts = {}
  for op in prog.functions["main"].operations:
    if op.op_type != "const":
      counts[op.op_type] = counts.get(op.op_type, 0) + 1
  return dict(sorted(counts.items()))
