"""tools/generalization_gap.py: style similarity on seen and unseen photos, per scale."""

import numpy as np
import pytest

import jaxstyle
from conftest import _load_tool
from jaxstyle import images as image_io
from jaxstyle import metrics
from jaxstyle import run_lib
from jaxstyle import stylizer
from jaxstyle.models import vgg


def test_rows_are_the_quality_report_of_each_photo_set_at_each_size(tiny_workdir):
  tool = _load_tool("generalization_gap")
  rows = tool.measure(str(tiny_workdir), sizes=[32, 48], limit=2)
  assert [(r["photos"], r["size"]) for r in rows] == [
      (name, size) for name in ("train", "validation", "eval") for size in (32, 48)]
  assert [r["count"] for r in rows] == [2, 2, 2, 2, 1, 1]

  # The eval row again by the plain route: the style image (not its cached
  # Grams) and the Stylizer on the resized photo.
  (path,) = image_io.find_images([jaxstyle.CONTENT_DIR])
  content = np.clip(run_lib.resize_short_side(image_io.load_image(path), 48), 0.0, 1.0)
  out = stylizer.Stylizer.from_workdir(tiny_workdir)(content, max_size=None)
  style = run_lib.resize_short_side(image_io.load_image(run_lib.resolve_style_path("mosaic")),
                                    metrics.STYLE_SIZE)
  want = metrics.quality_report(vgg.load_loss_network(), out, content, style)
  got = rows[-1]
  for key in tool.COLUMNS:
    assert got[key] == pytest.approx(want[key], abs=1e-6), key
  assert 0 < got["style_similarity"] < 1 and np.isfinite(got["ssim"])

  text = tool.table(rows)
  assert text.splitlines()[0].startswith("| photos | n | short side | style sim. | relu1_2 |")
  assert f"| eval | 1 | 48 | {got['style_similarity']:.3f} |" in text
