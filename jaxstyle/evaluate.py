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
`jaxstyle.ratings`) into a ratings block of the table in `--out`.
"""

import csv
import datetime
import io
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Mapping

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import numpy as np

from jaxstyle import gallery
from jaxstyle import images as image_io
from jaxstyle import ratings as ratings_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = "table1"


# ----------------------------------------------------------------------------
# Worker: one model's inference in a fresh process, for honest memory numbers.
# It imports only what inference needs (no TensorFlow), so its baseline is
# Python + JAX (or onnxruntime) + numpy.


def _memory_mb(field: str) -> float:
  """VmRSS (now) or VmHWM (peak) of this process, MiB.

  From /proc/self/status rather than getrusage: ru_maxrss survives exec, so a
  worker started by a big parent would report the parent's peak.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time_calls(fn, image, warmup: int, repeats: int) -> list[float]:
  for _ in range(warmup):
    fn(image)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(image)
    times.append(time.perf_counter() - start)
  return times


def _pad_apply(apply_fn, multiple: int):
  def run(image):
    padded, (h, w) = image_io.pad_to_multiple(image, multiple)
    return np.asarray(apply_fn(padded), np.float32)[:h, :w]
  return run


def run_worker(spec_path: str) -> None:
  """Runs the spec (JSON) of `_spawn_worker`; writes outputs .npz and result JSON."""
  with open(spec_path) as f:
    spec = json.load(f)
  data = np.load(spec["images"])
  images, speed_image = data["images"], data["speed_image"]
  result: dict[str, Any] = {}
  outputs = []
  if spec["kind"] == "jax":
    import jax  # pylint: disable=g-import-not-at-top
    from jaxstyle import stylize  # pylint: disable=g-import-not-at-top
    result["baseline_rss_mb"] = _memory_mb("VmRSS")
    apply_fn, multiple, meta = stylize.load_stylizer(spec["workdir"])
    run = _pad_apply(apply_fn, multiple)
    outputs = [run(image) for image in images]
    times = _time_calls(run, speed_image, spec["warmup"], spec["repeats"])
    result.update(step=meta.get("step"), num_params=meta.get("num_params"),
                  backend=f"JAX {jax.__version__} jit, {jax.default_backend()}")
  elif spec["kind"] == "onnx":
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
    result["baseline_rss_mb"] = _memory_mb("VmRSS")
    session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    run = lambda image: session.run(None, {name: image[None].astype(np.float32)})[0][0]
    times = _time_calls(run, speed_image, spec["warmup"], spec["repeats"])
    result["backend"] = f"onnxruntime {ort.__version__} CPU"
  elif spec["kind"] == "gatys":
    from jaxstyle import nst  # pylint: disable=g-import-not-at-top
    from jaxstyle.models import vgg  # pylint: disable=g-import-not-at-top
    config = ml_collections.ConfigDict(spec["nst_config"])
    result["baseline_rss_mb"] = _memory_mb("VmRSS")
    loss_net = vgg.load_loss_network(config.vgg.arch, config.vgg.source,
                                     config.vgg.path or None)
    style = data["style"]
    times = []
    for image in (images if len(images) else speed_image[None]):
      start = time.perf_counter()
      out, info = nst.stylize(image, style, config, loss_net=loss_net, progress=True)
      times.append(time.perf_counter() - start)
      if len(images):
        outputs.append(np.asarray(out, np.float32))
      result["steps"] = info.get("steps")
    result["backend"] = "JAX jit, full optimisation per image"
  else:
    raise ValueError(f"unknown worker kind {spec['kind']!r}")
  result["peak_rss_mb"] = _memory_mb("VmHWM")
  result["seconds"] = times
  result["images_per_s"] = (1.0 / float(np.mean(times)) if spec["kind"] == "gatys"
                            else 1.0 / float(np.median(times)))
  np.savez(spec["outputs"] + ".tmp.npz", outputs=np.asarray(outputs, np.float32)
           .reshape((len(outputs),) + speed_image.shape))
  os.replace(spec["outputs"] + ".tmp.npz", spec["outputs"])
  with open(spec["result"] + ".tmp", "w") as f:
    json.dump(result, f)
  os.replace(spec["result"] + ".tmp", spec["result"])


