r"""Stroke size against working resolution: one photo stylized at several sizes.

  python tools/stroke_scale.py --workdir runs/quickstart --sizes 256,512,1024 \
      --out docs/stroke_scale.jpg [--content photo.jpg] [--display 512]

The network paints strokes of a fixed size in pixels, so the working size
(`jaxstyle stylize --max_size`, `Stylizer(..., max_size=)`) sets how large
they are relative to the photo. Each result is resized to the same display
height and placed side by side, smallest working size (boldest strokes) first.
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
import jaxstyle
from jaxstyle import atomic_files
from jaxstyle import images as image_io
# pylint: enable=wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--sizes", default="256,512,1024", help="working sizes (long side)")
  parser.add_argument("--content", default=os.path.join(jaxstyle.CONTENT_DIR, "amber.jpg"))
  parser.add_argument("--style_weights", default=None, help="for a multi-style model")
  parser.add_argument("--display", type=int, default=512, help="height of each panel")
  parser.add_argument("--out", required=True)
  args = parser.parse_args()

  stylizer = jaxstyle.Stylizer.from_workdir(args.workdir)
  photo = image_io.load_image(args.content)
  panels = []
  for size in (int(s) for s in args.sizes.split(",")):
    out = stylizer(photo, max_size=size, style_weights=args.style_weights)
    image = Image.fromarray(image_io.to_uint8(out))
    width = round(image.width * args.display / image.height)
    panels.append(np.asarray(image.resize((width, args.display), Image.LANCZOS)))
    print(f"working size {size}: {out.shape[1]}x{out.shape[0]} px")
  gap = np.full((args.display, 8, 3), 255, np.uint8)
  row = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
  with atomic_files.replacing(args.out, binary=True) as f:
    Image.fromarray(row).save(f, format="JPEG", quality=90)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
