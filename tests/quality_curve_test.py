"""tools/quality_curve.py: the curves and table of eval_history.jsonl files."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import REPO

TOOL = os.path.join(REPO, "tools", "quality_curve.py")


def _history(folder, rows):
  folder.mkdir()
  with open(folder / "eval_history.jsonl", "w") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")
  return str(folder)


def test_plots_each_run_and_prints_its_rows(tmp_path):
  row = lambda step, s: {"step": step, "style_similarity": s, "style_similarity/relu1_2": s,
                         "style_similarity/relu4_3": s - 0.1, "ssim": 0.4}
  a = _history(tmp_path / "long", [row(0, 0.5), row(200, 0.9)])
  b = _history(tmp_path / "short", [row(0, 0.5)])
  out = tmp_path / "curve.png"
  proc = subprocess.run([sys.executable, TOOL, "--workdir", a, "--workdir", b, "--reference",
                         "0.95,0.99,0.9,0.37", "--out", str(out)],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| long | 200 | 0.900 | 0.900 | 0.800 | 0.400 |" in proc.stdout
  assert sum(line.startswith("| short |") for line in proc.stdout.splitlines()) == 1
  assert np.asarray(Image.open(out)).std() > 0


def test_names_a_missing_history_and_a_bad_reference(tmp_path):
  proc = subprocess.run([sys.executable, TOOL, "--workdir", str(tmp_path), "--out",
                         str(tmp_path / "c.png")], capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0 and "eval_history.jsonl not found" in proc.stderr
  a = _history(tmp_path / "run", [{"step": 0, "ssim": 1.0}])
  proc = subprocess.run([sys.executable, TOOL, "--workdir", a, "--reference", "0.9",
                         "--out", str(tmp_path / "c.png")], capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode != 0 and "needs 4 values, got 1" in proc.stderr
