"""The content images of an evaluation: each readable image of a folder as a size×size square.

Short side resized to `size`, then the centre square; unreadable files are
skipped, logged and listed for the table rather than stopping the run.
"""

import os

from absl import logging
import numpy as np

from jaxstyle import images as image_io


def load_content_images(folder: str, size: int
                        ) -> tuple[list[tuple[str, np.ndarray]], list[dict[str, str]]]:
  """(stem, size×size image) per readable image of `folder`, and the skipped ones.

  Short side resized to `size`, then the centre square.
  """
  from jaxstyle import run_lib  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"content folder {folder!r} does not exist "
                            "(set config.content_dir)")
  images, skipped, stems = [], [], set()
  for path in image_io.find_images([folder]):
    try:
      image = run_lib.resize_short_side(image_io.load_image(path), size)
    except image_io.ImageError as e:
      logging.warning("jaxstyle.evaluate: skipped %s: %s", path, e.reason)
      skipped.append({"path": path, "reason": e.reason})
      continue
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    stem = os.path.splitext(os.path.basename(path))[0]
    while stem in stems:
      stem += "_"
    stems.add(stem)
    images.append((stem, np.clip(image[top:top + size, left:left + size], 0, 1)))
  if not images:
    logging.warning("jaxstyle.evaluate: no readable content image in %s: quality "
                    "columns will be empty; speed and memory use a noise image", folder)
  return images, skipped
