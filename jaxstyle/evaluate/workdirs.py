"""The trained workdir behind a checkpoint row: is it ready, train it, find or make its ONNX.

Training and exporting each run `python -m jaxstyle.train` / `python -m
jaxstyle.export` in a process of its own (training resumes), so a failure
marks the row instead of stopping the table.
"""

import json
import os
import subprocess
import sys

from absl import logging

from jaxstyle.evaluate import worker


def repo_path(path: str) -> str:
  """`path` as given if it exists (or is absolute), else relative to this checkout."""
  return (path if os.path.isabs(path) or os.path.exists(path)
          else os.path.join(worker.REPO, path))


def checkpoint_steps(workdir: str) -> list[int]:
  """The saved checkpoint steps of `workdir`, ascending."""
  folder = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(folder):
    return []
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


def checkpoint_state(workdir: str) -> str:
  """'missing' (no config/checkpoint), 'unfinished' (no summary.json) or 'ready'."""
  if not workdir or not os.path.exists(os.path.join(workdir, "config.json")) \
      or not checkpoint_steps(workdir):
    return "missing"
  return "ready" if os.path.exists(os.path.join(workdir, "summary.json")) else "unfinished"


def training_minutes(workdir: str) -> float | None:
  """Training compute of a finished run: steps × steady step time (summary.json), in minutes.

  Evaluations and compilation are left out, so rows trained on the same
  machine compare by what their steps cost; None before summary.json exists.
  """
  try:
    with open(os.path.join(workdir, "summary.json")) as f:
      summary = json.load(f)
  except FileNotFoundError:
    return None
  if not summary.get("step_time_s") or not summary.get("steps"):
    return None
  return summary["step_time_s"] * summary["steps"] / 60


def train_command(entry) -> list[str]:
  return [sys.executable, "-m", "jaxstyle.train", "--config", repo_path(entry.train_config),
          "--workdir", entry.workdir, *entry.train_overrides]


def train_missing(config) -> None:
  """Trains (or resumes) every checkpoint row that is missing or unfinished."""
  for key in config.rows:
    entry = config.models[key]
    if entry.kind != "checkpoint" or checkpoint_state(entry.workdir) == "ready":
      continue
    if not entry.train_config:
      logging.warning("%s: no train_config, cannot train it", entry.label)
      continue
    command = train_command(entry)
    print(f"jaxstyle.evaluate: training {entry.label}: {' '.join(command)}", flush=True)
    code = subprocess.run(command, env=worker.child_env(), check=False).returncode
    if code != 0:
      logging.error("%s: training exited with %d; the row will be marked", entry.label, code)


def find_onnx(entry) -> str | None:
  """The row's ONNX file: `entry.onnx` if it exists, else the first in <workdir>/export/."""
  if entry.onnx:
    return entry.onnx if os.path.exists(entry.onnx) else None
  folder = os.path.join(entry.workdir, "export")
  if os.path.isdir(folder):
    found = sorted(f for f in os.listdir(folder) if f.endswith(".onnx"))
    if found:
      return os.path.join(folder, found[0])
  return None


def export_onnx(entry, size: int) -> str | None:
  """Exports the row's checkpoint to <workdir>/export/*.onnx; None if that fails.

  Verified against JAX at the evaluation size only (the exporter's default
  sizes go up to 1024², which is its own test, not this table's).
  """
  command = [sys.executable, "-m", "jaxstyle.export", "--workdir", entry.workdir,
             "--formats", "onnx", "--out", os.path.join(entry.workdir, "export"),
             f"--onnx_sizes={size}"]
  print(f"jaxstyle.evaluate: exporting {entry.label}: {' '.join(command)}", flush=True)
  if subprocess.run(command, env=worker.child_env(), check=False).returncode != 0:
    logging.warning("%s: ONNX export failed; no onnxruntime column", entry.label)
    return None
  return find_onnx(entry)

