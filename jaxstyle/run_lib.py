"""What both trainers share below them: their inputs and their bookkeeping.

Inputs: the style image (a shipped name or a path), the fixed evaluation
images, the checkpointed input pipeline of a run. Bookkeeping: the step timer,
the log step (`TrainLog`: non-finite stop, progress bar, TensorBoard scalars),
image grids, the PNG gallery, eval_history.jsonl and summary.json.
`jaxstyle.train` (style transfer) and `jaxstyle.cyclegan` import this; it
imports neither.
"""

import json
import os
import resource
import time
from typing import Any, Mapping

from absl import logging
import jax
import ml_collections
import numpy as np

import jaxstyle
from jaxstyle import atomic_files
from jaxstyle import checkpointing
from jaxstyle import images as image_io
from jaxstyle import input_pipeline

def resolve_style_path(name_or_path: str) -> str:
  """A shipped style name ('mosaic') or a path to an image."""
  if os.path.exists(name_or_path):
    return name_or_path
  for ext in (".jpg", ".png"):
    candidate = os.path.join(jaxstyle.STYLES_DIR, name_or_path + ext)
    if os.path.exists(candidate):
      return candidate
  shipped = sorted(os.path.splitext(f)[0] for f in os.listdir(jaxstyle.STYLES_DIR))
  raise FileNotFoundError(f"config.style.image={name_or_path!r} is neither a file "
                          f"nor a shipped style ({', '.join(shipped)})")


def resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
  h, w = image.shape[:2]
  scale = size / min(h, w)
  new_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
  return np.asarray(jax.image.resize(image, new_hw + (3,), "linear", antialias=True))


