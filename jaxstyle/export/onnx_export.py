"""ONNX export: jax2onnx trace → NCHW rewrite (onnx_graph) → onnxruntime check.

The model takes `image` float32 NHWC [batch, H, W, 3] in [0, 1] and returns
`stylized` in the same layout; batch, H and W are dynamic, H and W multiples of
the network's size multiple (16 for the default U-Net). `io='nchw'` gives the
same graph with [batch, 3, H, W] at both ends (what the Core ML bridge reads).
A multi-style network also takes `style_weights` float32 [N] (non-negative,
normalised in the graph) and, with strength control, `strength` float32 [1]
in [0, 1] (jaxstyle.models.conditioning).
"""

import logging

import onnx

from jaxstyle.export import onnx_graph
from jaxstyle.export.model import ExportModel

OPSET = 18  # Reduce* take axes as an input; ReduceMean/Pad/Resize as in onnxruntime ≥ 1.14


class _DropExampleNoise(logging.Filter):
  """jax2onnx imports its example plugins on first use; some log at WARNING."""

  def filter(self, record):
    return "jax2onnx" not in record.pathname and "BatchNorm exported" not in record.getMessage()


def trace(model: ExportModel, io: str = "nhwc", params=None,
          exact_norms: bool | None = None) -> tuple[onnx.ModelProto, dict]:
  """ONNX ModelProto of `model` (dynamic batch, H, W) and the rewrite report.

  `exact_norms` (default: for NHWC, the runtime artifact) writes instance norms
  as layer norm + batch norm, which onnxruntime computes in float64
  (onnx_graph.exact_instance_norms); the Core ML bridge reads the NCHW graph
  with `InstanceNormalization` nodes.
  """
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
    extra = model.extra_inputs()
    proto = to_onnx(model.export_fn(params), inputs=[spec] + [shape for _, shape in extra],
                    input_names=["image"] + [name for name, _ in extra],
                    output_names=["stylized"], model_name=f"jaxstyle_{model.name}",
                    opset=OPSET)
  finally:
    root.removeFilter(noise)
    j2o.setLevel(level)
  exact_norms = io == "nhwc" if exact_norms is None else exact_norms
  optimized, report = onnx_graph.optimize(proto, io=io, exact_norms=exact_norms)
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
      "and range."
      + (f" 'style_weights' float32 [{extra[0][1][0]}] over the styles "
         f"{model.metadata()['styles']} (>= 0, normalised in the graph)." if extra else "")
      + (" 'strength' float32 [1] in [0, 1]: 0 the photo, 1 the full style."
         if len(extra) > 1 else ""))
  return optimized, report


def op_counts(proto) -> dict[str, int]:
  counts = {}
  for node in proto.graph.node:
    counts[node.op_type] = counts.get(node.op_type, 0) + 1
  return dict(sorted(counts.items()))
