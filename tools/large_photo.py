r"""Peak memory and time of `jaxstyle stylize` on phone-sized photos, tiled and untiled.

  python tools/large_photo.py --workdir runs/quickstart --megapixels 12,48 \
      [--untiled_up_to 12] [--tile_size 1024]

Each photo is amber.jpg enlarged to the size (4:3, a JPEG as a phone writes
it), stylized at full resolution (`--max_size=0`) by the CLI in a process of
its own, once in tiles (`--tile_size`) and, up to `--untiled_up_to` MP, once
untiled (`--tile_size=0`) as the baseline in the same run. Prints a table:
peak resident memory of the process, wall time, and where both ran the
largest difference between the two PNGs (8-bit levels).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# pylint: disable=wrong-import-position
import jaxstyle
from jaxstyle import images as image_io
# pylint: enable=wrong-import-position

# The stylize CLI in this process's interpreter, then its own peak RSS (MB) on stdout.
_RUN = ("import resource, runpy, sys\n"
        "sys.argv = ['jaxstyle.stylize'] + sys.argv[1:]\n"
        "try:\n"
        "  runpy.run_module('jaxstyle.stylize', run_name='__main__')\n"
        "finally:\n"
        "  print('peak_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")


def _photo(megapixels: float, folder: str) -> str:
  width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
  height = int(round(width * 3 / 4))
  path = os.path.join(folder, f"photo_{megapixels:g}mp.jpg")
  with Image.open(os.path.join(jaxstyle.CONTENT_DIR, "amber.jpg")) as img:
    img.convert("RGB").resize((width, height), Image.LANCZOS).save(path, quality=92)
  return path


def _stylize(workdir: str, photo: str, out_dir: str, tile_size: int) -> tuple[float, float, str]:
  start = time.time()
  proc = subprocess.run(
      [sys.executable, "-c", _RUN, f"--workdir={workdir}", f"--input={photo}",
       f"--output={out_dir}", "--max_size=0", f"--tile_size={tile_size}"],
      capture_output=True, text=True, cwd=REPO)
  seconds = time.time() - start
  if proc.returncode != 0:
    raise RuntimeError(f"stylize failed:\n{proc.stderr[-3000:]}")
  peak = float(proc.stdout.split("peak_mb")[-1])
  stem = os.path.splitext(os.path.basename(photo))[0]
  return peak, seconds, os.path.join(out_dir, f"{stem}_stylized.png")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--megapixels", default="12,48")
  parser.add_argument("--untiled_up_to", type=float, default=12.0)
  parser.add_argument("--tile_size", type=int, default=image_io.DEFAULT_TILE_SIZE)
  args = parser.parse_args()

  print("| photo | mode | peak MB | seconds | max diff vs untiled (8-bit) |")
  print("|---|---|---:|---:|---:|")
  with tempfile.TemporaryDirectory() as tmp:
    for mp in (float(v) for v in args.megapixels.split(",")):
      photo = _photo(mp, tmp)
      with Image.open(photo) as img:
        size = f"{mp:g} MP ({img.width}×{img.height})"
      untiled = None
      if mp <= args.untiled_up_to:
        peak, seconds, untiled = _stylize(args.workdir, photo, os.path.join(tmp, f"u{mp}"), 0)
        print(f"| {size} | untiled | {peak:,.0f} | {seconds:.0f} | — |", flush=True)
      peak, seconds, tiled = _stylize(args.workdir, photo, os.path.join(tmp, f"t{mp}"),
                                      args.tile_size)
      diff = "—"
      if untiled:
        a, b = (np.asarray(Image.open(p), np.int16) for p in (untiled, tiled))
        diff = str(int(np.abs(a - b).max()))
      print(f"| {size} | tiles of {args.tile_size} | {peak:,.0f} | {seconds:.0f} | {diff} |",
            flush=True)


if __name__ == "__main__":
  main()
