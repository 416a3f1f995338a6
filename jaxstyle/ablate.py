r"""Runs config variants on a fixed budget and tabulates what each switch does.

  python -m jaxstyle.ablate --config configs/ablations/paper.py \
      --workdir runs/ablations/paper [--only=adam,standard_conv]

An ablation config has a `base` training config, the name of the `reference`
variant, and `variants`: name → overrides of `base` (nested like the config;
`{}` is the base itself). A `model` override that changes `model.name` replaces
the whole model section, since each architecture has its own fields.

Every variant trains with the ordinary train loop into `<workdir>/<name>` (so
an interrupted ablation resumes, and finished variants are reused), then all
are evaluated the same way on the fixed eval images. Writes `ablation.md`,
`ablation.csv`, `ablation.json`, `loss_curves.png` and `outputs.png`.
"""

import csv
import io
import json
import math
import os
from typing import Any, Mapping

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections
from ml_collections import config_flags
import numpy as np

from jaxstyle import atomic_files
from jaxstyle import checkpointing
from jaxstyle import distributed
from jaxstyle import flops
from jaxstyle import images as image_io
from jaxstyle import metrics
from jaxstyle import models
from jaxstyle import run_lib
from jaxstyle import stylize
from jaxstyle import timing
from jaxstyle import train
from jaxstyle.models import vgg

CURVES = ("loss", "style_loss", "content_loss")


# ----------------------------------------------------------------------------
# Variants.


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any],
                    where: str) -> None:
  """Sets nested `overrides` on `config` in place; unknown keys name their path."""
  for key, value in overrides.items():
    path = f"{where}.{key}"
    if key not in config:
      raise ValueError(f"{path}: no such key in the base config "
                       f"(known: {', '.join(sorted(config.keys()))})")
    current = config[key]
    if isinstance(current, ml_collections.ConfigDict) and isinstance(value, Mapping):
      if key == "model" and value.get("name", current.name) != current.name:
        config[key] = ml_collections.ConfigDict(dict(value))
      elif key.endswith("_layers"):  # Layer→weight maps are replaced, not merged.
        config[key] = ml_collections.ConfigDict(dict(value))
      else:
        apply_overrides(current, value, path)
    else:
      try:
        config[key] = value
      except (TypeError, ValueError) as e:
        raise ValueError(f"{path}={value!r}: {e}") from e


def build_variants(ablation: ml_collections.ConfigDict
                   ) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(name, full training config) per variant, the reference first.

  Every variant is validated here, so a typo in the last one fails before the
  first one trains.
  """
  if ablation.reference not in ablation.variants:
    raise ValueError(f"config.reference={ablation.reference!r} is not one of the "
                     f"variants {sorted(ablation.variants)}")
  names = [ablation.reference] + sorted(n for n in ablation.variants
                                        if n != ablation.reference)
  out = []
  for name in names:
    config = ml_collections.ConfigDict(ablation.base.to_dict())
    apply_overrides(config, ablation.variants[name].to_dict(), f"config.variants.{name}")
    train.validate_config(config)
    model = models.create_model(config.model)
    if config.data.image_size % model.size_multiple:
      raise ValueError(f"config.variants.{name}: data.image_size="
                       f"{config.data.image_size} is not a multiple of "
                       f"{model.size_multiple}")
    config.lock()
    out.append((name, config))
  return out


# How often a run logs, evaluates and checkpoints: not part of what it trains.
_CADENCE_KEYS = ("log_every_steps", "image_every_steps", "checkpoint_every_steps",
                 "keep_checkpoints")


def _trained_config(config) -> dict[str, Any]:
  d = json.loads(config.to_json_best_effort())
  return {k: v for k, v in d.items() if k not in _CADENCE_KEYS}


def _is_finished(workdir: str, config) -> bool:
  """Whether `workdir` holds a finished run of exactly this variant.

  A run of an edited variant is an error, not reused or resumed: its numbers
  would describe the old config.
  """
  path = os.path.join(workdir, "summary.json")
  if os.path.exists(os.path.join(workdir, "config.json")):
    saved = _trained_config(checkpointing.load_config(workdir))
    if saved != _trained_config(config):
      changed = sorted(k for k in set(saved) | set(_trained_config(config))
                       if saved.get(k) != _trained_config(config).get(k))
      raise ValueError(f"{workdir} was trained with another config (differs in "
                       f"{', '.join(changed)}); delete it to retrain this variant")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get("steps") == config.num_train_steps


# ----------------------------------------------------------------------------
# Measurements.


def count_params_and_macs(model_config, image_size: int) -> tuple[int, int]:
  """Parameters and MACs of one image_size² forward pass (convs + matmuls)."""
  model_config = ml_collections.ConfigDict(model_config.to_dict())
  if "depthwise_impl" in model_config:
    # The 'shifts' form is elementwise work that flops.count_macs would not
    # see; the grouped conv is the same function with countable MACs.
    model_config.depthwise_impl = "conv"
  model = models.create_model(model_config)
  image = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  params = jax.eval_shape(model.init, jax.random.key(0), image)["params"]
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  macs = flops.count_macs(lambda p, x: model.apply({"params": p}, x), params, image)
  return num_params, macs


def read_curves(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """Training scalars from the run's TensorBoard events: tag → [(step, value)]."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard"), size_guidance={event_accumulator.TENSORS: 0})
  acc.Reload()
  curves = {}
  for name in CURVES:
    tag = f"train/{name}"
    if tag in acc.Tags()["tensors"]:
      points = {e.step: float(tensor_util.make_ndarray(e.tensor_proto))
                for e in acc.Tensors(tag)}  # a resumed run may log a step twice
      curves[name] = sorted(points.items())
  return curves


