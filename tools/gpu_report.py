r"""The report of tools/gpu_run.sh: throughput, MFU, loss curve, gallery.

  python tools/gpu_report.py --out runs/gpu

Reads what gpu_run.sh left in --out: `sweep.json` (and `sweep_highest.json`,
the same at full float32 matmul precision) from tools/benchmark_input_pipeline.py,
and the training run in `default/` (summary.json, TensorBoard events, gallery).
Writes `report.md` (the tables for docs/benchmarks), `loss_curve.png`,
`loss_curve.csv` and `gallery.png` next to them.
"""

import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxstyle import ablate  # noqa: E402  (reads TensorBoard curves)
from jaxstyle import atomic_files  # noqa: E402


def _sweep_table(rows, title):
  lines = [f"**{title}**", "",
           "| global batch | pipeline images/s | step images/s, no data | loop images/s, with data "
           "| data overhead | TFLOP/s | MFU |", "|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    overhead = r["step_s_with_data"] / r["step_s_without_data"] - 1
    lines.append(f"| {r['batch']} | {r['pipeline_images_per_s']:.4g} "
                 f"| {r['step_images_per_s']:.4g} | {r['loop_images_per_s']:.4g} "
                 f"| {overhead:+.1%} | {r['tflops']:.3g} | {r['mfu']:.1%} |")
  return lines


def saturation(rows, within: float = 0.05):
  """The smallest batch whose loop images/s is within `within` of the best."""
  best = max(r["loop_images_per_s"] for r in rows)
  return min(r["batch"] for r in rows if r["loop_images_per_s"] >= (1 - within) * best)


def plot_curves(curves, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4))
  for name, points in curves.items():
    ax.plot([s for s, _ in points], [v for _, v in points], label=name)
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (batch)")
  ax.set_yscale("log")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  with atomic_files.replacing(path, binary=True) as f:
    fig.savefig(f, format="png", dpi=120)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="gpu_run.sh's output folder")
  parser.add_argument("--run", default="default", help="the training run's folder in --out")
  args = parser.parse_args(argv)
  out, run = args.out, os.path.join(args.out, args.run)
  with open(os.path.join(out, "sweep.json")) as f:
    sweep = json.load(f)
  with open(os.path.join(out, "environment.json")) as f:
    env = json.load(f)
  with open(os.path.join(run, "summary.json")) as f:
    summary = json.load(f)
  with open(os.path.join(run, "config.json")) as f:
    config = json.load(f)

  batch, size, steps = config["batch_size"], config["data"]["image_size"], summary["steps"]
  same = [r for r in sweep["rows"] if r["batch"] == batch and r["size"] == size]
  gflop = same[0]["gflop_per_step"] if same else None
  steady = batch / summary["step_time_s"]
  end_to_end = (steps - summary["resumed_from_step"]) * batch / summary["wall_time_s"]
  lines = [
      f"# {env['device_kind']}: the default recipe at {size}², trained without TensorFlow",
      "",
      f"JAX {env['jax']}, Grain {env['grain']}, TensorFlow importable: {env['tensorflow']}; "
      f"{env['devices']} device(s), {env['cpus']} CPU threads, {env['workers']} input "
      f"workers; data: offline coco/2017 (ArrayRecord). Peak for MFU: "
      f"{sweep['peak_tflops']:.3g} TFLOP/s ({sweep['peak_source']}).",
      "",
      f"**Training run** (`python -m jaxstyle.train --config {env['config']}`, "
      f"{steps} steps, global batch {batch}, evaluation every "
      f"{config['image_every_steps']} steps):",
      "",
      "| what | value |", "|---|---:|",
      f"| images/s, steady (data loading included, evaluation excluded) | {steady:.4g} |",
      f"| images/s, whole run (compile, evaluations, checkpoints, start-up included) "
      f"| {end_to_end:.4g} |",
      f"| wall time | {summary['wall_time_s']:.0f} s |",
  ]
  if gflop:
    tflops = gflop / summary["step_time_s"] / 1e3
    lines.append(f"| MFU, steady ({gflop:.0f} GFLOP/step) | {tflops / sweep['peak_tflops']:.1%} |")
  lines += [
      f"| style loss, eval image, step 0 → {steps} | {summary['style_loss_initial']:.2f} → "
      f"{summary['style_loss_final']:.2f} |",
      f"| content loss, eval image, step 0 → {steps} | {summary['content_loss_initial']:.2f} → "
      f"{summary['content_loss_final']:.2f} |", ""]
  rows = sorted(sweep["rows"], key=lambda r: r["batch"])
  lines += _sweep_table(rows, "Global batch sweep (tools/benchmark_input_pipeline.py), "
                        "default matmul precision")
  lines += ["", f"Throughput with data saturates at global batch {saturation(rows)} "
            "(the smallest within 5% of the best).", ""]
  highest = os.path.join(out, "sweep_highest.json")
  if os.path.exists(highest):
    with open(highest) as f:
      rows_highest = sorted(json.load(f)["rows"], key=lambda r: r["batch"])
    lines += _sweep_table(rows_highest, "The same at JAX_DEFAULT_MATMUL_PRECISION=highest "
                          "(full float32 matmuls and convolutions)") + [""]

  curves = ablate.read_curves(run)
  plot_curves(curves, os.path.join(out, "loss_curve.png"))
  with atomic_files.replacing(os.path.join(out, "loss_curve.csv")) as f:
    writer = csv.writer(f)
    writer.writerow(["step", *curves])
    by_step = {name: dict(points) for name, points in curves.items()}
    for step in sorted(by_step["loss"]):
      writer.writerow([step, *(by_step[name].get(step, "") for name in curves)])
  with open(os.path.join(run, "gallery", "grid.png"), "rb") as f:
    atomic_files.write_bytes(os.path.join(out, "gallery.png"), f.read())
  lines += ["![training loss](loss_curve.png)", "", "![content | stylized](gallery.png)", ""]
  atomic_files.write_text(os.path.join(out, "report.md"), "\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
