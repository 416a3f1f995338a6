r"""Style similarity on the photos a model trained on, on photos it never saw, at two scales.

  python tools/generalization_gap.py --workdir runs/quickstart [--sizes 160,512]

Answers whether a gap to the reference is one of fitting (the training photos
score as low as new ones: the recipe or the network holds the style back) or
of generalisation (the training photos score higher: more photos would help).
For each split of the run's TFDS dataset (train, validation) and for the eval
images (amber), every photo is resized to each short side in --sizes and
stylized whole, then scored with `jaxstyle.metrics.quality_report` (the docs'
protocol: the style image at 256 px). Prints one row per (photo set, size):
the mean style similarity, its four layers and SSIM. The first size is the
training scale of configs/quickstart.py (`data.resize_min`), the second the
protocol's.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=wrong-import-position
import jaxstyle
from jaxstyle import checkpointing
from jaxstyle import images as image_io
from jaxstyle import input_pipeline
from jaxstyle import metrics
from jaxstyle import run_lib
from jaxstyle import stylizer
from jaxstyle.models import vgg
# pylint: enable=wrong-import-position

COLUMNS = ("style_similarity",) + tuple(f"style_similarity/{k}" for k in metrics.STYLE_LAYERS) + (
    "ssim",)


def photo_sets(config, limit: int) -> dict[str, list[np.ndarray]]:
  """{'train': ..., 'validation': ..., 'eval': ...}: up to `limit` photos each."""
  sets = {}
  for split in ("train", "validation"):
    data = config.data.copy_and_resolve_references()
    data.split = split
    source = input_pipeline.image_source(data)
    records = [source[i] for i in range(min(limit, len(source)))]
    sets[split] = [input_pipeline.decode_record(r) for r in records]
  folder = config.eval.content_dir or jaxstyle.CONTENT_DIR
  sets["eval"] = [image_io.load_image(p) for p in image_io.find_images([folder])]
  return sets


def measure(workdir: str, sizes: list[int], limit: int) -> list[dict]:
  config = checkpointing.load_config(workdir)
  if config.style.get("images"):
    raise SystemExit(f"{workdir} is a multi-style model ({list(config.style.images)}); "
                     "this tool scores single-style models")
  model = stylizer.Stylizer.from_workdir(workdir)
  loss_net = vgg.load_loss_network(config.vgg.arch, config.vgg.source, config.vgg.path or None)
  style = image_io.load_image(run_lib.resolve_style_path(config.style.image))
  style_grams = metrics.gram_matrices(
      loss_net, run_lib.resize_short_side(style, metrics.STYLE_SIZE), metrics.STYLE_LAYERS)
  rows = []
  for name, photos in photo_sets(config, limit).items():
    for size in sizes:
      reports = []
      for photo in photos:
        content = np.clip(run_lib.resize_short_side(photo, size), 0.0, 1.0)
        out = model(content, max_size=None)
        reports.append(metrics.quality_report(loss_net, out, content, None,
                                              style_grams=style_grams))
      rows.append({"photos": name, "count": len(photos), "size": size,
                   **{k: float(np.mean([r[k] for r in reports])) for k in COLUMNS}})
  return rows


def table(rows: list[dict]) -> str:
  head = ["photos", "n", "short side", "style sim."] + list(metrics.STYLE_LAYERS) + ["SSIM"]
  lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|" + "---:|" * (len(head) - 3)]
  for r in rows:
    values = " | ".join(f"{r[k]:.3f}" for k in COLUMNS)
    lines.append(f"| {r['photos']} | {r['count']} | {r['size']} | {values} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--sizes", default="160,512", help="short sides, comma-separated")
  parser.add_argument("--limit", type=int, default=16, help="photos per split at most")
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(",")]
  print(table(measure(args.workdir, sizes, args.limit)))


if __name__ == "__main__":
  main()