# Inference time of each variant: JAX jit on this backend at this square size.
INFERENCE_SIZE = 1024


def inference_ms(apply_fn, size: int, repeats: int = 3) -> float:
  """Median wall ms of one (size, size) image through `apply_fn`, after a warm-up."""
  image = np.random.default_rng(0).uniform(size=(size, size, 3)).astype(np.float32)
  return 1e3 * float(np.median(timing.call_seconds(apply_fn, image, repeats=repeats)))


def evaluate_variant(name: str, workdir: str, config, *, loss_net, style_image,
                     eval_images, time_inference: bool = True
                     ) -> tuple[dict[str, Any], list[np.ndarray]]:
  """One table row, and the variant's outputs for the eval images.

  Quality is `metrics.quality_report` against `style_image` (at the metrics'
  size, not each variant's training size, so variants compare).
  """
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  apply_fn, _, _ = stylize.load_stylizer(workdir)
  outputs = [np.asarray(apply_fn(image)) for _, image in eval_images]
  layers = list(config.loss.style_layers)
  num_params, macs = count_params_and_macs(config.model, config.data.image_size)
  step_time = summary.get("step_time_s")
  curves = read_curves(workdir)
  quality = [metrics.quality_report(loss_net, out, image, style_image, layers)
             for out, (_, image) in zip(outputs, eval_images)]
  row = {
      "variant": name,
      "model": config.model.name,
      "params": num_params,
      "gmacs": macs / 1e9,
      "step_time_s": step_time,
      "images_per_s": config.batch_size / step_time if step_time else None,
      "train_loss_last": curves["loss"][-1][1] if "loss" in curves else None,
      "style_loss": summary["style_loss_final"],
      "content_loss": summary["content_loss_final"],
      "tv_loss": summary["tv_loss_final"],
      **{k.replace("/", "_"): float(np.mean([q[k] for q in quality])) for k in quality[0]},
      "ms_1024": inference_ms(apply_fn, INFERENCE_SIZE) if time_inference else None,
  }
  return row, outputs


# ----------------------------------------------------------------------------
# Report.

COLUMNS = (
    ("variant", "variant", "{}"),
    ("params", "params", "{:,}"),
    ("gmacs", "GMACs", "{:.3f}"),
    ("step_time_s", "step s", "{:.3f}"),
    ("images_per_s", "img/s", "{:.2f}"),
    ("train_loss_last", "train loss", "{:.3f}"),
    ("style_loss", "style loss ↓", "{:.3f}"),
    ("content_loss", "content loss ↓", "{:.3f}"),
    ("style_similarity", "style sim ↑", "{:.4f}"),
    ("style_similarity_relu3_3", "relu3_3 ↑", "{:.3f}"),
    ("style_similarity_relu4_3", "relu4_3 ↑", "{:.3f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("ms_1024", f"ms {INFERENCE_SIZE}² (JAX)", "{:.0f}"),
)


def _fmt(value, spec: str) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "—"
  return spec.format(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
  lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
           "|" + "|".join("---" if k == "variant" else "---:" for k, _, _ in COLUMNS) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(_fmt(row.get(k), spec) for k, _, spec in COLUMNS) + " |")
  return "\n".join(lines) + "\n"


def plot_curves(curves: Mapping[str, Mapping[str, list]], path: str) -> None:
  fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 4), dpi=100)
  for ax, tag in zip(axes, CURVES):
    for name, variant_curves in curves.items():
      if tag in variant_curves:
        steps, values = zip(*variant_curves[tag])
        ax.plot(steps, values, label=name, linewidth=1.2)
    ax.set_title(f"train/{tag}")
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png")
  plt.close(fig)
  atomic_files.write_bytes(path, buf.getvalue())


def plot_outputs(content: np.ndarray, outputs: Mapping[str, np.ndarray], path: str) -> None:
  """The first eval image through every variant, labelled."""
  panels = [("content", content)] + list(outputs.items())
  cols = min(4, len(panels))
  rows = math.ceil(len(panels) / cols)
  h, w = content.shape[:2]
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 3.2 * h / w + 0.3),
                           dpi=100, squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, (name, image) in zip(axes.ravel(), panels):
    ax.imshow(np.clip(image, 0, 1))
    ax.set_title(name, fontsize=9)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png")
  plt.close(fig)
  atomic_files.write_bytes(path, buf.getvalue())


