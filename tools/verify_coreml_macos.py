r"""Replays the golden files of an exported Core ML model with Core ML itself (macOS).

  python tools/verify_coreml_macos.py export/mosaic.mlpackage [export/mosaic.golden]

`python -m jaxstyle.export` checks the saved package on Linux with a numpy
interpreter of its MIL ops and writes <name>.golden/<H>x<W>[_<setting>].npz:
the input image (uint8 RGB), the JAX output (float in [0, 1]) and the
tolerance, and for a multi-style package the `style_weights` / `strength` it
was run at (every style, a blend, half strength). This
script feeds each image to `MLModel.predict` (CPU only, then all compute units)
and compares the returned image with the JAX output. Core ML returns 8-bit
images, so half a gray level (0.5/255) is added to the tolerance. Exit code 0
when every check passes, 1 on a mismatch, 2 when not on macOS.

Needs: macOS 12+, `pip install coremltools numpy pillow`.
"""

import argparse
import glob
import os
import platform
import sys

import numpy as np


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("package", help="the .mlpackage written by jaxstyle.export")
  parser.add_argument("golden", nargs="?", help="folder of .npz files "
                      "(default: <package without .mlpackage>.golden)")
  args = parser.parse_args()
  if platform.system() != "Darwin":
    print("verify_coreml_macos: Core ML's MLModel.predict needs macOS (this is "
          f"{platform.system()}). On Linux, `python -m jaxstyle.export --verify` already "
          "checked the saved package with jaxstyle/export/mil_interpreter.py.", file=sys.stderr)
    sys.exit(2)

  import coremltools as ct
  from PIL import Image
  golden = args.golden or os.path.splitext(args.package.rstrip("/"))[0] + ".golden"
  files = sorted(glob.glob(os.path.join(golden, "*.npz")))
  if not files:
    print(f"verify_coreml_macos: no .npz files in {golden}", file=sys.stderr)
    sys.exit(1)
  failures = 0
  for units in (ct.ComputeUnit.CPU_ONLY, ct.ComputeUnit.ALL):
    model = ct.models.MLModel(args.package, compute_units=units)
    for path in files:
      data = np.load(path)
      image = Image.fromarray(data["image"])
      # A multi-style package's other inputs, as the export verified them.
      controls = {k: data[k].astype(np.float32) for k in ("style_weights", "strength")
                  if k in data}
      out = model.predict({"image": image, **controls})["stylized"]
      got = np.asarray(out.convert("RGB"), np.float32) / 255
      err = float(np.max(np.abs(got - data["expected"])))
      tolerance = float(data["tolerance"]) + 0.5 / 255
      ok = err <= tolerance and np.isfinite(got).all()
      failures += not ok
      print(f"{units.name:9s} {os.path.basename(path):16s} max abs error {err:.2e} "
            f"(tolerance {tolerance:.2e}) {'ok' if ok else 'MISMATCH'}")
  sys.exit(1 if failures else 0)


if __name__ == "__main__":
  main()