def _env() -> dict[str, str]:
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _spawn_worker(work_dir: str, name: str, spec: dict[str, Any]) -> tuple[dict, np.ndarray]:
  """Runs one worker process (its progress streams to this terminal)."""
  spec = dict(spec, outputs=os.path.join(work_dir, f"{name}.out.npz"),
              result=os.path.join(work_dir, f"{name}.result.json"))
  spec_path = os.path.join(work_dir, f"{name}.spec.json")
  with open(spec_path, "w") as f:
    json.dump(spec, f)
  proc = subprocess.run([sys.executable, "-m", "jaxstyle.evaluate", "--worker", spec_path],
                        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, check=False)
  if proc.returncode != 0:
    lines = [l for l in proc.stdout.strip().splitlines() if l.strip()]
    raise RuntimeError(f"{spec['kind']} worker exited with {proc.returncode}: "
                       + (lines[-1] if lines else "no output"))
  with open(spec["result"]) as f:
    result = json.load(f)
  return result, np.load(spec["outputs"])["outputs"]


# ----------------------------------------------------------------------------
# Inputs.


def load_content_images(folder: str, size: int
                        ) -> tuple[list[tuple[str, np.ndarray]], list[dict[str, str]]]:
  """(stem, size×size image) per readable image of `folder`, and the skipped ones.

  Short side resized to `size`, then the centre square.
  """
  from jaxstyle import run_lib  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"content folder {folder!r} does not exist "
                            "(set config.content_dir)")
  images, skipped, stems = [], [], set()
  for path in image_io.find_images([folder]):
    try:
      image = run_lib.resize_short_side(image_io.load_image(path), size)
    except image_io.ImageError as e:
      logging.warning("jaxstyle.evaluate: skipped %s: %s", path, e.reason)
      skipped.append({"path": path, "reason": e.reason})
      continue
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    stem = os.path.splitext(os.path.basename(path))[0]
    while stem in stems:
      stem += "_"
    stems.add(stem)
    images.append((stem, np.clip(image[top:top + size, left:left + size], 0, 1)))
  if not images:
    logging.warning("jaxstyle.evaluate: no readable content image in %s: quality "
                    "columns will be empty; speed and memory use a noise image", folder)
  return images, skipped


def _repo_path(path: str) -> str:
  return path if os.path.isabs(path) or os.path.exists(path) else os.path.join(REPO, path)


def _checkpoint_steps(workdir: str) -> list[int]:
  folder = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(folder):
    return []
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


def checkpoint_state(workdir: str) -> str:
  """'missing' (no config/checkpoint), 'unfinished' (no summary.json) or 'ready'."""
  if not workdir or not os.path.exists(os.path.join(workdir, "config.json")) \
      or not _checkpoint_steps(workdir):
    return "missing"
  return "ready" if os.path.exists(os.path.join(workdir, "summary.json")) else "unfinished"


