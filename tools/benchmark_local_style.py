r"""Extra cost of the local (patch) style loss in a training step.

  python tools/benchmark_local_style.py [--batch 4 --repeats 5 --sizes 128:160,256:256]

For each (content size, style size) it times the loss-and-gradient of a
training step (default U-Net forward + backward, hed VGG16 perceptual losses
of configs/default.py) without the local loss (the baseline, same run) and with
it on relu3_3 (3×3 patches, style patches at stride 1 and 2), and prints a
markdown table: wall and CPU seconds per step, the extra time, the matching's MACs
(output patches × style patches × k²C) and the bytes of one set of targets
(what each entry of a style-perturbation bank holds).
"""

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from jaxstyle import images as image_io  # noqa: E402
from jaxstyle import models  # noqa: E402
from jaxstyle import objectives  # noqa: E402
from jaxstyle import run_lib  # noqa: E402
from jaxstyle.models import vgg  # noqa: E402


def time_interleaved(fns, args, repeats):
  """Median (wall, CPU) seconds per call of each fn, after a warm-up call.

  The calls go round-robin, so load from other processes on a shared machine
  hits the baseline and the variants alike; CPU seconds (all threads of this
  process) are less sensitive to that load than wall time.
  """
  for fn in fns:
    jax.block_until_ready(fn(*args[fn]))
  times = {fn: [] for fn in fns}
  for _ in range(repeats):
    for fn in fns:
      wall, cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(fn(*args[fn]))
      times[fn].append((time.perf_counter() - wall, time.process_time() - cpu))
  return [tuple(np.median(np.array(times[fn]), axis=0)) for fn in fns]


def square_style(size: int) -> np.ndarray:
  """The shipped 'mosaic' style, short side resized to `size`, center-cropped."""
  image = run_lib.resize_short_side(
      image_io.load_image(run_lib.resolve_style_path("mosaic")), size)
  top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
  return image[top:top + size, left:left + size]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--sizes", default="128:160,256:256",
                      help="content:style pairs, comma separated")
  args = parser.parse_args()

  config = default.get_config()
  model = models.create_model(config.model)
  loss_net = vgg.load_loss_network("vgg16", "hed")
  layer, patch = "relu3_3", 3
  print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs; batch {args.batch}; "
        f"default U-Net + hed VGG16 losses; local loss on {layer}, {patch}×{patch} "
        f"patches; median of {args.repeats} interleaved calls after compilation\n")
  print("| content | style | local loss | style patches | matching GMAC | targets MB | "
        "step wall s | extra wall s | step CPU s | extra CPU s | extra CPU % |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for pair in args.sizes.split(","):
    content, style_size = (int(v) for v in pair.split(":"))
    batch = jax.random.uniform(jax.random.key(0), (args.batch, content, content, 3))
    style = jnp.asarray(square_style(style_size))[None]
    params = jax.jit(model.init)(jax.random.key(1), batch[:1])["params"]
    steps, step_args, patches = [], {}, {}
    for stride in (None, 1, 2):
      loss_cfg = config.loss.copy_and_resolve_references()
      loss_cfg.local_style_layers = {layer: 1.0}
      loss_cfg.local_patch_size = patch
      loss_cfg.local_style_weight = 0.0 if stride is None else 1.0
      loss_cfg.local_patch_stride = stride or 1
      targets = jax.jit(functools.partial(objectives.style_targets, loss_cfg=loss_cfg))(
          loss_net, style)
      step = jax.jit(jax.value_and_grad(
          functools.partial(objectives.compute_losses, model=model, loss_cfg=loss_cfg),
          has_aux=True))
      steps.append(step)
      step_args[step] = (params, batch, targets, loss_net)
      patches[step] = targets.get("local", {}).get(layer)
    baseline, *variants = time_interleaved(steps, step_args, args.repeats)
    print(f"| {content}² | {style_size}² | off | | | | {baseline[0]:.3f} | | "
          f"{baseline[1]:.3f} | | |")
    for stride, step, (wall, cpu) in zip((1, 2), steps[1:], variants):
      n, d = patches[step].shape[0], int(np.prod(patches[step].shape[1:]))
      out_hw = content // 4 - patch + 1  # relu3_3 is at 1/4 resolution
      gmac = args.batch * out_hw ** 2 * n * d / 1e9
      print(f"| {content}² | {style_size}² | stride {stride} | {n} | {gmac:.1f} | "
            f"{patches[step].nbytes / 2**20:.1f} | {wall:.3f} | {wall - baseline[0]:+.3f} | "
            f"{cpu:.3f} | {cpu - baseline[1]:+.3f} | "
            f"{100 * (cpu - baseline[1]) / baseline[1]:+.0f}% |", flush=True)

if __name__ == "__main__":
  main()
