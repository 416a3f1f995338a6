"""Gatys NST: convergence, fixed point, gradients against numpy float64, CLI."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from configs import nst as nst_config
from jaxstyle import images
from jaxstyle import nst
from jaxstyle import run_lib
from jaxstyle.models import vgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMBER = os.path.join(REPO, "jaxstyle", "assets", "content", "amber.jpg")


@pytest.fixture(scope="module")
def loss_net():
  return vgg.load_loss_network()


@pytest.fixture(scope="module")
def content():
  return images.load_image(AMBER, max_size=64)


@pytest.fixture(scope="module")
def style():
  return images.load_image(run_lib.resolve_style_path("mosaic"), max_size=96)


def _config(**overrides):
  config = nst_config.get_config()
  config.image_size = 64
  config.update(overrides)
  return config


def test_lbfgs_lowers_the_loss_and_keeps_pixels_in_range(loss_net, content, style):
  config = _config(num_steps=10)
  out, info = nst.stylize(content, style, config, loss_net, progress=False)
  assert out.shape == content.shape and out.dtype == np.float32
  assert 0.0 <= out.min() and out.max() <= 1.0
  assert len(info["losses"]) == info["steps"] == 10
  assert np.all(np.isfinite(info["losses"]))
  # From the content image the total is the style term; 10 L-BFGS steps cut it
  # by more than 3× (measured: 7.5 → 1.4, the style term 0.75 → 0.09).
  assert info["loss_final"] < info["loss_initial"] / 3
  assert info["style_loss_final"] < info["style_loss_initial"] / 4
  assert info["objective_evaluations"] >= 10
  # The linesearch only accepts decreasing steps: the returned image is the best seen.
  assert info["loss_final"] <= min(info["losses"]) + 1e-6
  assert np.mean(np.abs(out - content)) > 0.02  # it did change the image


def test_adam_lowers_the_loss_and_returns_the_content_size(loss_net, style):
  # Larger than image_size: optimised at 64 px on the long side, resized back.
  big = images.load_image(AMBER, max_size=96)
  config = _config(optimizer="adam", learning_rate=0.1, num_steps=12)
  out, info = nst.stylize(big, style, config, loss_net, progress=False)
  assert out.shape == big.shape
  assert max(info["working_size"]) == 64
  assert 0.0 <= out.min() and out.max() <= 1.0
  assert info["objective_evaluations"] == 12
  assert info["loss_final"] < 0.7 * info["loss_initial"]


def test_without_style_the_content_is_a_fixed_point(loss_net, content, style):
  config = _config(style_weight=0.0, tv_weight=0.0, num_steps=10)
  out, info = nst.stylize(content, style, config, loss_net, progress=False)
  # The start is the content squeezed into [0.01, 0.99]; L-BFGS pulls it back.
  assert info["content_loss_initial"] < 1e-3
  assert info["content_loss_final"] <= info["content_loss_initial"]
  assert info["loss_final"] < 1e-3
  np.testing.assert_allclose(out, content, atol=0.05)
  assert np.mean(np.abs(out - content)) < 0.01


def test_content_reconstruction_from_noise(loss_net, content, style):
  """Gatys' Fig. 1 reconstruction: noise driven towards the content's relu4_2."""
  config = _config(init="noise", style_weight=0.0, tv_weight=0.0, num_steps=20)
  _, info = nst.stylize(content, style, config, loss_net, progress=False)
  assert info["content_loss_initial"] > 0.5
  assert info["content_loss_final"] < info["content_loss_initial"] / 4


def _np_gram(f):
  flat = f.reshape(-1, f.shape[-1])
  return flat.T @ flat / flat.shape[0]


def _reference_loss_and_grad(logits, loss_net, targets, config):
  """Objective and d/dlogits with the loss and its gradient in numpy float64.

  Only the VGG pass and its plain JAX vjp (no canonical_conv_gradients) are
  shared with the code under test; the loss terms, their analytic gradients
  (relative content error, relative Gram error, TV) and the sigmoid chain
  rule are written out here.
  """
  x = np.asarray(jax.nn.sigmoid(logits), np.float64)
  layers = sorted(set(config.content_layers) | set(config.style_layers))
  feats, vjp = jax.jit(lambda im: jax.vjp(lambda i: loss_net.features(i, layers), im))(
      jnp.asarray(x, jnp.float32))
  feats = {k: np.asarray(v, np.float64)[0] for k, v in feats.items()}
  d_feats = {k: np.zeros_like(v) for k, v in feats.items()}
  content = style = 0.0
  for name, w in config.content_layers.items():
    t = np.asarray(targets["content"][name], np.float64)[0]
    norm = np.sum(t ** 2) + 1e-8
    content += w * np.sum((feats[name] - t) ** 2) / norm
    d_feats[name] += config.content_weight * w * 2 * (feats[name] - t) / norm
  for name, w in config.style_layers.items():
    f = feats[name]
    a = np.asarray(targets["grams"][name], np.float64)[0]
    g = _np_gram(f)
    norm = np.sum(a ** 2) + 1e-8
    style += w * np.sum((g - a) ** 2) / norm
    # d/dF ||F^T F / P - A||^2 = 4 / P · F (G - A) for symmetric G - A.
    p = f.shape[0] * f.shape[1]
    d_feats[name] += config.style_weight * w * 4 / p * (f @ (g - a)) / norm
  dy, dx = np.diff(x, axis=1), np.diff(x, axis=2)
  tv = np.mean(dy ** 2) + np.mean(dx ** 2)
  d_x = np.zeros_like(x)
  d_x[:, 1:] += 2 * dy / dy.size
  d_x[:, :-1] -= 2 * dy / dy.size
  d_x[:, :, 1:] += 2 * dx / dx.size
  d_x[:, :, :-1] -= 2 * dx / dx.size
  (d_vgg,) = vjp({k: jnp.asarray(v[None], jnp.float32) for k, v in d_feats.items()})
  d_x = config.tv_weight * d_x + np.asarray(d_vgg, np.float64)
  total = config.content_weight * content + config.style_weight * style + config.tv_weight * tv
  return {"total": total, "content": content, "style": style, "tv": tv}, d_x * x * (1 - x)


def test_objective_and_gradient_match_numpy_float64(loss_net):
  rng = np.random.default_rng(0)
  config = _config(content_weight=1.5, style_weight=7.0, tv_weight=3.0)
  content_img, style_img = rng.uniform(size=(2, 1, 24, 20, 3)).astype(np.float32)
  targets = jax.jit(functools.partial(
      nst.compute_targets, content_layers=dict(config.content_layers),
      style_layers=dict(config.style_layers)))(loss_net, content_img, style_img)
  logits = jnp.asarray(rng.normal(size=(1, 24, 20, 3)), jnp.float32)
  objective = nst.objective_fn(config)
  weights = nst.loss_weights(config)
  # One compiled function for the terms and the gradient (compiling is most of the test).
  terms_and_grad = jax.jit(jax.value_and_grad(
      lambda z: (objective(z, loss_net, targets, weights)["total"],
                 objective(z, loss_net, targets, weights)), has_aux=True))
  (_, terms), grad = terms_and_grad(logits)
  ref_terms, ref_grad = _reference_loss_and_grad(logits, loss_net, targets, config)
  for k in ("total", "content", "style", "tv"):
    np.testing.assert_allclose(float(terms[k]), ref_terms[k], rtol=1e-4, err_msg=k)
  scale = np.max(np.abs(ref_grad))
  np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=0, atol=2e-4 * scale)
  # Second route, through VGG too: central differences along a random unit
  # direction. h = 1e-2 sits between the float32 rounding of the loss (~1e-3
  # relative at h = 1e-3) and ReLU kinks / curvature (~5% at h = 0.3).
  d = rng.normal(size=logits.shape)
  d = jnp.asarray(d / np.linalg.norm(d), jnp.float32)
  h = 1e-2
  fd = (float(terms_and_grad(logits + h * d)[0][0])
        - float(terms_and_grad(logits - h * d)[0][0])) / (2 * h)
  np.testing.assert_allclose(fd, float(jnp.vdot(grad, d)), rtol=1e-2)


def test_canonical_conv_gradient_equals_jax_transpose_rule():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, 5)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 5, 4)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(2, 9, 7, 4)), jnp.float32)
  out, vjp = jax.vjp(nst._conv_canonical_grad, x, k)
  ref_out, ref_vjp = jax.vjp(nst._conv_same, x, k)
  np.testing.assert_allclose(out, ref_out, rtol=1e-6)
  for got, want in zip(vjp(g), ref_vjp(g)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_nan_loss_names_the_step(loss_net, content, style):
  # A corrupt weights file: one NaN bias makes every relu5_1 Gram matrix NaN.
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x * np.nan if "conv5_1" in jax.tree_util.keystr(path) else x,
      loss_net.params)
  broken = loss_net.replace(params=params)
  with pytest.raises(FloatingPointError, match="NST loss is nan at step 0"):
    nst.stylize(content, style, _config(num_steps=3), broken, progress=False)


def test_images_too_small_for_the_deepest_layer_are_rejected(loss_net, content, style):
  with pytest.raises(ValueError, match="at least 16 px"):
    nst.stylize(content, style, _config(image_size=12), loss_net, progress=False)
  with pytest.raises(ValueError, match="non-finite"):
    nst.stylize(content, style * np.nan, _config(), loss_net, progress=False)


@pytest.mark.parametrize("field, value, key", [
    ("optimizer", "sgd", "config.optimizer"),
    ("init", "zeros", "config.init"),
    ("style_layers", {"relu9_9": 1.0}, "relu9_9"),
    ("num_steps", -1, "config.num_steps"),
    ("learning_rate", float("inf"), "config.learning_rate"),
])
def test_bad_config_is_rejected_naming_the_key(content, style, field, value, key):
  config = nst_config.get_config()
  config[field] = value
  with pytest.raises(ValueError, match=key):
    nst.stylize(content, style, config, loss_net=None, progress=False)


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, "-m", "jaxstyle.nst", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_cli_writes_png_and_json(tmp_path):
  out = tmp_path / "amber_mosaic.png"
  proc = _cli("--content", AMBER, "--style", "mosaic", "--output", str(out),
              "--noprogress", "--config.image_size=32", "--config.num_steps=2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with Image.open(out) as img:
    assert max(img.size) == 32
  info = json.loads((tmp_path / "amber_mosaic.json").read_text())
  assert info["steps"] == 2 and info["config"]["num_steps"] == 2
  assert info["style"].endswith("mosaic.jpg")
  assert sorted(os.listdir(tmp_path)) == ["amber_mosaic.json", "amber_mosaic.png"]


@pytest.mark.parametrize("which", ["content", "style"])
def test_cli_bad_input_is_one_clear_line(tmp_path, which):
  bad = tmp_path / "missing.jpg"
  paths = {"content": AMBER, "style": "mosaic", which: str(bad)}
  out = tmp_path / "o.png"
  proc = _cli("--content", paths["content"], "--style", paths["style"], "--output", str(out),
              "--config.num_steps=1")
  assert proc.returncode == 1
  lines = [line for line in proc.stderr.splitlines() if line.startswith("jaxstyle.nst:")]
  assert len(lines) == 1 and "missing.jpg" in lines[0], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert not out.exists()
