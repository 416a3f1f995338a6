"""tools/reference_loss_weights.py: pytorch/examples' loss equals its weights × jaxstyle's terms."""

import os
import subprocess
import sys

import numpy as np

from conftest import REPO, _load_tool
from jaxstyle import losses
from jaxstyle.models import vgg

tool = _load_tool("reference_loss_weights")


def _torch_style_gram(f: np.ndarray) -> np.ndarray:
  """neural_style/utils.py's gram_matrix of one (H, W, C) map: FᵀF / (c·h·w)."""
  h, w, c = f.shape
  flat = f.reshape(h * w, c).T  # (C, H·W), as .view(b, ch, w * h)
  return flat @ flat.T / (c * h * w)


def test_weights_times_relative_errors_equal_the_reference_loss():
  net = vgg.load_loss_network()
  rng = np.random.default_rng(0)
  style, photo, output = (rng.random((40, 48, 3)).astype(np.float32) for _ in range(3))
  weights = tool.reference_weights(net, style, photo)

  f_style, f_photo, f_out = (tool.features(net, x) for x in (style, photo, output))
  for layer in tool._LAYERS:  # pylint: disable=protected-access
    reference = 1e10 * np.mean((_torch_style_gram(f_out[layer])
                                - _torch_style_gram(f_style[layer])) ** 2)
    gram = lambda f: np.asarray(losses.gram_matrix(f[None].astype(np.float32)), np.float64)
    relative = float(losses.relative_sq_error(gram(f_out[layer]), gram(f_style[layer])))
    np.testing.assert_allclose(weights[layer] * relative, reference, rtol=1e-4, err_msg=layer)
  reference = 1e5 * np.mean((f_out["relu2_2"] - f_photo["relu2_2"]) ** 2)
  relative = float(losses.relative_sq_error(f_out["relu2_2"][None], f_photo["relu2_2"][None]))
  np.testing.assert_allclose(weights["content"] * relative, reference, rtol=1e-4)


def test_prints_a_row_per_style():
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "reference_loss_weights.py"),
                         "--styles", "mosaic", "--style_size", "64", "--content_size", "64"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [line for line in proc.stdout.splitlines() if line.startswith("| mosaic |")]
  assert len(rows) == 2 and rows[1].split("|")[6].strip() == "1"
