r"""The Grain input pipeline against what training consumes, and resume start-up.

  python tools/benchmark_input_pipeline.py [--configs quickstart,default]
      [--batch_sizes 16,32,64,128] [--data_dir .cache/tensorflow_datasets]
      [--peak_tflops 0] [--out runs/benchmark_input_pipeline.json]

For each config (and batch size), on this machine, in one run:
  * the input pipeline alone: images/s of `input_pipeline.create_train_dataset`
    with the config's data settings (workers, augmentation, sizes) on the
    offline COCO, after its first batch (worker start-up, reported apart);
  * the training step without data: the jitted step on one batch already on
    the device (compilation excluded), and its FLOPs (2 x the MACs that
    jaxstyle.flops counts in the loss's gradient) as TFLOP/s and as a fraction
    of --peak_tflops (0: a float32 matmul at the backend's default precision,
    measured here);
  * the training loop with data: next(batches) + the step, as train.py runs
    them;
  * resume start-up (first batch size only): building the pipeline, restoring
    its data state from an Orbax checkpoint and producing the first batch, at
    step 1,000 and at step 0. The state is the position in the stream and the
    stream is random access, so nothing before it is read (the tf.data
    pipeline this replaced skipped every consumed record).
Prints a markdown table; --out also writes the numbers as JSON.
"""

import argparse
import functools
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from configs import quickstart  # noqa: E402
from configs import tiny  # noqa: E402
from jaxstyle import atomic_files  # noqa: E402
from jaxstyle import checkpointing  # noqa: E402
from jaxstyle import flops  # noqa: E402
from jaxstyle import input_pipeline  # noqa: E402
from jaxstyle import objectives  # noqa: E402
from jaxstyle import train  # noqa: E402

CONFIGS = {"quickstart": quickstart.get_config, "default": default.get_config,
           "tiny": tiny.get_config}
RESUME_STEP = 1000


