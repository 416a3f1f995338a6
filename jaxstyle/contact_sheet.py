"""Labelled picture grids as PNG: images side by side, a caption under each.

For the docs' comparison pictures and the style sheet, where the numbers
belong next to the picture they describe. Images are (H, W, 3) float arrays
in [0, 1]; each row is scaled to one height.
"""

from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from jaxstyle import images as image_io

_PAD = 6
_LINE = 14  # caption line height, px (PIL's built-in bitmap font is ~11 px)


def _to_pil(image: np.ndarray, height: int) -> Image.Image:
  pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
  width = max(1, round(pil.width * height / pil.height))
  return pil.resize((width, height), Image.Resampling.LANCZOS)


def render(rows: Sequence[Sequence[tuple[np.ndarray, str]]], height: int = 256
           ) -> np.ndarray:
  """Rows of (image, caption) → one white sheet, captions ('\\n' splits lines) under the images."""
  font = ImageFont.load_default()
  lines = max((len(c.split("\n")) for row in rows for _, c in row), default=0)
  cell_h = height + _PAD + lines * _LINE
  pil_rows = [[(_to_pil(im, height), caption) for im, caption in row] for row in rows]
  width = max(sum(p.width + _PAD for p, _ in row) for row in pil_rows) + _PAD
  sheet = Image.new("RGB", (width, len(rows) * (cell_h + _PAD) + _PAD), "white")
  draw = ImageDraw.Draw(sheet)
  y = _PAD
  for row in pil_rows:
    x = _PAD
    for pil, caption in row:
      sheet.paste(pil, (x, y))
      for i, line in enumerate(caption.split("\n") if caption else []):
        draw.text((x, y + height + 2 + i * _LINE), line, fill=(0, 0, 0), font=font)
      x += pil.width + _PAD
    y += cell_h + _PAD
  return np.asarray(sheet, np.float32) / 255.0


def save(path: str, rows: Sequence[Sequence[tuple[np.ndarray, str]]], height: int = 256
         ) -> str:
  """`render` written to `path` as PNG (write, then rename)."""
  image_io.save_png(render(rows, height), path)
  return path
