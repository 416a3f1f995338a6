r"""Exports a trained model and checks every artifact against JAX.

  python -m jaxstyle.export --workdir runs/mosaic --formats coreml,onnx,savedmodel \
      --out export/

Writes <name>.onnx, <name>.mlpackage (+ <name>.golden/ for tools/verify_coreml_macos.py),
<name>_savedmodel/ and <name>.export.json (sizes, ops, errors) into --out; <name>
is the style. Exit code 1 with one line naming the format and the op or size if
an artifact cannot be built or does not match; nothing is left in its place.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from jaxstyle import checkpointing
from jaxstyle.export import exporter
from jaxstyle.export.errors import ExportError


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints).")
  flags.DEFINE_string("out", None, "Folder for the exported artifacts.")
  flags.DEFINE_list("formats", list(exporter.FORMATS), "Any of coreml, onnx, savedmodel.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
  flags.DEFINE_string("name", None, "Artifact base name (default: the style's name).")
  flags.DEFINE_bool("verify", True, "Check each saved artifact against JAX at 3 sizes "
                    "(--noverify to skip; nothing unverified is written otherwise).")
  flags.DEFINE_enum("coreml_precision", "fp16", ["fp16", "fp32"],
                    "Core ML weights and compute precision.")
  flags.DEFINE_float("coreml_fp16_tolerance", exporter.TOLERANCE["coreml-fp16"],
                     "Max abs error (pixels in [0, 1]) an fp16 Core ML build may have "
                     "vs JAX; every op is rounded to fp16. Its 99.9th percentile must also be "
                     "<= 1e-2 (docs/export.md, 'fp16').")
  flags.DEFINE_enum("onnx_norms", "auto", list(exporter.ONNX_NORMS),
                    "exact: instance norms as LayerNormalization + per-channel Mul, Add "
                    "(onnxruntime sums in float64); fast: InstanceNormalization (float32 "
                    "sums, ~20% faster, ~1e-4 off on 1024² planes, may miss the 1e-4 check); "
                    "auto: fast if it passes the check, else exact (exact with --noverify).")
  flags.DEFINE_string("onnx_sizes", None, "Verification sizes, e.g. '256,512x768,1024'.")
  flags.DEFINE_string("coreml_sizes", None, "Verification sizes (64…2048).")
  flags.DEFINE_string("savedmodel_sizes", None, "Verification sizes.")
  flags.DEFINE_bool("golden", True, "Write golden .npz files for the Core ML model.")
  flags.DEFINE_string("license", "Apache-2.0", "License string stored in the Core ML model.")
  flags.mark_flags_as_required(["workdir", "out"])


class _QuietConverters:
  """coremltools says on Linux that its macOS runtime is missing and that the
  installed TF/torch are untested; it, TF, jax2onnx and onnx-ir log each pass
  or save at INFO. Errors still show."""

  def filter(self, record) -> bool:
    noisy = any(f"/{lib}/" in record.pathname
                for lib in ("coremltools", "tensorflow", "onnx_ir", "jax2onnx"))
    return not noisy or record.levelno >= 40  # 40: ERROR


def main(argv):
  del argv
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  checkpointing.quiet_library_logs()
  logging.get_absl_handler().python_handler.addFilter(_QuietConverters())
  sizes = {fmt: exporter.parse_sizes(getattr(FLAGS, f"{fmt}_sizes"))
           for fmt in exporter.FORMATS if getattr(FLAGS, f"{fmt}_sizes")}
  try:
    exporter.export(FLAGS.workdir, FLAGS.out, tuple(FLAGS.formats), step=FLAGS.step,
                    name=FLAGS.name, verify=FLAGS.verify, sizes=sizes,
                    coreml_precision=FLAGS.coreml_precision, golden=FLAGS.golden,
                    license=FLAGS.license,
                    tolerances={"coreml-fp16": FLAGS.coreml_fp16_tolerance},
                    onnx_norms=FLAGS.onnx_norms)
  except ExportError as e:
    print(f"jaxstyle.export: FAILED: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