def matmul_peak_tflops(n: int) -> float:
  """A float32 n³ matmul at the default precision (TF32 on recent GPUs)."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  start = time.perf_counter()
  for _ in range(10):
    out = f(a)
  jax.block_until_ready(out)
  return 2 * n**3 * 10 / (time.perf_counter() - start) / 1e12


def pipeline_throughput(data, batch, num_batches):
  """(seconds to the first batch, images/s over the next num_batches)."""
  start = time.perf_counter()
  batches = input_pipeline.create_train_dataset(data, global_batch_size=batch, seed=0)
  try:
    next(batches)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(num_batches):
      next(batches)
    return first, num_batches * batch / (time.perf_counter() - start)
  finally:
    batches.close()


def step_macs(trainer, state, batch) -> int:
  """MACs of one step's gradient, counted on the grouped-convolution form (the
  shifted multiply-adds of depthwise_impl='shifts' are the same work)."""
  counted = trainer.model.clone(depthwise_impl="conv")
  loss_fn = functools.partial(objectives.compute_losses, model=counted,
                              loss_cfg=trainer.config.loss)
  grad = jax.grad(lambda p: loss_fn(p, batch, trainer.style_targets, trainer.loss_net,
                                    objectives.noise_key(0, 0))[0])
  return flops.count_macs(grad, state.params)


def loop_step_times(config, steps):
  """(s/step on a fixed device batch, s/step with next(batches), MACs/step)."""
  trainer = train.Trainer(config, workdir=tempfile.mkdtemp())
  state = trainer.init_state()
  step = lambda s, x: trainer.train_step(s, x, trainer.style_image_device,
                                         trainer.precomputed_targets, trainer.loss_net)
  batches = input_pipeline.create_train_dataset(config.data, global_batch_size=config.batch_size,
                                                seed=config.seed)
  try:
    fixed = trainer.global_batch(next(batches))
    macs = step_macs(trainer, state, fixed)
    state, metrics = step(state, fixed)  # compile
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, fixed)
    jax.block_until_ready(metrics)
    without_data = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, trainer.global_batch(next(batches)))
    jax.block_until_ready(metrics)
    with_data = (time.perf_counter() - start) / steps
  finally:
    batches.close()
  return without_data, with_data, macs


def resume_startup(data, batch, workdir):
  """Seconds from nothing to the first batch: fresh at step 0, and restored
  from a checkpoint of step RESUME_STEP (checked against an iterator that
  was positioned there directly)."""
  manager = checkpointing.create_manager(workdir, data_items=(checkpointing.DATA_ITEM,))
  at_step = input_pipeline.create_train_dataset(data, global_batch_size=batch, seed=0,
                                                start_step=RESUME_STEP)
  checkpointing.save(manager, RESUME_STEP, {"step": np.int32(RESUME_STEP)}, {},
                     force=True, data={checkpointing.DATA_ITEM: at_step})
  manager.wait_until_finished()
  want = next(at_step)
  at_step.close()
  times = {}
  for step in (0, RESUME_STEP):
    start = time.perf_counter()
    batches = input_pipeline.create_train_dataset(data, global_batch_size=batch, seed=0)
    if step:
      assert checkpointing.restore_data_iterator(manager, step, batches)
    got = next(batches)
    times[step] = time.perf_counter() - start
    batches.close()
    if step:
      np.testing.assert_array_equal(got, want)
  return times


def set_override(config, item: str) -> None:
  """KEY=VALUE: VALUE read as JSON (numbers, true/false, lists), else as a string."""
  key, value = item.split("=", 1)
  try:
    value = json.loads(value)
  except json.JSONDecodeError:
    pass
  *parents, leaf = key.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="quickstart,default",
                      help=f"comma-separated, of {sorted(CONFIGS)}")
  parser.add_argument("--batch_sizes", default="",
                      help="comma-separated global batch sizes (default: each config's)")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data_dir of the offline COCO (default: the quickstart's)")
  parser.add_argument("--steps", type=int, default=3, help="timed training steps per loop")
  parser.add_argument("--pipeline_images", type=int, default=320,
                      help="images the pipeline-alone column times (per batch size)")
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="peak of the MFU column; 0: measure a float32 matmul")
  parser.add_argument("--matmul_size", type=int, default=4096)
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config override for every row, e.g. data.num_workers=8")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  data_dir = args.data_dir or quickstart.get_config().data.data_dir
  peak = args.peak_tflops or matmul_peak_tflops(args.matmul_size)
  peak_source = "given" if args.peak_tflops else f"f32 {args.matmul_size}³ matmul, measured"

  print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"{jax.device_count()} device(s), {os.cpu_count()} CPU threads; peak "
        f"{peak:.2f} TFLOP/s ({peak_source}); data: offline coco/2017 in {data_dir}\n")
  print("| config | batch @ size | workers | pipeline images/s | step images/s (no data) "
        "| pipeline / step | loop images/s (with data) | GFLOP/step | TFLOP/s | MFU "
        f"| first batch s | resume start-up s, step 0 / {RESUME_STEP:,} |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  results = {"peak_tflops": peak, "peak_source": peak_source, "rows": []}
  for name in args.configs.split(","):
    base = CONFIGS[name]()
    sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else [
        base.batch_size]
    for i, batch in enumerate(sizes):
      config = CONFIGS[name]()
      config.data.data_dir = data_dir
      config.batch_size = batch
      for item in args.set:
        set_override(config, item)
      size = config.data.image_size
      first, pipeline = pipeline_throughput(config.data, batch,
                                            max(args.pipeline_images // batch, 2))
      without_data, with_data, macs = loop_step_times(config, args.steps)
      resume = {}
      if i == 0:
        with tempfile.TemporaryDirectory() as workdir:
          resume = resume_startup(config.data, batch, workdir)
      tflops = 2 * macs / without_data / 1e12
      row = dict(
          config=name, batch=batch, size=size, workers=input_pipeline.num_workers(config.data),
          pipeline_images_per_s=pipeline, first_batch_s=first,
          step_images_per_s=batch / without_data, loop_images_per_s=batch / with_data,
          ratio=pipeline * without_data / batch, step_s_without_data=without_data,
          step_s_with_data=with_data, gflop_per_step=2 * macs / 1e9, tflops=tflops,
          mfu=tflops / peak, resume_startup_s={str(k): v for k, v in resume.items()})
      results["rows"].append(row)
      resumed = f"{resume[0]:.2f} / {resume[RESUME_STEP]:.2f}" if resume else ""
      print(f"| {name} | {batch} @ {size}² | {row['workers']} | {pipeline:.1f} "
            f"| {row['step_images_per_s']:.2f} | {row['ratio']:.1f}× "
            f"| {row['loop_images_per_s']:.2f} | {row['gflop_per_step']:.1f} | {tflops:.3f} "
            f"| {row['mfu']:.1%} | {first:.2f} | {resumed} |", flush=True)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_files.write_json(args.out, results, sort_keys=False)


if __name__ == "__main__":
  main()