def load_eval_images(config: ml_collections.ConfigDict, multiple: int
                     ) -> list[tuple[str, np.ndarray]]:
  """Fixed content images, resized (short side) and center-cropped to `multiple`."""
  folder = config.eval.content_dir or jaxstyle.CONTENT_DIR
  out = []
  for path in image_io.find_images([folder]):
    image = resize_short_side(image_io.load_image(path), config.eval.image_size)
    h, w = (s // multiple * multiple for s in image.shape[:2])
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    out.append((os.path.splitext(os.path.basename(path))[0],
                image[top:top + h, left:left + w]))
  if not out:
    raise FileNotFoundError(f"no eval content images in {folder!r}")
  return out


def create_batches(data: ml_collections.ConfigDict, *, global_batch_size: int, seed: int,
                   manager, start_step: int, item: str = checkpointing.DATA_ITEM):
  """The input pipeline of a run starting at `start_step`, checkpointed as `item`.

  The data state saved with the checkpoint wins over the position the step
  implies (they differ only if the batch size changed); checkpoints from
  before data states were saved resume by position. Either way nothing before
  the position is read.
  """
  batches = input_pipeline.create_train_dataset(
      data, global_batch_size=global_batch_size, seed=seed, start_step=start_step)
  if start_step:
    source = checkpointing.restore_data_iterator(manager, start_step, batches, item,
                                                 any_process=True)
    logging.info("%s stream resumed at element %d (%s)", item, input_pipeline.position(batches),
                 source or f"step {start_step} x batch {global_batch_size}")
  return batches


class StepTimer:
  """Steady-state seconds per step, for logs and summary.json.

  Counts log intervals after the first (which includes compilation) and
  leaves out time spent between steps on evaluation (`exclude`).
  """

  def __init__(self, start_step: int, clock=time.time):
    self.clock = clock
    self.start_step = self.last_step = start_step
    self.last_time = clock()
    self.steps, self.seconds = 0, 0.0

  def lap(self, step: int) -> float:
    """Seconds per step since the previous lap."""
    now = self.clock()
    elapsed, done = now - self.last_time, step - self.last_step
    if self.last_step > self.start_step:
      self.steps, self.seconds = self.steps + done, self.seconds + elapsed
    self.last_time, self.last_step = now, step
    return elapsed / max(done, 1)

  def exclude(self, seconds: float) -> None:
    self.last_time += seconds

  @property
  def mean(self) -> float | None:
    return self.seconds / self.steps if self.steps else None


class TrainLog:
  """What every training loop does at a log step: stop on a non-finite loss
  (naming the last good checkpoint), time the steps, update the progress bar's
  read-out and write the TensorBoard scalars (`writer` None: no scalars, as
  on processes other than the chief)."""

  def __init__(self, *, progress, timer: StepTimer, writer, manager, workdir: str,
               schedule, batch_size: int, remedy: str):
    self.progress, self.timer, self.writer = progress, timer, writer
    self.manager, self.workdir = manager, workdir
    self.schedule, self.batch_size, self.remedy = schedule, batch_size, remedy

  def step(self, step: int, metrics: Mapping[str, float], shown: Mapping[str, str],
           finite: tuple[str, ...]) -> None:
    """`metrics` of `step` (host values); `shown` goes on the bar; the
    `finite` keys must be finite."""
    for key in finite:
      if not np.isfinite(metrics[key]):
        raise FloatingPointError(
            f"{key} is {metrics[key]} at step {step}; the last good checkpoint is step "
            f"{self.manager.latest_step()} in {checkpointing.checkpoint_dir(self.workdir)}. "
            f"{self.remedy}")
    step_time = self.timer.lap(step)
    self.progress.set_postfix(shown)
    if self.writer is None:
      return
    for key, value in metrics.items():
      self.writer.scalar(f"train/{key}", value, step)
    self.writer.scalar("train/learning_rate", self.schedule(step - 1), step)
    self.writer.scalar("perf/step_time_s", step_time, step)
    self.writer.scalar("perf/images_per_s", self.batch_size / step_time, step)


def write_summary(workdir: str, summary: Mapping[str, Any], *, start_step: int,
                  wall_start: float, timer: StepTimer, gallery: str) -> None:
  """summary.json: a trainer's results plus what every run reports (the step
  it resumed from, wall and steady step time, peak host memory, devices),
  written atomically and printed."""
  summary = dict(
      summary, resumed_from_step=start_step, wall_time_s=time.time() - wall_start,
      step_time_s=timer.mean,
      peak_host_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      devices=jax.device_count(), backend=jax.default_backend())
  path = os.path.join(workdir, "summary.json")
  atomic_files.write_json(path, summary)
  logging.info("Wrote %s and %s", path, gallery)
  print(json.dumps(summary, indent=2))


def write_eval_summaries(writer, step: int, metrics: Mapping[str, float], names,
                         panels) -> None:
  """Eval scalars, and one image per eval image: its panels side by side."""
  for key, value in metrics.items():
    writer.scalar(f"eval/{key}", value, step)
  for name, row in zip(names, panels):
    writer.image(f"eval/{name}", np.concatenate(row, axis=1)[None], step)
  writer.flush()


def save_gallery(folder: str, names, contents, stylized) -> str:
  """One PNG per eval image plus a grid (content | stylized per row)."""
  os.makedirs(folder, exist_ok=True)
  for name, out in zip(names, stylized):
    image_io.save_png(out, os.path.join(folder, f"{name}.png"))
  rows = [np.concatenate([c, s], axis=1) for c, s in zip(contents, stylized)]
  width = max(r.shape[1] for r in rows)
  rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0)
          for r in rows]
  grid_path = os.path.join(folder, "grid.png")
  image_io.save_png(np.concatenate(rows, axis=0), grid_path)
  return grid_path


class EvalHistory:
  """`eval_history.jsonl`: one line per periodic evaluation, with the training
  seconds before it (compilation included, evaluations excluded), so quality
  can be plotted against training time. A resumed run drops the lines after
  its checkpoint and continues their clock.
  """

  def __init__(self, path: str, start_step: int):
    self.path = path
    kept = []
    if os.path.exists(path):
      with open(path) as f:
        kept = [r for r in map(json.loads, filter(str.strip, f)) if r["step"] <= start_step]
    self.offset = kept[-1]["train_seconds"] if kept else 0.0
    if jax.process_index() == 0:
      atomic_files.write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

  def append(self, step: int, train_seconds: float, metrics: Mapping[str, float]) -> None:
    record = dict(metrics, step=step, train_seconds=round(self.offset + train_seconds, 2))
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
