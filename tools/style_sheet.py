r"""Style sheet: per style, content | style | stylized, with the quality metrics.

  python tools/style_sheet.py \
      --output mosaic=runs/mosaic --output mosaic=amber-mosaic.jpg \
      --output candy=runs/candy \
      [--content jaxstyle/assets/content/amber.jpg] [--size 512] \
      [--sheet docs/style_sheet.png] [--json scores.json]

The protocol of every quality number in jaxstyle's docs: the content photo is
resized to `--size` px on its short side. An `--output STYLE=PATH` that is a
training workdir stylizes it at that size; one that is an image file (an
output made elsewhere, e.g. the pretrained pytorch/examples models'
amber-*.jpg, or a `jaxstyle stylize` result at another size) is resized to the
same shape. Each is scored against the shipped style STYLE (or a style image
path) with `jaxstyle.metrics.quality_report`: style similarity, mean and per
VGG layer, against the style image at `metrics.STYLE_SIZE` px, and SSIM to
the content. The unstylized photo is scored too, as the floor.

Prints a markdown table; `--sheet` draws one row per style with the numbers
under each picture; `--json` keeps the numbers. `--match_colors` also scores
each output with its colour histograms matched to the style's, per RGB channel
(scikit-image's match_histograms). That shows how much of the shallow layers'
gap is the palette and how much is the strokes and edges.
"""

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
import jaxstyle
from jaxstyle import atomic_files
from jaxstyle import checkpointing
from jaxstyle import contact_sheet
from jaxstyle import images as image_io
from jaxstyle import metrics
from jaxstyle import stylize
from jaxstyle import run_lib
from jaxstyle.models import vgg
# pylint: enable=wrong-import-position


def _resize_to(image: np.ndarray, shape) -> np.ndarray:
  import jax  # pylint: disable=g-import-not-at-top
  return np.asarray(jax.image.resize(image, tuple(shape[:2]) + (3,), "linear",
                                     antialias=True))


def stylized(path: str, content: np.ndarray, style: str = "") -> np.ndarray:
  """`content` through the workdir `path` (a multi-style one at its style
  `style`), or the image file `path` at content's shape."""
  if os.path.isdir(path):
    multi = bool(checkpointing.load_config(path).get("style", {}).get("images"))
    apply_fn, multiple, _ = stylize.load_stylizer(path, style_weights=style if multi else None)
    padded, (h, w) = image_io.pad_to_multiple(content, multiple)
    return np.clip(apply_fn(padded)[:h, :w], 0, 1)
  return _resize_to(image_io.load_image(path), content.shape)


def colors_matched(image: np.ndarray, style: np.ndarray) -> np.ndarray:
  """`image` with each RGB channel's histogram matched to `style`'s."""
  from skimage import exposure  # pylint: disable=g-import-not-at-top
  return np.clip(exposure.match_histograms(image, style, channel_axis=-1), 0, 1).astype(np.float32)


def parse_outputs(values: list[str]) -> dict[str, list[str]]:
  """['mosaic=runs/a', ...] → {'mosaic': ['runs/a', ...]}, in the order given."""
  out = collections.OrderedDict()
  for value in values:
    style, sep, path = value.partition("=")
    if not sep or not style or not path:
      raise SystemExit(f"--output {value!r}: expected STYLE=WORKDIR_OR_IMAGE")
    if not os.path.exists(path):
      raise SystemExit(f"--output {value!r}: {path} does not exist")
    out.setdefault(style, []).append(path)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output", action="append", required=True,
                      help="STYLE=WORKDIR_OR_IMAGE (repeatable)")
  parser.add_argument("--content", default=os.path.join(jaxstyle.CONTENT_DIR, "amber.jpg"))
  parser.add_argument("--size", type=int, default=512, help="content short side, px")
  parser.add_argument("--vgg_source", default="hed")
  parser.add_argument("--sheet", default="", help="PNG to write")
  parser.add_argument("--json", default="", help="JSON to write")
  parser.add_argument("--match_colors", action="store_true",
                      help="also score each output with its colours matched to the style")
  args = parser.parse_args()
  by_style = parse_outputs(args.output)

  loss_net = vgg.load_loss_network("vgg16", args.vgg_source)
  content = run_lib.resize_short_side(image_io.load_image(args.content), args.size)
  results, sheet_rows = [], []
  for style_name, paths in by_style.items():
    style = run_lib.resize_short_side(
        image_io.load_image(run_lib.resolve_style_path(style_name)), metrics.STYLE_SIZE)
    row = [(style, f"style: {style_name}")]
    for label, image in [("content (unstylized)", content)] + [
        (p, stylized(p, content, style_name)) for p in paths]:
      report = metrics.quality_report(loss_net, image, content, style)
      results.append({"style": style_name, "output": label, **report})
      row.append((image, f"{os.path.basename(os.path.normpath(label))[:44]}\n"
                         f"style {report['style_similarity']:.3f} · relu4_3 "
                         f"{report['style_similarity/relu4_3']:.3f}\n"
                         f"SSIM {report['ssim']:.3f}"))
      if args.match_colors:
        matched = colors_matched(image, style)
        results.append({"style": style_name, "output": f"{label}, colours matched to the style",
                        **metrics.quality_report(loss_net, matched, content, style)})
    sheet_rows.append(row)

  layers = [k.split("/")[1] for k in results[0] if k.startswith("style_similarity/")]
  print("| style | output | style sim | " + " | ".join(layers) + " | SSIM |")
  print("|---|---|---:|" + "---:|" * len(layers) + "---:|")
  for r in results:
    print(f"| {r['style']} | {r['output']} | {r['style_similarity']:.3f} | "
          + " | ".join(f"{r['style_similarity/' + k]:.3f}" for k in layers)
          + f" | {r['ssim']:.3f} |")
  if args.sheet:
    contact_sheet.save(args.sheet, sheet_rows, height=min(args.size, 320))
    print("wrote", args.sheet)
  if args.json:
    atomic_files.write_json(args.json, {"content": args.content, "size": args.size,
                                        "style_size": metrics.STYLE_SIZE, "results": results},
                            sort_keys=False)


if __name__ == "__main__":
  main()
