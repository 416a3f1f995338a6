"""tools/style_sheet.py: scores of image-file outputs, the colour-matched rows, the sheet."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import REPO, STYLES, _load_tool

tool = _load_tool("style_sheet")


def test_colors_matched_takes_the_style_histogram_per_channel():
  rng = np.random.default_rng(0)
  image = rng.random((40, 50, 3)).astype(np.float32)
  style = rng.beta(2, 5, (30, 20, 3)).astype(np.float32)
  matched = tool.colors_matched(image, style)
  assert matched.shape == image.shape and matched.dtype == np.float32
  for c in range(3):
    # Same ranks as the input, values at the style's quantiles.
    np.testing.assert_array_equal(np.argsort(matched[..., c], axis=None, kind="stable"),
                                  np.argsort(image[..., c], axis=None, kind="stable"))
    np.testing.assert_allclose(np.quantile(matched[..., c], [0.1, 0.5, 0.9]),
                               np.quantile(style[..., c], [0.1, 0.5, 0.9]), atol=0.02)
  np.testing.assert_allclose(tool.colors_matched(style, style), style, atol=1e-6)


def test_cli_scores_files_and_their_colour_matched_versions(tmp_path):
  output = tmp_path / "candy_as_output.png"
  Image.open(os.path.join(STYLES, "candy.jpg")).convert("RGB").resize((96, 64)).save(output)
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "style_sheet.py"), "--size", "64",
       "--output", f"mosaic={output}", "--match_colors", "--sheet", str(tmp_path / "s.png"),
       "--json", str(tmp_path / "s.json")],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "s.json") as f:
    rows = {r["output"]: r for r in json.load(f)["results"]}
  assert set(rows) == {"content (unstylized)", "content (unstylized), colours matched to the style",
                       str(output), f"{output}, colours matched to the style"}
  for row in rows.values():
    assert 0 < row["style_similarity"] <= 1 and -1 <= row["ssim"] <= 1
  assert rows["content (unstylized)"]["ssim"] == 1.0
  assert rows["content (unstylized), colours matched to the style"]["ssim"] < 1.0
  assert proc.stdout.count("| mosaic |") == 4
  assert Image.open(tmp_path / "s.png").size[0] > 0
