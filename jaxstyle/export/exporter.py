"""Builds, verifies and publishes each format; what `python -m jaxstyle.export` runs.

Every artifact is written into a staging folder inside `out`, checked against
JAX there (the saved file, loaded back by the runtime or interpreter that will
read it), and only then renamed to its final name. A failed check raises
`ExportError` naming the format and the size (or the op) and leaves the
previous artifact, if any, untouched.
"""

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
import time

import numpy as np
from PIL import Image

from jaxstyle import atomic_files
from jaxstyle.export import model as model_lib
from jaxstyle.export.errors import ExportError

FORMATS = ("coreml", "onnx", "savedmodel")
# ONNX instance-norm graphs, and 'auto': 'fast' when it passes the
# verification, else 'exact' ('exact' without verification: only a check can
# vouch for float32 statistics).
ONNX_NORM_GRAPHS = ("exact", "fast")
ONNX_NORMS = ("auto",) + ONNX_NORM_GRAPHS
# Max abs error vs JAX, pixels in [0, 1]. fp16 also bounds the 99.9th
# percentile: its max is a handful of pixels in flat regions, where instance
# norm scales the rounding up (docs/export.md, "fp16"); 1e-2 is 2.6 gray levels
# of the 8-bit image the package returns.
TOLERANCE = {"onnx": 1e-4, "savedmodel": 1e-4, "coreml-fp32": 1e-4, "coreml-fp16": 3e-2}
P999_TOLERANCE = {"coreml-fp16": 1e-2}
DEFAULT_SIZES = {"onnx": ((256, 256), (512, 768), (1024, 1024)),
                 "savedmodel": ((256, 256), (512, 768), (1024, 1024)),
                 "coreml": ((256, 256), (512, 768), (2048, 2048))}
GOLDEN_MAX_SIDE = 1024  # larger golden files would be tens of MB each
_CONTENT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "content",
                        "amber.jpg")


@dataclasses.dataclass
class Check:
  size: tuple
  max_abs_error: float
  seconds: float
  batch: int = 1
  p999_abs_error: float | None = None  # 99.9th percentile: is the max one pixel or many?
  mean_abs_error: float | None = None
  controls: str = ""  # a multi-style model's setting (model.Controls.label)


