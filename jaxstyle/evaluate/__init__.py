"""Table 1: every model on the same held-out photos, with a gallery and a blind rating page.

  python -m jaxstyle.evaluate --config configs/eval.py [--train_missing] [--export_missing]
  python -m jaxstyle.evaluate --ratings a.csv b.csv [--out runs/eval]

`__main__` is the command line and says what each column measures;
`evaluate()` and `aggregate_ratings()` are the library entry points. A run:

  runner    content images and style, then per row, then the tables and pages
  workdirs  a checkpoint row's workdir: ready?, train it, find or export its ONNX
  rows      one row: outputs from a worker, quality metrics, speed, memory
  worker    one model's inference in a fresh process (honest memory numbers)
  content   the content images, short side resized, centre square
  tables    table1.md / .csv / .json
  gallery   gallery.html and the blind rating.html (+ rating_key.json)
  ratings   reads the sheets rating.html exports and aggregates them
"""

from jaxstyle.evaluate.runner import aggregate_ratings, evaluate

__all__ = ["aggregate_ratings", "evaluate"]
