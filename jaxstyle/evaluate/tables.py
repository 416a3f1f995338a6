"""The table of an evaluation as table1.md, table1.csv and table1.json.

Every format is written from the same report (conditions, rows, ratings,
paper reference): the .md for people (mean ± std per column, notes, the
ratings block), the .csv one row per model, the .json all of it, with
infinities as "inf" and NaN as null since JSON has neither.
"""

import csv
import io
import json
import math
import os
from typing import Any, Mapping

import numpy as np

from jaxstyle import atomic_files
from jaxstyle.evaluate import ratings

TABLE = "table1"

COLUMNS = (  # (key, markdown title, format); *_mean gets "± std".
    ("label", "model", "{}"),
    ("status", "status", "{}"),
    ("steps", "steps", "{:,}"),
    ("train_min", "train min", "{:.1f}"),
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
    for crit in ratings.CRITERIA:
      if crit in per:
        for k in ("mean", "ci_low", "ci_high", "raters"):
          row[f"rating_{crit}_{k}"] = per[crit][k]
    out.append(row)
  return out


def markdown(report: Mapping[str, Any]) -> str:
  """table1.md: the measured table, notes, skipped images, ratings, the paper's numbers."""
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
              "| model | " + " | ".join(ratings.CRITERION_TITLES[c]
                                       for c in ratings.CRITERIA) + " | raters |",
              "|---|" + "---:|" * (len(ratings.CRITERIA) + 1)]
    for model, per in block["models"].items():
      cells = []
      for crit in ratings.CRITERIA:
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


def json_safe(value):
  """inf → "inf", nan → null: JSON has neither."""
  if isinstance(value, float):
    if math.isnan(value):
      return None
    if math.isinf(value):
      return "inf" if value > 0 else "-inf"
    return value
  if isinstance(value, Mapping):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, np.generic):
    return json_safe(value.item())
  return value


def write_tables(out_dir: str, report: Mapping[str, Any]) -> None:
  """table1.md / .csv / .json from the report (each written, then renamed)."""
  atomic_files.write_text(os.path.join(out_dir, TABLE + ".md"), markdown(report))
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
  atomic_files.write_text(os.path.join(out_dir, TABLE + ".csv"), buf.getvalue())
  atomic_files.write_text(os.path.join(out_dir, TABLE + ".json"),
                          json.dumps(json_safe(report), indent=2, ensure_ascii=False) + "\n")


def read_report(out_dir: str) -> dict[str, Any] | None:
  """The report of out_dir's table1.json, "inf" cells back to floats; None if absent."""
  path = os.path.join(out_dir, TABLE + ".json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    report = json.load(f)
  for row in report.get("rows", []):  # undo json_safe for the formatting code
    for k, v in row.items():
      if v in ("inf", "-inf"):
        row[k] = float(v)
  return report