def plot_tradeoff(rows: list[dict[str, Any]], path: str) -> None:
  """Style similarity vs SSIM per variant, coloured by inference ms."""
  fig, ax = plt.subplots(figsize=(6.5, 5), dpi=100)
  ms = [r.get("ms_1024") or 0.0 for r in rows]
  points = ax.scatter([r["style_similarity"] for r in rows], [r["ssim"] for r in rows],
                      c=ms, cmap="viridis", s=40)
  for r in rows:
    ax.annotate(r["variant"], (r["style_similarity"], r["ssim"]), fontsize=7,
                xytext=(3, 3), textcoords="offset points")
  ax.set_xlabel("style similarity ↑")
  ax.set_ylabel("SSIM to the content ↑")
  ax.grid(alpha=0.3)
  fig.colorbar(points, ax=ax, label=f"ms at {INFERENCE_SIZE}² (JAX)")
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png")
  plt.close(fig)
  atomic_files.write_bytes(path, buf.getvalue())


def write_report(workdir: str, ablation, rows, curves, outputs, content) -> str:
  table = markdown_table(rows)
  base = ablation.base
  header = (f"Each variant: {base.num_train_steps} steps, batch {base.batch_size}, "
            f"{base.data.image_size}² crops of {base.data.source}, style "
            f"{base.style.image!r}, loss network {base.vgg.arch}/{base.vgg.source}, "
            f"{jax.device_count()}× {jax.devices()[0].device_kind} ({jax.default_backend()}). "
            f"GMACs at {base.data.image_size}²; losses, style similarity (against "
            f"the style image at {metrics.STYLE_SIZE} px; relu3_3/relu4_3: those "
            f"layers alone) and SSIM on the eval images at {base.eval.image_size} px; "
            f"ms: JAX jit at {INFERENCE_SIZE}², batch 1, this backend.\n\n")
  atomic_files.write_bytes(os.path.join(workdir, "ablation.md"), (header + table).encode())
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=[k for k, _, _ in COLUMNS] + ["model", "tv_loss"],
                          extrasaction="ignore")
  writer.writeheader()
  writer.writerows(rows)
  atomic_files.write_bytes(os.path.join(workdir, "ablation.csv"), buf.getvalue().encode())
  atomic_files.write_bytes(os.path.join(workdir, "ablation.json"),
                           json.dumps({"conditions": header.strip(), "rows": rows}, indent=2).encode())
  plot_curves(curves, os.path.join(workdir, "loss_curves.png"))
  plot_outputs(content, outputs, os.path.join(workdir, "outputs.png"))
  plot_tradeoff(rows, os.path.join(workdir, "tradeoff.png"))
  return table


def run_ablation(ablation: ml_collections.ConfigDict, workdir: str,
                 only: list[str] | None = None) -> list[dict[str, Any]]:
  variants = build_variants(ablation)
  if only:
    unknown = sorted(set(only) - {n for n, _ in variants})
    if unknown:
      raise ValueError(f"--only: unknown variants {unknown}; known: "
                       f"{[n for n, _ in variants]}")
  os.makedirs(workdir, exist_ok=True)
  for name, config in variants:
    if only and name not in only:
      continue
    run_dir = os.path.join(workdir, name)
    if _is_finished(run_dir, config):
      logging.info("Variant %s: finished earlier, reusing %s", name, run_dir)
      continue
    logging.info("Variant %s: training in %s", name, run_dir)
    train.train_and_evaluate(config, run_dir)

  if jax.process_index() != 0:
    return []
  base = ablation.base
  loss_net = vgg.load_loss_network(base.vgg.arch, base.vgg.source, base.vgg.path or None)
  style_image = run_lib.resize_short_side(
      image_io.load_image(run_lib.resolve_style_path(base.style.image)), metrics.STYLE_SIZE)
  multiple = math.lcm(*(models.create_model(c.model).size_multiple for _, c in variants))
  eval_images = run_lib.load_eval_images(base, multiple)
  rows, curves, firsts = [], {}, {}
  for name, config in variants:
    run_dir = os.path.join(workdir, name)
    if not _is_finished(run_dir, config):
      logging.warning("Variant %s has not finished; left out of the table", name)
      continue
    row, outputs = evaluate_variant(name, run_dir, config, loss_net=loss_net,
                                    style_image=style_image, eval_images=eval_images)
    rows.append(row)
    curves[name] = read_curves(run_dir)
    firsts[name] = outputs[0]
  table = write_report(workdir, ablation, rows, curves, firsts, eval_images[0][1])
  print(table)
  return rows


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "One sub-directory per variant, plus the report.")
  config_flags.DEFINE_config_file(
      "config", None, "Ablation config (configs/ablations/*.py).", lock_config=True)
  flags.DEFINE_list("only", None, "Train only these variants (the report covers "
                    "every finished one).")
  distributed.define_flags()
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  checkpointing.quiet_library_logs()
  distributed.initialize()
  run_ablation(flags.FLAGS.config, flags.FLAGS.workdir, flags.FLAGS.only)


if __name__ == "__main__":
  define_flags()
  app.run(main)
