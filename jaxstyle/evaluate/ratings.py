"""Reads the rating sheets exported by `rating.html` and aggregates them.

A sheet is a CSV with the header `rater,image,model_code,criterion,score`, one
row per rated output and criterion (`quality`, `style`, `detail`; score 1–5).
The page is blind: it only knows the codes (A, B, …). `rating_key.json`,
written next to it by `jaxstyle.evaluate`, maps each code to its model and is
what un-blinds the sheets here.

Aggregation, per model and criterion: each rater's mean over the images they
rated, then the mean of those rater means with a 95% t-interval over raters
(n = raters, df = n − 1). Raters are the independent unit: one person's
scores of different images are correlated (a harsh rater is harsh
everywhere), so a t-interval over all scores would pretend to more
information than the study has. With one rater the interval is undefined
(reported as NaN).
"""

import collections
import csv
import json
import math
import os
from typing import Any, Iterable, Mapping

import numpy as np
from scipy import stats

COLUMNS = ("rater", "image", "model_code", "criterion", "score")
CRITERIA = ("quality", "style", "detail")
CRITERION_TITLES = {"quality": "image quality", "style": "style accuracy",
                    "detail": "detail retention"}
KEY_FILE = "rating_key.json"


class RatingsError(ValueError):
  """A rating sheet that cannot be used; the message names the file and line."""


def load_key(path: str) -> dict[str, str]:
  """code → model name from a `rating_key.json`."""
  if not os.path.exists(path):
    raise RatingsError(f"{path}: no such file (the code → model key that "
                       "`jaxstyle.evaluate` writes next to rating.html)")
  with open(path) as f:
    key = json.load(f)
  if not isinstance(key.get("codes"), dict):
    raise RatingsError(f"{path}: expected an object with a 'codes' mapping")
  return dict(key["codes"])


def read_sheet(path: str, codes: Mapping[str, str]) -> list[dict[str, Any]]:
  """Rows of one sheet, checked; raises RatingsError naming file and line."""
  if not os.path.exists(path):
    raise RatingsError(f"{path}: no such file")
  rows, seen = [], set()
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
      raise RatingsError(f"{path}:1: missing column(s) {missing}; expected the header "
                         f"{','.join(COLUMNS)}")
    for row in reader:
      line = reader.line_num
      where = f"{path}:{line}"
      rater = (row["rater"] or "").strip()
      if not rater:
        raise RatingsError(f"{where}: empty rater")
      criterion = (row["criterion"] or "").strip()
      if criterion not in CRITERIA:
        raise RatingsError(f"{where}: criterion {criterion!r} is not one of {list(CRITERIA)}")
      code = (row["model_code"] or "").strip()
      if code not in codes:
        raise RatingsError(f"{where}: model_code {code!r} is not in the rating key "
                           f"(known: {sorted(codes)})")
      text = (row["score"] or "").strip()
      try:
        score = int(text)
      except ValueError:
        raise RatingsError(f"{where}: score {text!r} is not an integer 1–5") from None
      if not 1 <= score <= 5:
        raise RatingsError(f"{where}: score {score} is outside 1–5")
      image = (row["image"] or "").strip()
      ident = (rater, image, code, criterion)
      if ident in seen:
        raise RatingsError(f"{where}: {rater!r} rated {image!r}/{code} on "
                           f"{criterion!r} twice")
      seen.add(ident)
      rows.append(dict(rater=rater, image=image, model_code=code,
                       model=codes[code], criterion=criterion, score=score))
  if not rows:
    raise RatingsError(f"{path}: no ratings in the file")
  return rows


def aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
  """model → criterion → {mean, ci_low, ci_high, raters, scores}."""
  per_rater = collections.defaultdict(list)  # (model, criterion, rater) → scores
  for r in rows:
    per_rater[(r["model"], r["criterion"], r["rater"])].append(r["score"])
  means = collections.defaultdict(list)  # (model, criterion) → rater means
  counts = collections.Counter()
  for (model, criterion, _), scores in per_rater.items():
    means[(model, criterion)].append(float(np.mean(scores)))
    counts[(model, criterion)] += len(scores)
  out: dict[str, dict[str, dict[str, float]]] = {}
  for (model, criterion), values in sorted(means.items()):
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if len(values) > 1:
      sem = float(stats.sem(values))
      low, high = (stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
                   if sem > 0 else (mean, mean))
    else:
      low = high = math.nan
    out.setdefault(model, {})[criterion] = dict(
        mean=mean, ci_low=float(low), ci_high=float(high),
        raters=int(len(values)), scores=int(counts[(model, criterion)]))
  return out


def load_and_aggregate(paths: Iterable[str], key_path: str) -> dict[str, Any]:
  """The ratings block of the report: files, raters, per-model aggregates."""
  codes = load_key(key_path)
  rows, files = [], []
  for path in paths:
    rows += read_sheet(path, codes)
    files.append(os.path.abspath(path))
  return {"files": files, "raters": sorted({r["rater"] for r in rows}),
          "num_scores": len(rows), "method": "mean of per-rater means; 95% t-interval "
          "over raters (df = raters - 1)", "models": aggregate(rows)}
