"""One row of the table: a model's outputs, quality metrics, speed and memory.

A checkpoint row runs its inference in a JAX worker (and an onnxruntime one
when an ONNX export exists), a Gatys row its optimisation in a worker; the
metrics are then computed here from the outputs, which are written to
`images/` as PNGs.
"""

import math
import os
from typing import Any

import ml_collections
import numpy as np

from jaxstyle import images as image_io
from jaxstyle.evaluate import workdirs
from jaxstyle.evaluate import worker

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
  """The row of `config.models[key]`: status, steps, params, speed, memory, metrics.

  A missing checkpoint gives a 'missing' row with the reason (and how to train
  it); a kind other than 'checkpoint' or 'gatys' raises ValueError.
  """
  row: dict[str, Any] = {"key": key, "label": entry.label, "kind": entry.kind,
                         "status": "ok", "reason": ""}
  images = np.asarray([im for _, im in contents], np.float32).reshape(
      (len(contents),) + speed_image.shape)
  images_path = os.path.join(work_dir, "images.npz")
  if not os.path.exists(images_path):
    np.savez(images_path, images=images, speed_image=speed_image, style=style)
  base_spec = {"images": images_path, "warmup": config.speed.warmup,
               "repeats": config.speed.repeats,
               # A multi-style model's style for this table (e.g. 'mosaic').
               "style_weights": entry.get("style_weights") or None}
  if entry.kind == "checkpoint":
    state = workdirs.checkpoint_state(entry.workdir)
    if state == "missing":
      command = " ".join(workdirs.train_command(entry)[1:])
      hint = (f"train it with `{command}` or pass --train_missing"
              if entry.train_config else "no train_config to train it with")
      row.update(status="missing", reason=f"no checkpoint in {entry.workdir!r}; {hint}")
      return row
    if state == "unfinished":
      latest = workdirs.checkpoint_steps(entry.workdir)[-1]
      row["notes"] = f"training unfinished (latest step {latest})"
    result, outputs = worker.spawn(work_dir, key, dict(base_spec, kind="jax",
                                                       workdir=entry.workdir))
    row["steps"] = result["step"]
    row["train_min"] = workdirs.training_minutes(entry.workdir)
    row["params"] = result["num_params"]  # of the network that stylizes (stylize.load_stylizer)
    row["images_per_s_jax"] = result["images_per_s"]
    row["backend_jax"] = result["backend"]
    row["peak_rss_mb_jax"], row["baseline_rss_mb_jax"] = (result["peak_rss_mb"],
                                                           result["baseline_rss_mb"])
    onnx_path = workdirs.find_onnx(entry) or (
        workdirs.export_onnx(entry, config.image_size) if export_missing else None)
    if onnx_path:
      try:
        onnx_result, _ = worker.spawn(work_dir, key + "_onnx",
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
    result, outputs = worker.spawn(work_dir, key, dict(base_spec, kind="gatys",
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
