r"""Table 1: every model on the same images — quality, style, content, speed, memory.

  python -m jaxstyle.evaluate --config configs/eval.py [--train_missing] [--export_missing]
  python -m jaxstyle.evaluate --ratings a.csv b.csv [--out runs/eval]

The first form stylizes the content images (resized so the short side is
`image_size`, then centre-cropped to a square) with every model row of the
config — trained checkpoints (U-Net, Johnson TransformerNet, CycleGAN) and
Gatys' optimisation — and writes into `config.out_dir`: `table1.md`,
`table1.csv`, `table1.json`, `images/`, `gallery.html`, `rating.html` and
`rating_key.json`. Per model, mean ± std over the content images:

- SSIM and PSNR of the output against its content image, RGB in [0, 1]
  (`jaxstyle.metrics`; PSNR is ∞ for an identical image: "∞" in the .md,
  `inf` in the .csv, the string "inf" in the .json, which has no infinity).
- style similarity: mean over `style_layers` of the cosine between the Gram
  matrices of output and style image (1 = identical style statistics);
  content distance: mean over `content_layers` of the relative VGG feature
  error to the content (0 = identical). Both with the configured VGG.
- images/s at image_size², batch 1: the median wall time of one call
  (host → device → host included) over `speed.repeats` after
  `speed.warmup` calls, JAX jit on this backend, and onnxruntime (CPU) when
  an ONNX export exists. Gatys: 1 / the mean wall time of its full
  optimisation per content image (targets, compilation and all steps).
- memory: each model runs in a fresh worker process (`--worker`); its peak
  RSS (VmHWM) after loading the model and stylizing the evaluation and
  speed images, and its baseline RSS before the model was loaded (Python,
  JAX/onnxruntime and numpy imported). The difference is what the model and
  its inference add. Parameters and their fp32 size (MB = 2^20 bytes).

A row whose checkpoint is missing is marked `missing` with the reason, one
whose evaluation fails is `failed` with the error; the other rows are still
produced. `--train_missing` first trains missing or unfinished checkpoints,
each with `python -m jaxstyle.train` in its own process (it resumes).
Unreadable content images are skipped and listed. With no readable content
image there are no quality metrics; the speed and memory columns are still
measured, on a seeded uniform-noise image.

The second form aggregates rating sheets exported from `rating.html` (see
`jaxstyle.evaluate.ratings`) into a ratings block of the table in `--out`.
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxstyle.evaluate import ratings
from jaxstyle.evaluate import runner
from jaxstyle.evaluate import tables
from jaxstyle.evaluate import worker


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Evaluation config (configs/eval.py).",
                                  lock_config=True)
  flags.DEFINE_bool("train_missing", False, "Train (or resume) checkpoint rows that are "
                    "missing or unfinished before evaluating.")
  flags.DEFINE_bool("export_missing", False, "Export checkpoint rows to ONNX when no "
                    "export exists, for the onnxruntime speed column.")
  flags.DEFINE_multi_string("ratings", None, "Rating CSVs from rating.html to aggregate "
                            "(more may follow as positional arguments).")
  flags.DEFINE_string("out", None, "Folder of the table (default: config.out_dir, or runs/eval).")
  flags.DEFINE_string("rating_key", None, "code → model key (default: <out>/rating_key.json).")
  flags.DEFINE_string("worker", None, "Internal: run one model's inference from this spec.")


def main(argv):
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if FLAGS.worker:
    worker.run_worker(FLAGS.worker)
    return
  from jaxstyle import checkpointing  # pylint: disable=g-import-not-at-top
  checkpointing.quiet_library_logs()
  config = FLAGS.config
  if FLAGS.ratings:
    out = FLAGS.out or (config.out_dir if config else os.path.join("runs", "eval"))
    try:
      block = runner.aggregate_ratings(list(FLAGS.ratings) + list(argv[1:]), out,
                                       FLAGS.rating_key)
    except ratings.RatingsError as e:
      sys.exit(f"jaxstyle.evaluate: {e}")
    print(json.dumps(tables.json_safe(block["models"]), indent=2))
    print(f"jaxstyle.evaluate: ratings of {len(block['raters'])} rater(s) written to "
          f"{os.path.join(out, tables.TABLE)}.md/.csv/.json")
    return
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if config is None:
    raise app.UsageError("--config is required (or --ratings to aggregate ratings)")
  if FLAGS.out:
    config.unlock()
    config.out_dir = FLAGS.out
  report = runner.evaluate(config, train=FLAGS.train_missing,
                           export_missing=FLAGS.export_missing)
  print(tables.markdown(report))
  print(f"jaxstyle.evaluate: wrote {config.out_dir}/{tables.TABLE}.md/.csv/.json, gallery.html, "
        "rating.html")


if __name__ == "__main__":
  define_flags()
  app.run(main)
