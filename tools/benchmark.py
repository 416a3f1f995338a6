r"""Speed of jaxstyle's training step and inference, with baselines from the same run.

  python tools/benchmark.py [--batch 4 --size 256 --steps 5 --torch_baseline]

Prints a markdown table:
  * fp32 GEMM peak of this backend (a 2048² matmul): the roof for everything else;
  * the training step (U-Net + VGG16 perceptual loss to relu4_3, SGD) and its
    parts: VGG forward+backward for the stylized batch, VGG forward for the
    content targets, U-Net forward+backward, the input pipeline;
  * the same step with XLA's grouped convolution for the depthwise layers
    (depthwise_impl='conv'), the form GPUs/TPUs use;
  * the pytorch/examples fast-neural-style recipe (TransformerNet + VGG16,
    Adam) in PyTorch, when torch is installed (`--torch_baseline`);
  * inference ms per image at 256/512/1024: JAX (jit) and the ONNX export
    (jaxstyle.export, InstanceNormalization: what `--onnx_norms auto` ships
    when it passes the check) under onnxruntime, same parameters, same run,
    for the configured network and for the full-resolution network
    (configs/fullres.py);
  * both networks' ONNX with `--onnx_norms exact` at the largest size;
  * for all four ONNX files, a fresh process (jaxstyle.onnx_inference, no JAX)
    with onnxruntime's defaults and with low_memory=True: peak memory (VmHWM)
    after one inference at the largest size, and ms per image after it.

`--set KEY=VALUE` overrides the config for every row (e.g.
`--set model.features=(16,32,64)`).

`--train_run STEPS` also trains the config for STEPS steps on real photos
(`--train_images`: a folder, or a COCO-layout train2017.zip such as the one
tools/prepare_offline_coco.py writes) and reports the loss curve, the steady
images/s and a gallery. Its batches are plain numpy random crops + flips of
the photos, not the input pipeline (tools/gpu_run.sh trains with the real
one); it needs neither TensorFlow nor a prepared TFDS dataset.
"""

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import quickstart  # noqa: E402
from configs import default  # noqa: E402
from configs import fullres  # noqa: E402
from jaxstyle import atomic_files  # noqa: E402
from jaxstyle import flops  # noqa: E402
from jaxstyle import models  # noqa: E402
from jaxstyle import objectives  # noqa: E402
from jaxstyle import run_lib  # noqa: E402
from jaxstyle import timing  # noqa: E402
from jaxstyle import train  # noqa: E402
from jaxstyle.models import half_precision  # noqa: E402

STYLE_LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


def timeit(fn, *args, repeats=3):
  """Median seconds per call after one warm-up (compilation) call."""
  ready = lambda: jax.block_until_ready(fn(*args))
  return float(np.median(timing.call_seconds(ready, repeats=repeats)))


def gemm_peak(n=2048):
  a = jnp.ones((n, n), jnp.float32)
  seconds = timeit(jax.jit(lambda a: a @ a), a, repeats=5)
  return 2 * n ** 3 / seconds / 1e9


def step_rows(config, batch, size, steps):
  """Rows for the full training step and its parts."""
  trainer = train.Trainer(config, workdir="/tmp/jaxstyle-benchmark")
  state = trainer.init_state()
  images = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
  x = trainer.global_batch(np.asarray(images))
  step = lambda s: trainer.train_step(s, x, trainer.style_image_device,
                                     trainer.precomputed_targets, trainer.loss_net)
  state, _ = step(state)  # compile
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / steps

  # MACs are counted on the grouped-convolution form: the shifted
  # multiply-adds do the same work but are not convolutions in the jaxpr.
  counted = trainer.model.clone(depthwise_impl="conv")
  loss_fn = functools.partial(objectives.compute_losses, model=counted, loss_cfg=config.loss)
  grad = jax.grad(lambda p: loss_fn(p, x, trainer.style_targets, trainer.loss_net)[0])
  step_macs = flops.count_macs(grad, state.params)

  net = trainer.loss_net
  vgg_grad = jax.jit(jax.grad(
      lambda im: sum(jnp.sum(v) for v in net.features(im, STYLE_LAYERS).values())))
  vgg_content = jax.jit(lambda im: net.features(im, ["relu2_2"]))
  model = trainer.model
  unet_grad = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x))))
  unet_grad_counted = jax.grad(lambda p: jnp.sum(counted.apply({"params": p}, x)))
  parts = [
      ("VGG16 fwd+bwd to relu4_3 (stylized)", vgg_grad, (x,), vgg_grad),
      ("VGG16 fwd to relu2_2 (content targets)", vgg_content, (x,), vgg_content),
      ("U-Net fwd+bwd", unet_grad, (state.params,), unet_grad_counted),
  ]
  if config.loss.stability_weight and config.loss.stability_perturbation == "fp16":
    # The stability term's second pass: the same network, float16-rounded.
    fp16_grad = lambda m: jax.grad(
        lambda p: jnp.sum(half_precision.apply_fp16(m, p, x)))
    parts.append(("U-Net fwd+bwd rounded to fp16 (stability term)",
                  jax.jit(fp16_grad(model)), (state.params,), fp16_grad(counted)))
  rows = [(f"train step, batch {batch} @ {size}² ({config.model.depthwise_impl} depthwise)",
           step_s, batch / step_s, step_macs)]
  for name, fn, args, counted_fn in parts:
    macs = flops.count_macs(counted_fn, *args)
    seconds = timeit(fn, *args)
    rows.append((f"  {name}", seconds, None, macs))
  return rows


