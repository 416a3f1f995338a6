"""A whole evaluation: content and style images, every row, the tables and pages.

`evaluate()` is what `python -m jaxstyle.evaluate --config ...` runs;
`aggregate_ratings()` what `--ratings` runs.
"""

import datetime
import os
import platform
import shutil
import tempfile
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from jaxstyle import images as image_io
from jaxstyle.evaluate import content
from jaxstyle.evaluate import gallery
from jaxstyle.evaluate import ratings
from jaxstyle.evaluate import rows as rows_lib
from jaxstyle.evaluate import tables
from jaxstyle.evaluate import workdirs

def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def evaluate(config: ml_collections.ConfigDict, *, train: bool = False,
             export_missing: bool = False) -> dict[str, Any]:
  """Runs the whole evaluation into config.out_dir; returns the report."""
  import jax  # pylint: disable=g-import-not-at-top
  from jaxstyle import run_lib  # pylint: disable=g-import-not-at-top
  from jaxstyle.models import vgg  # pylint: disable=g-import-not-at-top
  import jaxstyle  # pylint: disable=g-import-not-at-top
  unknown = [k for k in config.rows if k not in config.models]
  if unknown:
    raise ValueError(f"config.rows names {unknown}, not in config.models "
                     f"({sorted(config.models)})")
  labels = [config.models[k].label for k in config.rows]
  if len(set(labels)) != len(labels):
    raise ValueError(f"config.models labels must be unique, got {labels}")
  out_dir = config.out_dir
  os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
  if train:
    workdirs.train_missing(config)

  size = config.image_size
  content_dir = config.content_dir or jaxstyle.EVAL_CONTENT_DIR
  contents, skipped = content.load_content_images(content_dir, size)
  style_path = run_lib.resolve_style_path(config.style)
  style = np.asarray(run_lib.resize_short_side(image_io.load_image(style_path),
                                               config.style_size), np.float32)
  speed_image = (contents[0][1] if contents else
                 np.random.default_rng(config.seed).uniform(size=(size, size, 3))
                 ).astype(np.float32)
  image_io.save_png(style, os.path.join(out_dir, "images", "style.png"))
  for stem, image in contents:
    image_io.save_png(image, os.path.join(out_dir, "images", f"content_{stem}.png"))
  loss_net = vgg.load_loss_network(config.vgg.arch, config.vgg.source, config.vgg.path or None)

  work_dir = tempfile.mkdtemp(prefix=".work-", dir=out_dir)
  rows = []
  try:
    for key in config.rows:
      entry = config.models[key]
      print(f"jaxstyle.evaluate: {entry.label}", flush=True)
      try:
        row = rows_lib.evaluate_row(
            key, entry, config=config, contents=contents, style=style,
            speed_image=speed_image, loss_net=loss_net, work_dir=work_dir, out_dir=out_dir,
            export_missing=export_missing)
      except Exception as e:  # pylint: disable=broad-except
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        logging.exception("%s failed", entry.label)
        row = {"key": key, "label": entry.label, "kind": entry.kind,
               "status": "failed", "reason": f"{type(e).__name__}: {reason}"}
      if row["status"] != "ok":
        print(f"jaxstyle.evaluate: {entry.label}: {row['status']}: {row['reason']}",
              flush=True)
      rows.append(row)
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)

  devices = jax.devices()
  date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  steps = ", ".join(f"{r['label']} {r['steps']:,}" for r in rows if r.get("steps"))
  conditions = {
      "date": date, "cpu": _cpu_model(), "cpu_cores": os.cpu_count(),
      "backend": f"{jax.default_backend()} ({devices[0].device_kind}), JAX {jax.__version__}",
      "image_size": size, "content_dir": content_dir,
      "content_images": [s for s, _ in contents], "style": style_path,
      "style_size": config.style_size, "vgg": loss_net.description,
      "style_layers": list(config.style_layers), "content_layers": list(config.content_layers),
      "speed_warmup": config.speed.warmup, "speed_repeats": config.speed.repeats,
  }
  conditions["summary"] = (
      f"{date}; CPU {conditions['cpu']}, {conditions['cpu_cores']} cores; backend "
      f"{conditions['backend']}; {len(contents)} content image(s) from `{content_dir}` at "
      f"{size}×{size} (short side resized, centre crop); style "
      f"`{os.path.basename(style_path)}` (short side {config.style_size}); metrics with "
      f"{loss_net.description}. Steps: {steps or '—'} (training steps of each checkpoint; "
      "Gatys: optimisation steps per image).")
  report = {
      "conditions": conditions,
      "rows": rows,
      "content_images": [{"stem": s, "image": f"images/content_{s}.png"} for s, _ in contents],
      "style": {"name": os.path.splitext(os.path.basename(style_path))[0],
                "path": style_path, "image": "images/style.png"},
      "skipped_images": skipped,
      "paper_reference": config.paper_reference.to_dict(),
  }
  previous = (tables.read_report(out_dir) or {}).get("ratings")
  if previous:  # keep ratings aggregated earlier
    report["ratings"] = previous
  tables.write_tables(out_dir, report)
  gallery.write_pages(out_dir, report, config.seed)
  return report


def aggregate_ratings(paths: list[str], out_dir: str, key_path: str | None = None
                      ) -> dict[str, Any]:
  """Adds the ratings block to the table in out_dir (or starts one) and returns it."""
  key_path = key_path or os.path.join(out_dir, ratings.KEY_FILE)
  block = ratings.load_and_aggregate(paths, key_path)
  report = tables.read_report(out_dir)
  if report is None:
    os.makedirs(out_dir, exist_ok=True)
    report = {"conditions": {"summary": "No evaluation table in this folder yet: "
                             "ratings only.", "style_layers": [], "content_layers": [],
                             "image_size": "—", "speed_repeats": "—", "speed_warmup": "—"},
              "rows": [], "paper_reference": {}}
  report["ratings"] = block
  tables.write_tables(out_dir, report)
  return block
