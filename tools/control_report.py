r"""What a multi-style model's controls do, measured and drawn.

  python tools/control_report.py --workdir runs/multistyle \
      [--single candy=runs/candy --single mosaic=runs/quickstart ...] \
      [--onnx_single export/mosaic.onnx --onnx_multi export/multi.onnx] \
      [--pictures docs/controls] [--json controls.json]

On the content photo at 512 px (docs/quality.md's protocol), prints markdown
tables of:
  * each style alone (style similarity, relu4_3, SSIM), next to single-style
    models of the same styles (`--single STYLE=WORKDIR`);
  * a blend strip from the first style to the second in 5 steps: style
    similarity to each of the two along it;
  * a strength strip 0 → 1 in 6 steps: style similarity and SSIM to the photo
    (strength 0 should give the photo back, similarity should rise with it);
  * with `--onnx_single/--onnx_multi`, onnxruntime time at 1024² (2 threads,
    median of 5 runs) of both exports, measured in this run.
`--pictures PREFIX` writes PREFIX_blend.jpg, PREFIX_strength.jpg and
PREFIX_colors.jpg (stylized | colours preserved | photo).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
import jax
from PIL import Image

import jaxstyle
from jaxstyle import atomic_files
from jaxstyle import colors
from jaxstyle import control_strips
from jaxstyle import images as image_io
from jaxstyle import metrics
from jaxstyle import run_lib
from jaxstyle import stylize
from jaxstyle import timing
from jaxstyle import trained_model
from jaxstyle.models import vgg
# pylint: enable=wrong-import-position


def _style_image(name):
  return run_lib.resize_short_side(image_io.load_image(run_lib.resolve_style_path(name)),
                                   metrics.STYLE_SIZE)


def _row(label, report):
  return (f"| {label} | {report['style_similarity']:.3f} | "
          f"{report['style_similarity/relu4_3']:.3f} | {report['ssim']:.3f} |")


def onnx_seconds(paths, size=1024, threads=2, runs=7):
  """Median onnxruntime seconds for one size² image per model (other inputs at
  an equal blend), the models run in turn so that load changes hit both."""
  from jaxstyle import onnx_inference  # pylint: disable=g-import-not-at-top
  jobs = []
  for path in paths:
    session = onnx_inference.session(path, threads=threads)
    feeds = {}
    for i in session.get_inputs():
      if i.name == "image":
        shape = [1, size, size, 3] if i.shape[-1] == 3 else [1, 3, size, size]
        feeds[i.name] = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
      else:
        feeds[i.name] = np.full(i.shape, 1.0 / i.shape[0], np.float32)
    jobs.append(lambda session=session, feeds=feeds: session.run(None, feeds))
  return [float(np.median(t)) for t in timing.interleaved_seconds(jobs, runs)]


def _save_jpg(picture, path):
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with atomic_files.replacing(path, binary=True) as f:
    Image.fromarray(image_io.to_uint8(picture)).save(f, format="JPEG", quality=90)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="a multi-style training workdir")
  parser.add_argument("--single", action="append", default=[], help="STYLE=WORKDIR")
  parser.add_argument("--content", default=os.path.join(jaxstyle.CONTENT_DIR, "amber.jpg"))
  parser.add_argument("--size", type=int, default=512)
  parser.add_argument("--onnx_single", default="")
  parser.add_argument("--onnx_multi", default="")
  parser.add_argument("--pictures", default="", help="path prefix of the JPEGs to write")
  parser.add_argument("--json", default="")
  args = parser.parse_args()

  trained = trained_model.load(args.workdir)
  names, n = trained.style_names, len(trained.style_names)
  loss_net = vgg.load_loss_network("vgg16", "hed")
  content = run_lib.resize_short_side(image_io.load_image(args.content), args.size)
  padded, (h, w) = image_io.pad_to_multiple(content, trained.size_multiple)
  forward = jax.jit(lambda p, x, c: trained.forward(p, x[None], c)[0])
  apply = lambda x, c: np.clip(np.asarray(forward(trained.params, x, c)), 0, 1)[:h, :w]
  styles = {name: _style_image(name) for name in names}
  results = {"styles": {}, "single": {}, "blend": [], "strength": []}

  print("| model | style similarity | relu4_3 | SSIM |\n|---|---:|---:|---:|")
  one_hot = {}
  for i, name in enumerate(names):
    out = apply(padded, trained.condition(name, 1.0 if trained.strength_control else None))
    one_hot[name] = out
    report = metrics.quality_report(loss_net, out, content, styles[name])
    results["styles"][name] = report
    print(_row(f"{n}-style model: {name}", report))
  for item in args.single:
    name, _, workdir = item.partition("=")
    fn, multiple, _ = stylize.load_stylizer(workdir)
    x, (hh, ww) = image_io.pad_to_multiple(content, multiple)
    report = metrics.quality_report(loss_net, np.clip(fn(x)[:hh, :ww], 0, 1), content,
                                    styles[name])
    results["single"][name] = report
    print(_row(f"single-style model: {name}", report))

  if n > 1:
    a, b = names[0], names[1]
    conditions = control_strips.blend_conditions(n, 0, 1, 5, trained.strength_control)
    picture, outputs = control_strips.strip(lambda x, c: apply(x, c), padded, conditions)
    print(f"\n| weight of {b} | similarity to {a} | similarity to {b} |\n|---:|---:|---:|")
    for t, out in zip(np.linspace(0, 1, 5), outputs):
      sa = metrics.style_similarity(loss_net, out, styles[a], metrics.STYLE_LAYERS)
      sb = metrics.style_similarity(loss_net, out, styles[b], metrics.STYLE_LAYERS)
      results["blend"].append({"t": float(t), a: sa, b: sb})
      print(f"| {t:.2f} | {sa:.3f} | {sb:.3f} |")
    if args.pictures:
      _save_jpg(picture, f"{args.pictures}_blend.jpg")

  if trained.strength_control:
    a = names[0]
    conditions = control_strips.strength_conditions(n, 0, 6)
    picture, outputs = control_strips.strip(lambda x, c: apply(x, c), padded, conditions)
    print(f"\n| strength ({a}) | style similarity | relu4_3 | SSIM to the photo |\n"
          "|---:|---:|---:|---:|")
    for s, out in zip(np.linspace(0, 1, 6), outputs):
      report = metrics.quality_report(loss_net, out, content, styles[a])
      results["strength"].append({"strength": float(s), **report})
      print(f"| {s:.1f} | {report['style_similarity']:.3f} | "
            f"{report['style_similarity/relu4_3']:.3f} | {report['ssim']:.3f} |")
    if args.pictures:
      _save_jpg(picture, f"{args.pictures}_strength.jpg")

  if args.pictures:
    first = one_hot[names[0]]
    kept = colors.preserve_colors(first, content)
    gap = np.ones((h, 4, 3), np.float32)
    _save_jpg(np.concatenate([first, gap, kept, gap, content], axis=1),
              f"{args.pictures}_colors.jpg")

  if args.onnx_single and args.onnx_multi:
    single, multi = onnx_seconds([args.onnx_single, args.onnx_multi])
    results["onnx_1024"] = {"single_s": single, "multi_s": multi}
    print(f"\n| onnxruntime 1024², 2 threads | seconds |\n|---|---:|\n"
          f"| single-style ({os.path.basename(args.onnx_single)}) | {single:.3f} |\n"
          f"| {n}-style ({os.path.basename(args.onnx_multi)}) | {multi:.3f} "
          f"({multi / single - 1:+.1%}) |")
  if args.json:
    atomic_files.write_json(args.json, results)


if __name__ == "__main__":
  main()