def test_image(height: int, width: int) -> np.ndarray:
  """The bundled 1080² content photo at its own pixel scale: uint8 [H, W, 3].

  Centre-cropped when smaller, mirrored at the borders when larger (never
  resampled: an upscaled photo is unnaturally smooth, which is the worst case
  for fp16 instance norm and is measured separately in docs/export.md).
  """
  with Image.open(_CONTENT) as im:
    photo = np.asarray(im.convert("RGB"), np.uint8)
  ph, pw = photo.shape[:2]
  reps_h, reps_w = -(-height // ph), -(-width // pw)
  tiles = [[photo[::(-1) ** r, ::(-1) ** c] for c in range(reps_w)] for r in range(reps_h)]
  big = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
  top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
  return np.ascontiguousarray(big[top:top + height, left:left + width])


def parse_sizes(text: str) -> tuple:
  """'256,512x768' → ((256, 256), (512, 768))."""
  sizes = []
  for item in text.split(","):
    h, _, w = item.strip().partition("x")
    sizes.append((int(h), int(w or h)))
  return tuple(sizes)


def _check_sizes(model, fmt, sizes, low=1, high=None):
  for h, w in sizes:
    if h % model.multiple or w % model.multiple or min(h, w) < low or (high and max(h, w) > high):
      raise ExportError(f"{fmt}: verification size {h}x{w} is not valid: sides must be "
                        f"multiples of {model.multiple} in [{low}, {high or '∞'}]")


# What to do when an fp16 build misses its tolerance (docs/export.md, "fp16").
_FP16_HINT = ("; --coreml_precision fp32 builds a package verified to 1e-4, or "
              "--coreml_fp16_tolerance accepts a larger fp16 error")


def _compare(fmt, tolerance, size, got, want, batch=1, what=None, controls=""):
  """Max, 99.9th-percentile and mean abs error; raises if the max > tolerance
  (or the 99.9th percentile > P999_TOLERANCE[fmt])."""
  label = f"{fmt} [{controls}]" if controls else fmt
  if got.shape != want.shape:
    raise ExportError(f"{label}: at {size[0]}x{size[1]} the output has shape {got.shape}, "
                      f"JAX gives {want.shape}")
  if not np.isfinite(got).all():
    raise ExportError(f"{label}: at {size[0]}x{size[1]} the output has "
                      f"{int(got.size - np.isfinite(got).sum())} NaN/Inf values"
                      + (f" (first at {what})" if what else ""))
  diff = np.abs(got.astype(np.float64) - want)
  err, p999, mean = float(diff.max()), float(np.quantile(diff, 0.999)), float(diff.mean())
  if not err <= tolerance:
    raise ExportError(f"{label}: at {size[0]}x{size[1]} (batch {batch}) the max abs error vs "
                      f"JAX is {err:.3g} > {tolerance:g} (99.9th percentile {p999:.2g}, mean "
                      f"{mean:.2g})" + (_FP16_HINT if fmt == "coreml-fp16" else ""))
  if not p999 <= P999_TOLERANCE.get(fmt, np.inf):
    raise ExportError(f"{label}: at {size[0]}x{size[1]} (batch {batch}) the 99.9th percentile "
                      f"abs error vs JAX is {p999:.3g} > {P999_TOLERANCE[fmt]:g} (max {err:.2g}, "
                      f"mean {mean:.2g})" + _FP16_HINT)
  return err, p999, mean


def _verify_batched(fmt, run, model, sizes, tolerance):
  """Runs `run(images, controls)` on test images and compares with JAX; the
  first size as a batch of two different images, since batch is a dynamic
  dimension too. A multi-style model: at each of `model.control_settings()`."""
  checks = []
  for controls in model.control_settings():
    for i, (h, w) in enumerate(sizes):
      x = test_image(h, w)[None].astype(np.float32) / 255
      if i == 0:
        x = np.concatenate([x, x[:, ::-1, ::-1]])
      start = time.perf_counter()
      got = run(x, controls.inputs)
      seconds = time.perf_counter() - start
      err, p999, mean = _compare(fmt, tolerance, (h, w), got, model.reference(x, controls),
                                 len(x), controls=controls.label)
      checks.append(Check((h, w), err, seconds, len(x), p999, mean, controls.label))
  return checks


def verify_onnx(path, model, sizes, tolerance=TOLERANCE["onnx"]):
  from jaxstyle import onnx_inference
  sess = onnx_inference.session(path)
  return _verify_batched("onnx", lambda x, c: onnx_inference.run(sess, x, controls=c),
                         model, sizes, tolerance)


def verify_savedmodel(path, model, sizes, tolerance=TOLERANCE["savedmodel"]):
  from jaxstyle.export import tf_export
  runner = tf_export.Runner(path)
  return _verify_batched("savedmodel", lambda x, c: runner(x, **c), model, sizes, tolerance)


def verify_coreml(path, model, sizes, precision, golden_dir=None, tolerance=None):
  """Runs the SAVED package in the MIL interpreter; optionally writes goldens."""
  from jaxstyle.export import mil_interpreter
  fmt = f"coreml-{precision}"
  tolerance = TOLERANCE[fmt] if tolerance is None else tolerance
  try:
    prog, _ = mil_interpreter.load(path)
  except Exception as e:
    raise ExportError(f"{fmt}: the saved package {path} does not load back: {e}") from e
  checks = []
  for controls in model.control_settings():
    for h, w in sizes:
      image = test_image(h, w)
      start = time.perf_counter()
      try:
        outputs, bad = mil_interpreter.run(prog, {
            "image": image.astype(np.float32).transpose(2, 0, 1)[None], **controls.inputs})
      except mil_interpreter.UnsupportedOp as e:
        raise ExportError(f"{fmt}: {e}") from e
      seconds = time.perf_counter() - start
      if bad is not None:
        raise ExportError(f"{fmt}: at {h}x{w} op {bad.op_name} ({bad.op_type}) produced "
                          f"{bad.count} NaN/Inf values")
      got = outputs["stylized"][0].transpose(1, 2, 0).astype(np.float32) / 255
      want = model.reference(image[None].astype(np.float32) / 255, controls)[0]
      err, p999, mean = _compare(fmt, tolerance, (h, w), got, want, controls=controls.label)
      checks.append(Check((h, w), err, seconds, 1, p999, mean, controls.label))
      if golden_dir is not None and max(h, w) <= GOLDEN_MAX_SIDE:
        os.makedirs(golden_dir, exist_ok=True)
        suffix = re.sub(r"[^A-Za-z0-9_.@-]+", "_", controls.label)
        np.savez_compressed(os.path.join(golden_dir, f"{h}x{w}{'_' * bool(suffix)}{suffix}.npz"),
                            image=image, expected=want.astype(np.float32),
                            interpreter=got.astype(np.float16),
                            tolerance=np.float32(tolerance), precision=precision,
                            **controls.inputs)
  return checks


def build_onnx(model, path, params=None, norms="exact"):
  """norms='exact': instance norms as layer norm + per-channel Mul, Add (float64
  statistics in onnxruntime); 'fast': InstanceNormalization (float32
  statistics, ~20% faster, ~1e-4 off on 1024² planes). ('auto' is export()'s
  choice between the two.)"""
  import onnx
  from jaxstyle.export import onnx_export
  if norms not in ONNX_NORM_GRAPHS:
    raise ExportError(f"onnx: norms={norms!r}: choose from {list(ONNX_NORM_GRAPHS)}")
  proto, report = onnx_export.trace(model, params=params, exact_norms=norms == "exact")
  onnx.save(proto, path)
  report["ops"] = onnx_export.op_counts(proto)
  report["norms"] = norms
  return report


def build_coreml(model, path, precision="fp16", params=None, license=""):
  from jaxstyle.export import coreml_export
  from jaxstyle.export import onnx_export
  proto, _ = onnx_export.trace(model, io="nchw", params=params)
  style = model.metadata()["style"]
  descriptions = {}
  if model.conditional:
    descriptions["style_weights"] = (
        f"Weights >= 0 of the styles {model.metadata()['styles']} (normalised in the model): "
        "one-hot picks a style, others blend them")
  if model.strength_control:
    descriptions["strength"] = "Stylization strength in [0, 1]: 0 the photo, 1 the full style"
  mlmodel = coreml_export.convert(
      proto, precision=precision, metadata=model.metadata(), license=license,
      multiple=model.multiple, input_descriptions=descriptions,
      description=(f"jaxstyle {model.name} fast style transfer"
                   + (f", style '{style}'" if style else "") + f", training step {model.step}. "
                   f"Input and output RGB images; sides {coreml_export.MIN_SIZE}…"
                   f"{coreml_export.MAX_SIZE} px, multiples of {model.multiple}."))
  mlmodel.save(path)
  from jaxstyle.export import mil_interpreter
  prog, spec = mil_interpreter.load(path)
  return {"ops": mil_interpreter.op_counts(prog), "precision": precision,
          "spec_version": int(spec.specificationVersion),
          "deployment_target": coreml_export.TARGET_NAME}


def build_savedmodel(model, path, params=None):
  from jaxstyle.export import tf_export
  tf_export.export(model, path, params=params)
  return {"platforms": list(tf_export.PLATFORMS)}


@contextlib.contextmanager
def _as_export_error(fmt, stage):
  """Library errors (an unsupported primitive in jax2onnx, a node onnxruntime
  cannot run, ...) become one ExportError line that keeps their message."""
  try:
    yield
  except ExportError:
    raise
  except Exception as e:
    message = " ".join(str(e).split())
    raise ExportError(f"{fmt}: {stage} failed: {type(e).__name__}: {message[:800]}") from e


def _size_of(path):
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def publish(src, dst):
  """Renames src over dst; an existing dst folder is moved aside, then removed."""
  old = None
  if os.path.isdir(dst) and not os.path.islink(dst):
    old = tempfile.mkdtemp(prefix=".replaced-", dir=os.path.dirname(dst))
    os.replace(dst, os.path.join(old, "x"))
  os.replace(src, dst)
  if old:
    shutil.rmtree(old, ignore_errors=True)


def artifact_name(model, name=None):
  if name:
    return name
  style = os.path.splitext(os.path.basename(model.metadata()["style"]))[0]
  return re.sub(r"[^A-Za-z0-9_-]+", "_", style) or "jaxstyle"


def export(workdir, out, formats=FORMATS, *, step=None, name=None, verify=True, sizes=None,
           coreml_precision="fp16", golden=True, license="", model=None, log=print,
           tolerances=None, onnx_norms="auto"):
  """Exports `formats`; returns the report (also written to out/<name>.export.json).

  `tolerances` overrides entries of TOLERANCE (max abs error, pixels in [0, 1]).
  """
  unknown = set(formats) - set(FORMATS)
  if onnx_norms not in ONNX_NORMS:
    raise ExportError(f"onnx: norms={onnx_norms!r}: choose from {list(ONNX_NORMS)}")
  if unknown:
    raise ExportError(f"unknown format(s) {sorted(unknown)}; choose from {list(FORMATS)}")
  tolerances = {**TOLERANCE, **(tolerances or {})}
  for key, value in tolerances.items():
    if key not in TOLERANCE or not 0 < value < 1:
      raise ExportError(f"tolerance {key}={value}: keys are {list(TOLERANCE)}, values in (0, 1)")
  model = model or model_lib.load(workdir, step)
  sizes = {**DEFAULT_SIZES, **(sizes or {})}
  from jaxstyle.export import coreml_export
  if verify:
    for fmt in formats:
      _check_sizes(model, fmt, sizes[fmt], *((coreml_export.MIN_SIZE, coreml_export.MAX_SIZE)
                                             if fmt == "coreml" else
                                             (2 * model.multiple,) if fmt == "savedmodel" else ()))
  name = artifact_name(model, name)
  os.makedirs(out, exist_ok=True)
  report = {"model": model.name, "params": model.num_params, "step": model.step,
            "workdir": os.path.abspath(workdir) if workdir else None, "formats": {}}
  # ONNX with norms='auto' has a second candidate: exact norms, should the
  # fast graph miss the check (without a check, only exact is safe).
  onnx_candidates = ((["fast", "exact"] if verify else ["exact"]) if onnx_norms == "auto"
                     else [onnx_norms])
  staging = tempfile.mkdtemp(prefix=".export-staging-", dir=out)
  try:
    for fmt in formats:
      started = time.perf_counter()
      final = os.path.join(out, {"onnx": f"{name}.onnx", "coreml": f"{name}.mlpackage",
                                 "savedmodel": f"{name}_savedmodel"}[fmt])
      tmp = os.path.join(staging, os.path.basename(final))
      golden_tmp = os.path.join(staging, f"{name}.golden")
      variants = onnx_candidates if fmt == "onnx" else [None]
      tolerance = tolerances[f"coreml-{coreml_precision}" if fmt == "coreml" else fmt]
      fallback = None
      for variant in variants:
        log(f"jaxstyle.export: {fmt}: building {final}"
            + (f" ({variant} norms)" if variant else ""))
        with _as_export_error(fmt, "building"):
          if fmt == "onnx":
            info = build_onnx(model, tmp, norms=variant)
          elif fmt == "coreml":
            info = build_coreml(model, tmp, coreml_precision, license=license)
          else:
            info = build_savedmodel(model, tmp)
        info["bytes"] = _size_of(tmp)
        if not verify:
          break
        log(f"jaxstyle.export: {fmt}: verifying at "
            + ", ".join(f"{h}x{w}" for h, w in sizes[fmt]))
        try:
          with _as_export_error(fmt, "running the saved artifact"):
            if fmt == "onnx":
              checks = verify_onnx(tmp, model, sizes[fmt], tolerance)
            elif fmt == "coreml":
              checks = verify_coreml(tmp, model, sizes[fmt], coreml_precision,
                                     golden_tmp if golden else None, tolerance)
            else:
              checks = verify_savedmodel(tmp, model, sizes[fmt], tolerance)
        except ExportError as e:
          if variant == variants[-1]:
            raise
          fallback = str(e)
          log(f"jaxstyle.export: {fmt}: {variant} norms missed the check ({e}); "
              f"rebuilding with {variants[variants.index(variant) + 1]} norms")
          continue
        info["verified"] = [dataclasses.asdict(c) for c in checks]
        info["tolerance"] = tolerance
        break
      if fallback:
        info["norms_fallback_reason"] = fallback
      publish(tmp, final)
      if fmt == "coreml" and os.path.isdir(golden_tmp):
        publish(golden_tmp, os.path.join(out, f"{name}.golden"))
        info["golden"] = os.path.join(out, f"{name}.golden")
      info["path"] = final
      info["seconds"] = round(time.perf_counter() - started, 2)
      report["formats"][fmt] = info
      log(f"jaxstyle.export: {fmt}: wrote {final} ({info['bytes']:,} bytes)"
          + ("; max abs error " + ", ".join(
              f"{c.size[0]}x{c.size[1]}{f' [{c.controls}]' if c.controls else ''}: "
              f"{c.max_abs_error:.2e}" for c in checks) if verify else ""))
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  atomic_files.write_json(os.path.join(out, f"{name}.export.json"), report,
                          sort_keys=False, default=str)
  return report
