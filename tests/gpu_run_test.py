"""tools/gpu_run.sh --dry_run: the prepared GPU run's whole path, on the CPU at tiny sizes.

The run itself (a few thousand steps of the default recipe, the batch sweep)
needs a GPU; this checks that the script, the benchmark and the report work
end to end, so GPU time goes to measuring.
"""

import csv
import json
import os
import subprocess
import sys

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dry_run_trains_sweeps_and_reports(offline_coco, tmp_path):
  env = dict(os.environ, PYTHON=sys.executable,
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(["bash", os.path.join(REPO, "tools", "gpu_run.sh"), "--dry_run",
                         "--data_dir", offline_coco, "--out", str(tmp_path)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

  with open(tmp_path / "environment.json") as f:
    environment = json.load(f)
  assert environment["backend"] == "cpu" and environment["config"] == "configs/tiny.py"
  with open(tmp_path / "sweep.json") as f:
    sweep = json.load(f)
  assert [r["batch"] for r in sweep["rows"]] == [4, 8]
  for row in sweep["rows"]:
    assert row["pipeline_images_per_s"] > 0 and row["step_images_per_s"] > 0
    assert row["gflop_per_step"] > 0 and 0 < row["mfu"]
  assert sweep["rows"][0]["resume_startup_s"].keys() == {"0", "1000"}
  with open(tmp_path / "sweep_highest.json") as f:
    assert [r["batch"] for r in json.load(f)["rows"]] == [4]

  with open(tmp_path / "default" / "summary.json") as f:
    assert json.load(f)["steps"] == 4
  with open(tmp_path / "loss_curve.csv") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
  assert Image.open(tmp_path / "loss_curve.png").size[0] > 0
  # content | stylized at 32², and the gallery's 4-pixel gap below the row.
  assert Image.open(tmp_path / "gallery.png").size == (64, 36)
  report = (tmp_path / "report.md").read_text()
  for wanted in ("trained without TensorFlow", "images/s, steady", "MFU",
                 "| 4 |", "| 8 |", "saturates at global batch", "MATMUL_PRECISION=highest"):
    assert wanted in report, wanted
