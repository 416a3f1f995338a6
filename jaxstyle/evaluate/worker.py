"""One model's inference in a fresh process, so that its memory numbers are its own.

`spawn` writes a spec (JSON) and runs `python -m jaxstyle.evaluate --worker
SPEC`; `run_worker` is that child. It imports only what inference needs (no
TensorFlow), so its baseline is Python + JAX (or onnxruntime) + numpy, and
writes the outputs (.npz) and a result JSON (times, peak and baseline RSS).
"""

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import ml_collections
import numpy as np

from jaxstyle import atomic_files
from jaxstyle import images as image_io
from jaxstyle import timing

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env() -> dict[str, str]:
  """The environment of the evaluation's child processes: this checkout first on PYTHONPATH."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _memory_mb(field: str) -> float:
  """VmRSS (now) or VmHWM (peak) of this process, MiB.

  From /proc/self/status rather than getrusage: ru_maxrss survives exec, so a
  worker started by a big parent would report the parent's peak.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _pad_apply(apply_fn, multiple: int):
  def run(image):
    padded, (h, w) = image_io.pad_to_multiple(image, multiple)
    return np.asarray(apply_fn(padded), np.float32)[:h, :w]
  return run


def _onnx_controls(session, style_weights) -> dict[str, np.ndarray]:
  """A multi-style export's other inputs: the chosen style(s), full strength."""
  from jaxstyle import style_controls  # pylint: disable=g-import-not-at-top
  inputs = {i.name for i in session.get_inputs()}
  feeds = {}
  if "style_weights" in inputs:
    styles = session.get_modelmeta().custom_metadata_map.get("styles", "").split(",")
    feeds["style_weights"] = style_controls.parse_style_weights(style_weights, styles)
  if "strength" in inputs:
    feeds["strength"] = np.ones(1, np.float32)
  return feeds


def run_worker(spec_path: str) -> None:
  """Runs the spec (JSON) of `spawn`; writes outputs .npz and result JSON."""
  with open(spec_path) as f:
    spec = json.load(f)
  data = np.load(spec["images"])
  images, speed_image = data["images"], data["speed_image"]
  result: dict[str, Any] = {}
  outputs = []
  if spec["kind"] == "jax":
    import jax  # pylint: disable=g-import-not-at-top
    from jaxstyle import stylize  # pylint: disable=g-import-not-at-top
    result["baseline_rss_mb"] = _memory_mb("VmRSS")
    apply_fn, multiple, meta = stylize.load_stylizer(
        spec["workdir"], style_weights=spec.get("style_weights"))
    run = _pad_apply(apply_fn, multiple)
    outputs = [run(image) for image in images]
    times = timing.call_seconds(run, speed_image, repeats=spec["repeats"], warmup=spec["warmup"])
    result.update(step=meta.get("step"), num_params=meta.get("num_params"),
                  backend=f"JAX {jax.__version__} jit, {jax.default_backend()}")
  elif spec["kind"] == "onnx":
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
    result["baseline_rss_mb"] = _memory_mb("VmRSS")
    session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    controls = _onnx_controls(session, spec.get("style_weights"))
    run = lambda image: session.run(
        None, {name: image[None].astype(np.float32), **controls})[0][0]
    times = timing.call_seconds(run, speed_image, repeats=spec["repeats"], warmup=spec["warmup"])
    result["backend"] = f"onnxruntime {ort.__version__} CPU"
  elif spec["kind"] == "gatys":
    from jaxstyle import nst  # pylint: disable=g-import-not-at-top
    from jaxstyle.models import vgg  # pylint: disable=g-import-not-at-top
    config = ml_collections.ConfigDict(spec["nst_config"])
    result["baseline_rss_mb"] = _memory_mb("VmRSS")
    loss_net = vgg.load_loss_network(config.vgg.arch, config.vgg.source,
                                     config.vgg.path or None)
    style = data["style"]
    times = []
    for image in (images if len(images) else speed_image[None]):
      start = time.perf_counter()
      out, info = nst.stylize(image, style, config, loss_net=loss_net, progress=True)
      times.append(time.perf_counter() - start)
      if len(images):
        outputs.append(np.asarray(out, np.float32))
      result["steps"] = info.get("steps")
    result["backend"] = "JAX jit, full optimisation per image"
  else:
    raise ValueError(f"unknown worker kind {spec['kind']!r}")
  result["peak_rss_mb"] = _memory_mb("VmHWM")
  result["seconds"] = times
  result["images_per_s"] = (1.0 / float(np.mean(times)) if spec["kind"] == "gatys"
                            else 1.0 / float(np.median(times)))
  with atomic_files.replacing(spec["outputs"], binary=True) as f:
    np.savez(f, outputs=np.asarray(outputs, np.float32)
             .reshape((len(outputs),) + speed_image.shape))
  atomic_files.write_json(spec["result"], result, indent=None, sort_keys=False)


def spawn(work_dir: str, name: str, spec: dict[str, Any]) -> tuple[dict, np.ndarray]:
  """Runs one worker process; returns its result and outputs.

  Its output is collected and only the last line is kept, for the error of a
  worker that fails.
  """
  spec = dict(spec, outputs=os.path.join(work_dir, f"{name}.out.npz"),
              result=os.path.join(work_dir, f"{name}.result.json"))
  spec_path = os.path.join(work_dir, f"{name}.spec.json")
  with open(spec_path, "w") as f:
    json.dump(spec, f)
  proc = subprocess.run([sys.executable, "-m", "jaxstyle.evaluate", "--worker", spec_path],
                        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, check=False)
  if proc.returncode != 0:
    lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    raise RuntimeError(f"{spec['kind']} worker exited with {proc.returncode}: "
                       + (lines[-1] if lines else "no output"))
  with open(spec["result"]) as f:
    result = json.load(f)
  return result, np.load(spec["outputs"])["outputs"]
