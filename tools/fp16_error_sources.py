r"""Where a Core ML fp16 build's error comes from, layer by layer.

  python tools/fp16_error_sources.py --workdir runs/quickstart [--size 512x768] [--per_layer]

Builds the model's fp32 Core ML package, then runs it in jaxstyle's MIL
interpreter with chosen op outputs (and/or weights) rounded to fp16, and
prints the max / 99.9th-percentile / mean abs error vs JAX (pixels in [0, 1])
of each variant next to the real fp16 package's. A "layer" is a convolution
and everything after it up to the next one (its norm, activation, padding);
layer -1 is the input scaling. This is how docs/export.md ("fp16") found that
no op-level precision policy gives a trained U-Net the 1e-2 headroom.
"""

import argparse
import os
import tempfile

import numpy as np


def layer_of_each_op(prog):
  """{id(op): layer index}: -1 before the first conv, k from the k-th conv on."""
  layers, k = {}, -1
  for op in prog.functions["main"].operations:
    if op.op_type == "conv":
      k += 1
    layers[id(op)] = k
  return layers, k + 1


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="training workdir (config + checkpoints)")
  parser.add_argument("--size", default="512x768", help="HxW of the bundled test photo")
  parser.add_argument("--per_layer", action="store_true",
                      help="one row per layer (≈10 s each at 512×768 on 2 cores)")
  args = parser.parse_args()

  from jaxstyle.export import exporter
  from jaxstyle.export import mil_interpreter
  from jaxstyle.export import model as model_lib
  model = model_lib.load(args.workdir)
  (h, w), = exporter.parse_sizes(args.size)
  image = exporter.test_image(h, w)
  want = model.reference(image[None].astype(np.float32) / 255)[0]
  x = {"image": image.astype(np.float32).transpose(2, 0, 1)[None]}
  tmp = tempfile.mkdtemp(prefix="jaxstyle-fp16-")

  def error(prog, round_fp16=None):
    out, _ = mil_interpreter.run(prog, x, round_fp16=round_fp16)
    diff = np.abs(out["stylized"][0].transpose(1, 2, 0).astype(np.float64) / 255 - want)
    return diff.max(), np.quantile(diff, 0.999), diff.mean()

  rows = []
  for precision in ("fp16", "fp32"):
    path = os.path.join(tmp, f"{precision}.mlpackage")
    exporter.build_coreml(model, path, precision)
    prog, _ = mil_interpreter.load(path)
    if precision == "fp16":
      rows.append(("the fp16 package", *error(prog)))
  layers, n_layers = layer_of_each_op(prog)
  is_const = lambda op: op.op_type == "const"
  variants = [
      ("fp32 program, every op and weight rounded", lambda op: True),
      ("weights only", is_const),
      ("activations only", lambda op: not is_const(op)),
      ("weights + all activations but layers -1…0", lambda op: is_const(op) or layers[id(op)] > 0),
      ("weights + all activations but layers -1…2", lambda op: is_const(op) or layers[id(op)] > 2),
      ("weights + all activations but layers -1…4", lambda op: is_const(op) or layers[id(op)] > 4),
  ]
  for k in range(-1, n_layers if args.per_layer else 3):
    variants.append((f"only layer {k}'s activations",
                     lambda op, k=k: not is_const(op) and layers[id(op)] == k))
  for name, predicate in variants:
    rows.append((name, *error(prog, predicate)))
    print(f"{name}: max {rows[-1][1]:.3g}", flush=True)

  print(f"\n{model.name}, step {model.step}, bundled photo at {h}x{w}; error vs JAX, pixels "
        "in [0, 1]\n")
  print("| rounded to fp16 | max | 99.9th pct | mean |\n|---|---:|---:|---:|")
  for name, mx, p999, mean in rows:
    print(f"| {name} | {mx:.2e} | {p999:.2e} | {mean:.2e} |")


if __name__ == "__main__":
  main()