def train_command(entry) -> list[str]:
  return [sys.executable, "-m", "jaxstyle.train", "--config", _repo_path(entry.train_config),
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
    code = subprocess.run(command, env=_env(), check=False).returncode
    if code != 0:
      logging.error("%s: training exited with %d; the row will be marked", entry.label, code)


def find_onnx(entry) -> str | None:
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
  if subprocess.run(command, env=_env(), check=False).returncode != 0:
    logging.warning("%s: ONNX export failed; no onnxruntime column", entry.label)
    return None
  return find_onnx(entry)


def count_params(workdir: str) -> int | None:
  """Generator parameters from config.json (U-Net / TransformerNet), else None."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxstyle import checkpointing, models  # pylint: disable=g-import-not-at-top
  config = checkpointing.load_config(workdir)
  if (checkpointing.trainer_of(config) == "cyclegan"
      or config.model.name not in models.MODELS):
    return None
  model = models.create_model(config.model)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(shapes["params"])))


# ----------------------------------------------------------------------------
# Rows.

METRICS = ("ssim", "psnr", "style_similarity", "content_distance")
# Per-layer style similarities shown next to the mean (the texture layers,
# where models differ; the shallow colour layers saturate).
LAYER_COLUMNS = ("relu3_3", "relu4_3")


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
  if not values:
    return None, None
  values = np.asarray(values, np.float64)
  if np.isinf(values).any():
    return float(np.mean(values)), math.nan
  return float(values.mean()), float(values.std())


def _quality(row, outputs, contents, style, loss_net, config, out_dir, key) -> None:
  from jaxstyle import metrics  # pylint: disable=g-import-not-at-top
  per_image = {}
  for (stem, content), output in zip(contents, outputs):
    rel = f"images/{stem}__{key}.png"
    image_io.save_png(output, os.path.join(out_dir, rel))
    per_layer = metrics.style_similarities(loss_net, output, style, config.style_layers)
    per_image[stem] = {
        "image": rel,
        "ssim": metrics.ssim(output, content),
        "psnr": metrics.psnr(output, content),
        "style_similarity": float(np.mean(list(per_layer.values()))),
        **{f"style_similarity_{k}": v for k, v in per_layer.items()},
        "content_distance": metrics.content_distance(loss_net, output, content,
                                                     config.content_layers),
    }
  row["per_image"] = per_image
  names = METRICS + tuple(f"style_similarity_{k}" for k in LAYER_COLUMNS
                          if k in config.style_layers)
  for name in names:
    row[f"{name}_mean"], row[f"{name}_std"] = _mean_std([p[name] for p in per_image.values()])


def evaluate_row(key: str, entry, *, config, contents, style, speed_image, loss_net,
                 work_dir: str, out_dir: str, export_missing: bool) -> dict[str, Any]:
  row: dict[str, Any] = {"key": key, "label": entry.label, "kind": entry.kind,
                         "status": "ok", "reason": ""}
  images = np.asarray([im for _, im in contents], np.float32).reshape(
      (len(contents),) + speed_image.shape)
  images_path = os.path.join(work_dir, "images.npz")
  if not os.path.exists(images_path):
    np.savez(images_path, images=images, speed_image=speed_image, style=style)
  base_spec = {"images": images_path, "warmup": config.speed.warmup,
               "repeats": config.speed.repeats}
  if entry.kind == "checkpoint":
    state = checkpoint_state(entry.workdir)
    if state == "missing":
      hint = (f"train it with `{' '.join(train_command(entry)[1:])}` or pass --train_missing"
              if entry.train_config else "no train_config to train it with")
      row.update(status="missing", reason=f"no checkpoint in {entry.workdir!r}; {hint}")
      return row
    if state == "unfinished":
      row["notes"] = f"training unfinished (latest step {_checkpoint_steps(entry.workdir)[-1]})"
    result, outputs = _spawn_worker(work_dir, key, dict(base_spec, kind="jax",
                                                        workdir=entry.workdir))
    row["steps"] = result["step"]
    row["params"] = result.get("num_params") or count_params(entry.workdir)
    row["images_per_s_jax"] = result["images_per_s"]
    row["backend_jax"] = result["backend"]
    row["peak_rss_mb_jax"], row["baseline_rss_mb_jax"] = (result["peak_rss_mb"],
                                                           result["baseline_rss_mb"])
    onnx_path = find_onnx(entry) or (export_onnx(entry, config.image_size)
                                     if export_missing else None)
    if onnx_path:
      try:
        onnx_result, _ = _spawn_worker(work_dir, key + "_onnx",
                                       dict(base_spec, kind="onnx", onnx=onnx_path))
        row.update(onnx=onnx_path, images_per_s_onnx=onnx_result["images_per_s"],
                   backend_onnx=onnx_result["backend"],
                   peak_rss_mb_onnx=onnx_result["peak_rss_mb"],
                   baseline_rss_mb_onnx=onnx_result["baseline_rss_mb"])
      except RuntimeError as e:
        row["notes"] = (row.get("notes", "") + f" onnxruntime failed: {e}").strip()
  elif entry.kind == "gatys":
    nst_config = ml_collections.ConfigDict(entry.nst.to_dict())
    nst_config.image_size = config.image_size
    result, outputs = _spawn_worker(work_dir, key, dict(base_spec, kind="gatys",
                                                        nst_config=nst_config.to_dict()))
    row["steps"] = result.get("steps") or nst_config.num_steps
    row["notes"] = (f"{nst_config.optimizer} × {nst_config.num_steps} steps per image, "
                    "no trained parameters")
    row["params"] = 0
    row["images_per_s_jax"] = result["images_per_s"]
    row["backend_jax"] = result["backend"]
    row["peak_rss_mb_jax"], row["baseline_rss_mb_jax"] = (result["peak_rss_mb"],
                                                           result["baseline_rss_mb"])
  else:
    raise ValueError(f"config.models.{key}.kind={entry.kind!r}: use 'checkpoint' or 'gatys'")
  if row.get("params") is not None:
    row["param_mb"] = row["params"] * 4 / 2**20
  if contents:
    _quality(row, outputs, contents, style, loss_net, config, out_dir, key)
  return row


# ----------------------------------------------------------------------------
# Report.

COLUMNS = (  # (key, markdown title, format); *_mean gets "± std".
    ("label", "model", "{}"),
    ("status", "status", "{}"),
    ("steps", "steps", "{:,}"),
    ("params", "params", "{:,}"),
    ("param_mb", "param MB", "{:.2f}"),
    ("ssim_mean", "SSIM ↑", "{:.3f}"),
    ("psnr_mean", "PSNR dB ↑", "{:.2f}"),
    ("style_similarity_mean", "style sim ↑", "{:.4f}"),
    ("style_similarity_relu3_3_mean", "relu3_3 ↑", "{:.3f}"),
    ("style_similarity_relu4_3_mean", "relu4_3 ↑", "{:.3f}"),
    ("content_distance_mean", "content dist ↓", "{:.3f}"),
    ("images_per_s_jax", "img/s JAX", "{:.2f}"),
    ("images_per_s_onnx", "img/s ORT", "{:.2f}"),
    ("peak_rss_mb_jax", "peak MB JAX (base)", "{:.0f}"),
    ("peak_rss_mb_onnx", "peak MB ORT (base)", "{:.0f}"),
)
CSV_EXTRA = ("key", "kind", "reason", "notes", "ssim_std", "psnr_std",
             "style_similarity_std", "style_similarity_relu3_3_std",
             "style_similarity_relu4_3_std", "content_distance_std", "baseline_rss_mb_jax",
             "baseline_rss_mb_onnx", "backend_jax", "backend_onnx", "onnx")


def _fmt(value, spec: str) -> str:
  if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
    return "—"
  if isinstance(value, float) and math.isinf(value):
    return "∞"
  return spec.format(value)


def _cell(row, key, spec) -> str:
  text = _fmt(row.get(key), spec)
  if key.endswith("_mean") and text not in ("—", "∞"):
    std = row.get(key[:-5] + "_std")
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
      text += " ± " + spec.format(std)
  if key.startswith("peak_rss_mb") and text != "—":
    text += f" ({_fmt(row.get(key.replace('peak', 'baseline')), spec)})"
  if key == "status" and row.get("reason"):
    text += ": " + row["reason"].replace("|", "\\|")
  return text


def _ratings_rows(block) -> list[dict[str, Any]]:
  out = []
  for model, per in block["models"].items():
    row = {"label": model}
    for crit in ratings_lib.CRITERIA:
      if crit in per:
        for k in ("mean", "ci_low", "ci_high", "raters"):
          row[f"rating_{crit}_{k}"] = per[crit][k]
    out.append(row)
  return out


def markdown(report: Mapping[str, Any]) -> str:
  cond = report["conditions"]
  lines = ["# Table 1: style transfer models compared", "",
           "## Measured here", "", cond["summary"], ""]
  lines.append("| " + " | ".join(t for _, t, _ in COLUMNS) + " |")
  lines.append("|" + "|".join("---" if k in ("label", "status") else "---:"
                              for k, _, _ in COLUMNS) + "|")
  for row in report["rows"]:
    lines.append("| " + " | ".join(_cell(row, k, s) for k, _, s in COLUMNS) + " |")
  lines += ["", "Columns: mean ± std over the content images. SSIM (Gaussian σ 1.5, "
            "per RGB channel, averaged) and PSNR (peak 1) of the output against its "
            "content image, RGB in [0, 1]; ∞ = identical. Style sim: mean over "
            f"{', '.join(cond['style_layers'])} of the cosine between the Gram matrices "
            "of output and style image (1 = identical style statistics); relu3_3, relu4_3: "
            "that cosine at the texture layers alone. Content dist: "
            f"mean over {', '.join(cond['content_layers'])} of ‖φ(out) − φ(content)‖² / "
            "‖φ(content)‖² (0 = identical). img/s: batch 1 at "
            f"{cond['image_size']}², median of {cond['speed_repeats']} calls after "
            f"{cond['speed_warmup']} warm-ups (Gatys: its full optimisation per image, "
            "compilation included). Peak MB: peak RSS of a fresh process that loaded "
            "the model and ran the inferences; in brackets its RSS before loading the "
            "model (interpreter + runtime). MB = 2^20 bytes; param MB = fp32 bytes."]
  notes = [f"- {r['label']}: {r['notes']}" for r in report["rows"] if r.get("notes")]
  if notes:
    lines += ["", "Notes:", *notes]
  if report.get("skipped_images"):
    lines += ["", "Skipped (unreadable) content images:"]
    lines += [f"- `{s['path']}`: {s['reason']}" for s in report["skipped_images"]]
  block = report.get("ratings")
  if block:
    lines += ["", "## Human ratings (1–5)", "",
              f"{len(block['raters'])} rater(s) ({', '.join(block['raters'])}), "
              f"{block['num_scores']} scores from {len(block['files'])} file(s). "
              f"Mean and 95% CI: {block['method']}.", "",
              "| model | " + " | ".join(ratings_lib.CRITERION_TITLES[c]
                                         for c in ratings_lib.CRITERIA) + " | raters |",
              "|---|" + "---:|" * (len(ratings_lib.CRITERIA) + 1)]
    for model, per in block["models"].items():
      cells = []
      for crit in ratings_lib.CRITERIA:
        a = per.get(crit)
        cells.append("—" if a is None else f"{a['mean']:.2f} [{_fmt(a['ci_low'], '{:.2f}')}, "
                     f"{_fmt(a['ci_high'], '{:.2f}')}]")
      raters = max(a["raters"] for a in per.values())
      lines.append(f"| {model} | " + " | ".join(cells) + f" | {raters} |")
  lines += ["", "## Paper's reported numbers (for reference, not measured here)", ""]
  paper = report.get("paper_reference") or {}
  if paper:
    keys = sorted({k for v in paper.values() for k in v})
    lines.append("| model (paper) | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---:|" * len(keys))
    for model, values in paper.items():
      lines.append(f"| {model} | " + " | ".join(str(values.get(k, "—")) for k in keys) + " |")
    lines += ["", "The paper's Table 1 as printed (config.paper_reference): it states "
              "neither its hardware, image size nor how its style metric is computed, "
              "so these numbers do not compare with the measured ones above."]
  else:
    lines.append("Not included: the paper's Table 1 values were not available to us "
                 "offline, and we do not print numbers we could not check. To add them, "
                 "fill `config.paper_reference` in configs/eval.py (model → {ssim, psnr, "
                 "style, images_per_s, mb}); they are shown here, labelled as the "
                 "paper's, and never mixed into the measured table.")
  return "\n".join(lines) + "\n"


def _json_safe(value):
  """inf → "inf", nan → null: JSON has neither."""
  if isinstance(value, float):
    if math.isnan(value):
      return None
    if math.isinf(value):
      return "inf" if value > 0 else "-inf"
    return value
  if isinstance(value, Mapping):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, np.generic):
    return _json_safe(value.item())
  return value


def _atomic_write(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def write_tables(out_dir: str, report: Mapping[str, Any]) -> None:
  """table1.md / .csv / .json from the report (each written, then renamed)."""
  _atomic_write(os.path.join(out_dir, TABLE + ".md"), markdown(report))
  rows = [{k: v for k, v in r.items() if k != "per_image"} for r in report["rows"]]
  by_label = {r["label"]: r for r in rows}
  if report.get("ratings"):
    for rated in _ratings_rows(report["ratings"]):
      if rated["label"] in by_label:
        by_label[rated["label"]].update(rated)
      else:
        rows.append(rated)
  fields = [k for k, _, _ in COLUMNS] + list(CSV_EXTRA)
  fields += sorted({k for r in rows for k in r if k.startswith("rating_")})
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  _atomic_write(os.path.join(out_dir, TABLE + ".csv"), buf.getvalue())
  _atomic_write(os.path.join(out_dir, TABLE + ".json"),
                json.dumps(_json_safe(report), indent=2, ensure_ascii=False) + "\n")


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
    train_missing(config)

  size = config.image_size
  content_dir = config.content_dir or jaxstyle.EVAL_CONTENT_DIR
  contents, skipped = load_content_images(content_dir, size)
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
        row = evaluate_row(key, entry, config=config, contents=contents, style=style,
                           speed_image=speed_image, loss_net=loss_net, work_dir=work_dir,
                           out_dir=out_dir, export_missing=export_missing)
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
  old = os.path.join(out_dir, TABLE + ".json")
  if os.path.exists(old):  # keep ratings aggregated earlier
    with open(old) as f:
      previous = json.load(f).get("ratings")
    if previous:
      report["ratings"] = previous
  write_tables(out_dir, report)
  gallery.write_pages(out_dir, report, config.seed)
  return report


def aggregate_ratings(paths: list[str], out_dir: str, key_path: str | None = None
                      ) -> dict[str, Any]:
  """Adds the ratings block to the table in out_dir (or starts one) and returns it."""
  key_path = key_path or os.path.join(out_dir, ratings_lib.KEY_FILE)
  block = ratings_lib.load_and_aggregate(paths, key_path)
  path = os.path.join(out_dir, TABLE + ".json")
  if os.path.exists(path):
    with open(path) as f:
      report = json.load(f)
    for row in report["rows"]:  # undo _json_safe for the formatting code
      for k, v in row.items():
        if v in ("inf", "-inf"):
          row[k] = float(v)
  else:
    os.makedirs(out_dir, exist_ok=True)
    report = {"conditions": {"summary": "No evaluation table in this folder yet: "
                             "ratings only.", "style_layers": [], "content_layers": [],
                             "image_size": "—", "speed_repeats": "—", "speed_warmup": "—"},
              "rows": [], "paper_reference": {}}
  report["ratings"] = block
  write_tables(out_dir, report)
  return block


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
    run_worker(FLAGS.worker)
    return
  from jaxstyle import checkpointing  # pylint: disable=g-import-not-at-top
  checkpointing.quiet_library_logs()
  config = FLAGS.config
  if FLAGS.ratings:
    out = FLAGS.out or (config.out_dir if config else os.path.join("runs", "eval"))
    try:
      block = aggregate_ratings(list(FLAGS.ratings) + list(argv[1:]), out, FLAGS.rating_key)
    except ratings_lib.RatingsError as e:
      sys.exit(f"jaxstyle.evaluate: {e}")
    print(json.dumps(_json_safe(block["models"]), indent=2))
    print(f"jaxstyle.evaluate: ratings of {len(block['raters'])} rater(s) written to "
          f"{os.path.join(out, TABLE)}.md/.csv/.json")
    return
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if config is None:
    raise app.UsageError("--config is required (or --ratings to aggregate ratings)")
  if FLAGS.out:
    config.unlock()
    config.out_dir = FLAGS.out
  report = evaluate(config, train=FLAGS.train_missing, export_missing=FLAGS.export_missing)
  print(markdown(report))
  print(f"jaxstyle.evaluate: wrote {config.out_dir}/{TABLE}.md/.csv/.json, gallery.html, "
        "rating.html")


if __name__ == "__main__":
  define_flags()
  app.run(main)