def pipeline_row(batch, size):
  cfg = quickstart.get_config().data
  cfg.image_size, cfg.resize_min = size, size
  try:
    from jaxstyle import input_pipeline  # Grain: no TensorFlow
    it = input_pipeline.create_train_dataset(cfg, global_batch_size=batch, seed=0)
    next(it)
  except Exception as e:  # e.g. the offline data is not prepared
    return (f"  input pipeline (offline COCO): skipped: {str(e).splitlines()[0][:60]}",
            float("nan"), None, 0)
  n = 20
  start = time.perf_counter()
  for _ in range(n):
    next(it)
  seconds = (time.perf_counter() - start) / n
  it.close()
  return ("  input pipeline (offline COCO), per batch", seconds, batch / seconds, 0)


def torch_baseline_row(batch, size, steps, device="cpu"):
  """pytorch/examples fast_neural_style: TransformerNet + VGG16 to relu4_3, Adam."""
  import torch
  from torch import nn as tnn
  torch.manual_seed(0)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

  class ConvLayer(tnn.Module):
    def __init__(self, cin, cout, k, stride=1, upsample=False):
      super().__init__()
      self.upsample = upsample
      self.pad = tnn.ReflectionPad2d(k // 2)
      self.conv = tnn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
      if self.upsample:
        x = tnn.functional.interpolate(x, scale_factor=2, mode="nearest")
      return self.conv(self.pad(x))

  def block(cin, cout, k, stride=1, upsample=False):
    return [ConvLayer(cin, cout, k, stride, upsample),
            tnn.InstanceNorm2d(cout, affine=True), tnn.ReLU()]

  class Residual(tnn.Module):
    def __init__(self, c):
      super().__init__()
      self.body = tnn.Sequential(*block(c, c, 3)[:3], ConvLayer(c, c, 3),
                                 tnn.InstanceNorm2d(c, affine=True))

    def forward(self, x):
      return x + self.body(x)

  transformer = tnn.Sequential(
      *block(3, 32, 9), *block(32, 64, 3, 2), *block(64, 128, 3, 2),
      *[Residual(128) for _ in range(5)],
      *block(128, 64, 3, upsample=True), *block(64, 32, 3, upsample=True),
      ConvLayer(32, 3, 9))
  params = sum(p.numel() for p in transformer.parameters())
  widths = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
  vgg, cin = [], 3
  for w in widths:
    if w == "M":
      vgg.append(tnn.MaxPool2d(2))
    else:
      vgg += [tnn.Conv2d(cin, w, 3, padding=1), tnn.ReLU()]
      cin = w
  vgg = tnn.Sequential(*vgg).requires_grad_(False).to(device)
  transformer = transformer.to(device)
  taps = {3, 8, 15, 22}  # relu1_2, relu2_2, relu3_3, relu4_3

  def features(x):
    out = []
    for i, layer in enumerate(vgg):
      x = layer(x)
      if i in taps:
        out.append(x)
    return out

  def gram(f):
    b, c, h, w = f.shape
    f = f.view(b, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)

  style = [gram(f) for f in features(torch.rand(1, 3, size, size, device=device))]
  opt = torch.optim.Adam(transformer.parameters(), 1e-3)
  x = torch.rand(batch, 3, size, size, device=device)

  def one_step():
    opt.zero_grad()
    y = transformer(x)
    fy, fx = features(y), features(x)
    loss = 1e5 * tnn.functional.mse_loss(fy[1], fx[1])
    loss = loss + 1e10 * sum(tnn.functional.mse_loss(gram(a), s.expand(batch, -1, -1))
                             for a, s in zip(fy, style))
    loss.backward()
    opt.step()

  one_step()
  sync()
  start = time.perf_counter()
  for _ in range(steps):
    one_step()
  sync()
  seconds = (time.perf_counter() - start) / steps
  return (f"baseline: PyTorch {torch.__version__} ({device}) TransformerNet ({params:,} "
          f"params) + VGG16, Adam, batch {batch} @ {size}²", seconds, batch / seconds, None)


def inference_rows(config, sizes, count_only=False):
  model = models.create_model(config.model)
  params = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  apply = jax.jit(model.apply)
  rows = []
  for size in sizes:
    x = jnp.zeros((1, size, size, 3))
    macs = flops.count_macs(model.clone(depthwise_impl="conv").apply, params, x)
    seconds = None if count_only else timeit(apply, params, x)
    rows.append((f"inference 1 image @ {size}² (JAX jit)", seconds, None, macs))
  return rows


def base_config(overrides):
  """configs/default.py with `--set KEY=VALUE` overrides applied."""
  import ast
  config = default.get_config()
  for item in overrides:
    key, _, text = item.partition("=")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    config.update_from_flattened_dict({key: value})
  return config


def with_fullres_model(config):
  """`config` with configs/fullres.py's network (the full-resolution one, timed next
  to the configured one in the same run)."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.model = fullres.get_config().model
  return config


def onnx_rows(config, sizes, threads, label="", exact_norms=False):
  """The same network exported to ONNX (jaxstyle.export), run by onnxruntime."""
  import onnx
  import onnxruntime as ort
  from jaxstyle import onnx_inference
  from jaxstyle.export import model as export_model
  from jaxstyle.export import onnx_export
  model = models.create_model(config.model)
  params = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))["params"]
  exported = export_model.from_params(config.model.to_dict(), params)
  proto, _ = onnx_export.trace(exported, exact_norms=exact_norms)
  sess = onnx_inference.session(proto.SerializeToString(), threads)
  rows = []
  for size in sizes:
    x = np.random.default_rng(0).random((1, size, size, 3), np.float32)
    seconds = timeit(lambda x: sess.run(None, {"image": x})[0], x)
    rows.append((f"{label}inference 1 image @ {size}² (onnxruntime {ort.__version__}, "
                 f"{threads} threads{', exact norms' if exact_norms else ''})", seconds, None,
                 None))
  path = os.path.join(tempfile.mkdtemp(prefix="jaxstyle-bench-"), "model.onnx")
  onnx.save(proto, path)
  return rows, path


def load_photos(path, short_side):
  """RGB photos in [0, 1], short side resized: a folder, or a COCO-layout zip.

  Resized with PIL on the host: an eager jax.image.resize per photo compiles
  once per distinct shape, which on a GPU takes minutes for a few dozen photos.
  """
  import io
  import zipfile
  from PIL import Image
  from jaxstyle import images as image_io
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      blobs = [archive.read(n) for n in sorted(archive.namelist())
               if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    photos = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]
  else:
    photos = [Image.fromarray(np.uint8(np.round(image_io.load_image(p) * 255)))
              for p in image_io.find_images([path])]
  if not photos:
    raise FileNotFoundError(f"no images in {path!r}")
  out = []
  for photo in photos:
    scale = short_side / min(photo.size)
    size = tuple(max(short_side, round(s * scale)) for s in photo.size)
    out.append(np.asarray(photo.resize(size, Image.Resampling.LANCZOS), np.float32) / 255)
  return out


def random_crops(photos, rng, batch, size):
  """A batch of random size×size crops with random horizontal flips."""
  out = []
  for i in rng.integers(len(photos), size=batch):
    photo = photos[i]
    top = rng.integers(photo.shape[0] - size + 1)
    left = rng.integers(photo.shape[1] - size + 1)
    crop = photo[top:top + size, left:left + size]
    out.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
  return np.stack(out)


def train_run(config, steps, photos_path, out_dir, log_every=50):
  """Trains `steps` steps on real photos; returns (rows, curve, summary)."""
  config.num_train_steps = steps
  config.optimizer.warmup_steps = min(config.optimizer.warmup_steps, steps // 10)
  trainer = train.Trainer(config, workdir=out_dir)
  state = trainer.init_state()
  size = config.data.image_size
  photos = load_photos(photos_path, max(size, config.data.resize_min))
  eval_images = run_lib.load_eval_images(config, trainer.model.size_multiple)
  initial, _ = trainer.evaluate(state.params, eval_images)
  rng = np.random.default_rng(config.seed)
  curve, start, compile_s = [], time.perf_counter(), None
  for step in range(1, steps + 1):
    batch = trainer.global_batch(random_crops(photos, rng, config.batch_size, size))
    state, metrics = trainer.train_step(state, batch, trainer.style_image_device,
                                        trainer.precomputed_targets, trainer.loss_net)
    if step == 1:
      jax.block_until_ready(metrics)
      compile_s, start = time.perf_counter() - start, time.perf_counter()
    if step % log_every == 0 or step == steps:
      m = jax.device_get(metrics)
      if not np.isfinite(m["loss"]):
        raise FloatingPointError(f"loss is {m['loss']} at step {step}")
      curve.append({"step": step, "seconds": time.perf_counter() - start,
                    **{k: float(v) for k, v in m.items()}})
      print(f"step {step}: loss {m['loss']:.4f} style {m['style_loss']:.4f} "
            f"content {m['content_loss']:.4f}", flush=True)
  jax.block_until_ready(state)
  seconds = (time.perf_counter() - start) / max(steps - 1, 1)
  final, stylized = trainer.evaluate(state.params, eval_images)
  grid = run_lib.save_gallery(os.path.join(out_dir, "gallery"), [n for n, _ in eval_images],
                            [im for _, im in eval_images], stylized)
  summary = {"steps": steps, "batch": config.batch_size, "size": size,
             "photos": len(photos), "compile_s": compile_s, "step_s": seconds,
             "images_per_s": config.batch_size / seconds, "gallery": grid,
             "initial_eval": initial, "final_eval": final}
  row = (f"train run: {steps} steps, batch {config.batch_size} @ {size}² on "
         f"{len(photos)} photos (style {initial['style_loss']:.2f}→{final['style_loss']:.2f}, "
         f"content {initial['content_loss']:.2f}→{final['content_loss']:.2f})",
         seconds, config.batch_size / seconds, None)
  return [row], curve, summary


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec, so a
# child of this (multi-GB) process would report the parent's size. The image is
# random, not np.zeros: untouched zero pages are not resident and would hide
# the input buffer.
_PEAK = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
from jaxstyle import onnx_inference
s = onnx_inference.session({path!r}, {threads}, low_memory={low_memory})
x = np.random.default_rng(0).random((1, {size}, {size}, 3), np.float32)
onnx_inference.run(s, x)
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
import time
times = []
for _ in range(3):
  start = time.perf_counter()
  onnx_inference.run(s, x)
  times.append(time.perf_counter() - start)
print(peak, sorted(times)[1])
"""


def onnx_peak_memory_mb(path, size, threads, low_memory):
  """A fresh process imports onnxruntime, loads, runs one inference: its peak
  RSS (MB) then, and the median seconds of three more inferences."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-c", _PEAK.format(
      root=root, path=path, size=size, threads=threads, low_memory=low_memory)],
      capture_output=True, text=True, check=True).stdout
  peak_kb, seconds = out.strip().splitlines()[-1].split()
  return int(peak_kb) / 1024, float(seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--sizes", default="256,512,1024")
  parser.add_argument("--torch_baseline", action="store_true")
  parser.add_argument("--torch_device", default="cpu", help="'cpu' or 'cuda'")
  parser.add_argument("--vgg_path", default="", help="overrides config.vgg.path")
  parser.add_argument("--train_run", type=int, default=0,
                      help="also train this many steps on --train_images")
  parser.add_argument("--train_images", default="",
                      help="folder or COCO-layout zip of photos for --train_run")
  parser.add_argument("--out", default="/tmp/jaxstyle-benchmark",
                      help="where --train_run writes its gallery and curve")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="onnxruntime intra-op threads")
  parser.add_argument("--no_onnx", action="store_true", help="skip the onnxruntime rows")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config override for every row, e.g. model.patch_size=1 "
                      "(value parsed as a Python literal)")
  parser.add_argument("--inference_only", action="store_true",
                      help="only the GEMM peak and the inference rows")
  args = parser.parse_args()

  config = base_config(args.set)
  config.batch_size = args.batch
  config.data.image_size = args.size
  config.style.size = args.size
  config.vgg.path = args.vgg_path
  model = models.create_model(config.model)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 256, 256, 3)))
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes))

  peak = gemm_peak()
  rows = [(f"fp32 GEMM 2048³ ({peak:.0f} GFLOP/s peak)", 2 * 2048 ** 3 / peak / 1e9, None,
           2048 ** 3)]
  if not args.inference_only:
    rows += step_rows(config, args.batch, args.size, args.steps)
    rows.append(pipeline_row(args.batch, args.size))
    conv_config = base_config(args.set)
    conv_config.update_from_flattened_dict({
        "batch_size": args.batch, "data.image_size": args.size, "style.size": args.size,
        "model.depthwise_impl": "conv", "vgg.path": args.vgg_path})
    rows.append(step_rows(conv_config, args.batch, args.size, args.steps)[0])
  if args.torch_baseline:
    rows.append(torch_baseline_row(args.batch, args.size, args.steps, args.torch_device))
  sizes = [int(s) for s in args.sizes.split(",")]
  rows += inference_rows(config, sizes)
  onnx_path = None
  if not args.no_onnx:
    ort_rows, onnx_path = onnx_rows(config, sizes, args.threads)
    macs = [r[3] for r in rows[-len(sizes):]]  # the JAX rows' counts
    rows += [(name, sec, ips, m) for (name, sec, ips, _), m in zip(ort_rows, macs)]
    variant = with_fullres_model(config)
    base_macs = [r[3] for r in inference_rows(variant, sizes, count_only=True)]
    base_rows, base_path = onnx_rows(variant, sizes, args.threads,
                                     label="full-resolution U-Net (configs/fullres.py): ")
    rows += [(name, sec, ips, m) for (name, sec, ips, _), m in zip(base_rows, base_macs)]
    # `--onnx_norms exact` (float64 statistics) at the largest size.
    exact_paths = {}
    for name, cfg, label, m in (("default", config, "", macs[-1]),
                                ("full-resolution U-Net", variant, "full-resolution U-Net: ",
                                 base_macs[-1])):
      exact_rows, exact_paths[name] = onnx_rows(cfg, sizes[-1:], args.threads, label=label,
                                                exact_norms=True)
      rows += [(n, sec, ips, m) for n, sec, ips, _ in exact_rows]

  if args.train_run:
    run_config = base_config(args.set)
    run_config.update_from_flattened_dict({
        "batch_size": args.batch, "data.image_size": args.size, "style.size": args.size,
        "vgg.path": args.vgg_path})
    run_rows, curve, summary = train_run(run_config, args.train_run, args.train_images,
                                         args.out)
    rows += run_rows
    atomic_files.write_json(os.path.join(args.out, "train_run.json"),
                            {"summary": summary, "curve": curve}, indent=1, sort_keys=False)

  print(f"\nbackend: {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"{jax.device_count()} device(s), {os.cpu_count()} CPU threads; "
        f"U-Net params {n_params:,}, MACs @256² "
        f"{next(r[3] for r in rows if r[0].startswith('inference') and r[3]) / 1e9:.3f} G\n")
  print("| what | ms | images/s | GMAC | GFLOP/s | % of GEMM peak |")
  print("|---|---:|---:|---:|---:|---:|")
  for name, seconds, ips, macs in rows:
    gflops = 2 * macs / seconds / 1e9 if macs else None
    cells = [name, f"{seconds * 1e3:.1f}", f"{ips:.2f}" if ips else "",
             f"{macs / 1e9:.2f}" if macs else "", f"{gflops:.1f}" if gflops else "",
             f"{100 * gflops / peak:.0f}%" if gflops else ""]
    print("| " + " | ".join(cells) + " |")
  if onnx_path:
    largest = max(sizes)
    print(f"\nonnxruntime peak process memory (VmHWM), one {largest}² inference in a fresh "
          "process:")
    print("| model | norms | session | peak MB | ms per image after the first |\n"
          "|---|---|---|---:|---:|")
    for name, path in (("default", onnx_path), ("full-resolution U-Net", base_path)):
      for norms, p in (("fast", path), ("exact", exact_paths[name])):
        for low in (False, True):
          mb, seconds = onnx_peak_memory_mb(p, largest, args.threads, low)
          print(f"| {name} | {norms} | {'low_memory=True' if low else 'onnxruntime defaults'}"
                f" | {mb:.0f} | {seconds * 1e3:.1f} |")


if __name__ == "__main__":
  main()
