r"""Quality against training steps, from training workdirs' eval_history.jsonl.

  python tools/quality_curve.py --workdir runs/long_cpu --workdir runs/quickstart \
      [--reference 0.958,0.994,0.901,0.366] --out docs/quality_long_cpu_curve.png

One panel per metric (style similarity, its relu1_2 and relu4_3 parts, SSIM to
the content), one line per workdir (labelled with its folder name), and a
dashed line per metric at --reference (mean, relu1_2, relu4_3, SSIM: e.g. the
pytorch/examples model's numbers in docs/quality.md). Also prints the table.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from jaxstyle import atomic_files

METRICS = (("style_similarity", "style similarity"),
           ("style_similarity/relu1_2", "relu1_2"),
           ("style_similarity/relu4_3", "relu4_3"),
           ("ssim", "SSIM to the photo"))


def read_history(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "eval_history.jsonl")
  if not os.path.isfile(path):
    raise SystemExit(f"quality_curve: {path} not found (a training workdir writes it)")
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", action="append", required=True)
  parser.add_argument("--reference", default="", help="4 comma-separated values, or empty")
  parser.add_argument("--reference_label", default="pytorch/examples")
  parser.add_argument("--out", required=True, help="PNG to write")
  args = parser.parse_args()
  reference = [float(v) for v in args.reference.split(",")] if args.reference else []
  if reference and len(reference) != len(METRICS):
    parser.error(f"--reference needs {len(METRICS)} values, got {len(reference)}")

  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

  runs = {os.path.basename(os.path.normpath(w)): read_history(w) for w in args.workdir}
  fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2))
  for i, (ax, (key, title)) in enumerate(zip(axes, METRICS)):
    for name, rows in runs.items():
      rows = [r for r in rows if key in r]
      ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker=".", label=name)
    if reference:
      ax.axhline(reference[i], color="gray", linestyle="--", label=args.reference_label)
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  with atomic_files.replacing(args.out, binary=True) as f:
    fig.savefig(f, format="png", dpi=100)

  print("| run | step | " + " | ".join(t for _, t in METRICS) + " |")
  print("|---|---:|" + "---:|" * len(METRICS))
  for name, rows in runs.items():
    for r in rows:
      print(f"| {name} | {r['step']} | " + " | ".join(
          f"{r[k]:.3f}" if k in r else "" for k, _ in METRICS) + " |")


if __name__ == "__main__":
  main()
