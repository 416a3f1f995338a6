"""ONNX export: jax2onnx trace → NCHW rewrite (onnx_graph) → onnxruntime check.

The model takes `image` float32 NHWC [batch, H, W, 3] in [0, 1] and returns
`stylized` in the same layout; batch, H and W are dynamic, H and W multiples of
the network's size multiple (8 for the default U-Net). `io='nchw'` gives the
same graph with [batch, 3, H, W] at both ends (what the Core ML bridge reads).
"""

import logging

import numpy as np
import onnx

from jaxstyle.export import onnx_graph
from jaxstyle.export.model import ExportModel

OPSET = 18  # Reduce* take axes as an input; ReduceMean/Pad/Resize as in onnxruntime ≥ 1.14


class _DropExampleNoise(logging.Filter):
  """jax2onnx imports its example plugins on first use; some log at WARNING."""

  def filter(self, record):
    return "jax2onnx" not in record.pathname and "BatchNorm exported" not in record.getMessage()


def trace(model: ExportModel, io: str = "nhwc", params=None) -> tuple[onnx.ModelProto, dict]:
  """ONNX ModelProto of `model` (dynamic batch, H, W) and the rewrite report."""
  from jax2onnx import to_onnx
  from jaxstyle.export import onnx_plugins  # noqa: F401  (registers the lowerings)
  m = model.multiple
  # H = m·h lets shape polymorphism prove that upsampled decoder maps line up
  # with the encoder's skip connections.
  spec = ("batch", f"{m}*h" if m > 1 else "h", f"{m}*w" if m > 1 else "w", 3)
  noise = _DropExampleNoise()
  root, j2o = logging.getLogger(), logging.getLogger("jax2onnx")
  level = j2o.level
  root.addFilter(noise)
  j2o.setLevel(logging.ERROR)  # "Skipping import of <example needing equinox>"
  try:
    proto = to_onnx(model.export_fn(params), inputs=[spec], input_names=["image"],
                    output_names=["stylized"], model_name=f"jaxstyle_{model.name}",
                    opset=OPSET)
  finally:
    root.removeFilter(noise)
    j2o.setLevel(level)
  optimized, report = onnx_graph.optimize(proto, io=io)
  for vi in list(optimized.graph.input) + list(optimized.graph.output):
    for d in vi.type.tensor_type.shape.dim:  # '8*h' → 'height' ('batch' stays)
      if d.HasField("dim_param") and d.dim_param != "batch":
        d.dim_param = "height" if "h" in d.dim_param else "width"
  for key, value in model.metadata().items():
    optimized.metadata_props.add(key=key, value=value)
  optimized.doc_string = (
      f"jaxstyle {model.name} style transfer. Input 'image' float32 "
      f"{'[batch, height, width, 3]' if io == 'nhwc' else '[batch, 3, height, width]'} RGB in "
      f"[0, 1]; height and width multiples of {model.multiple}. Output 'stylized', same shape "
      "and range.")
  return optimized, report


def session(path_or_bytes, threads: int | None = None):
  import onnxruntime as ort
  options = ort.SessionOptions()
  if threads:
    options.intra_op_num_threads = threads
  options.log_severity_level = 3
  return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def run(sess, images_nhwc: np.ndarray, io: str = "nhwc") -> np.ndarray:
  x = np.ascontiguousarray(images_nhwc, np.float32)
  if io == "nchw":
    return sess.run(None, {"image": x.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)
  return sess.run(None, {"image": x})[0]


def op_counts(proto) -> dict[str, int]:
  counts = {}
  for node in proto.graph.node:
    counts[node.op_type] = counts.get(node.op_type, 0) + 1
  return dict(sorted(counts.items()))
