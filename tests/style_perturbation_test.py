"""Style perturbation: each op against an independent reference, targets, config."""

import colorsys
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from skimage import color as sk_color
import tensorflow as tf

import jaxstyle
from jaxstyle import images as image_io
from jaxstyle import losses
from jaxstyle import style_perturbation as sp
from jaxstyle.models import vgg

# float32 ops vs float64 references, values in [0, 1].
TOL = 1e-5
OFF = dict(mode="bank", bank_size=4, crop_scale=(1.0, 1.0), hflip=False,
           brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, noise_std=0.0)
DEFAULT = dict(mode="bank", bank_size=4, crop_scale=(0.7, 1.0), hflip=True,
               brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02, noise_std=0.01)
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def _image(h=24, w=31, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.random((h, w, 3))
  image[0, :4] = [[0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1]]  # Grey, primaries.
  image[1, :3] = [[0, 0, 0], [1, 1, 1], [1, 1, 0]]
  return image


# ---------------------------------------------------------------------------
# Identity at zero.


def test_all_zero_amounts_return_the_image():
  image = _image()
  out = sp.perturb_style_image(jnp.asarray(image, jnp.float32), jax.random.key(3), OFF)
  np.testing.assert_allclose(out, image, atol=1e-6, rtol=0)


def test_each_op_is_the_identity_at_its_neutral_value():
  image = jnp.asarray(_image(), jnp.float32)
  for out in (sp.crop_and_resize(image, 1.0, (0.3, 0.8)),
              sp.adjust_brightness(image, 0.0),
              sp.adjust_contrast(image, 1.0),
              sp.adjust_saturation(image, 1.0),
              sp.adjust_hue(image, 0.0),
              sp.hsv_to_rgb(sp.rgb_to_hsv(image))):
    np.testing.assert_allclose(out, image, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------
# Each op against an independent reference.


@pytest.mark.parametrize("area, offset", [(0.49, (0.0, 0.0)), (0.7, (1.0, 0.25)),
                                          (0.3, (0.6, 1.0))])
def test_crop_and_resize_matches_map_coordinates(area, offset):
  image = _image(20, 33)
  out = sp.crop_and_resize(jnp.asarray(image, jnp.float32), area, offset)
  # Output pixel centre x + 1/2 reads input point side * (x + 1/2) + start, in
  # continuous coordinates; map_coordinates works in pixel indices (-1/2),
  # and 'nearest' is the clamping scale_and_translate does at the border.
  side = np.sqrt(area)
  hw = np.array(image.shape[:2], float)
  start = np.array(offset) * (1 - side) * hw
  ys, xs = np.meshgrid(*(side * (np.arange(n) + 0.5) + s - 0.5
                         for n, s in zip(image.shape[:2], start)), indexing="ij")
  expected = np.stack([ndimage.map_coordinates(image[..., c], [ys, xs], order=1,
                                               mode="nearest") for c in range(3)], -1)
  np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)


def test_brightness_and_contrast_match_references():
  image = _image()
  x = jnp.asarray(image, jnp.float32)
  np.testing.assert_allclose(sp.adjust_brightness(x, 0.07), image + 0.07, atol=TOL, rtol=0)
  for factor in (0.9, 1.1, 0.0):
    expected = tf.image.adjust_contrast(tf.constant(image), factor).numpy()
    np.testing.assert_allclose(sp.adjust_contrast(x, factor), expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("factor", [0.0, 0.9, 1.1])
def test_saturation_scales_yiq_chroma(factor):
  image = _image()
  yiq = sk_color.rgb2yiq(image)
  yiq[..., 1:] *= factor
  expected = sk_color.yiq2rgb(yiq)
  out = sp.adjust_saturation(jnp.asarray(image, jnp.float32), factor)
  np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)


def test_hsv_matches_colorsys():
  image = _image()
  expected = np.array([colorsys.rgb_to_hsv(*p) for p in image.reshape(-1, 3)])
  hsv = np.asarray(sp.rgb_to_hsv(jnp.asarray(image, jnp.float32))).reshape(-1, 3)
  # Hue is circular: compare on the circle.
  hue_err = np.abs((hsv[:, 0] - expected[:, 0] + 0.5) % 1.0 - 0.5)
  assert hue_err.max() < TOL
  np.testing.assert_allclose(hsv[:, 1:], expected[:, 1:], atol=TOL, rtol=0)
  back = np.array([colorsys.hsv_to_rgb(*p) for p in expected])
  np.testing.assert_allclose(sp.hsv_to_rgb(jnp.asarray(expected, jnp.float32)),
                             back, atol=TOL, rtol=0)


@pytest.mark.parametrize("delta", [0.02, -0.02, 0.3, -0.45])
def test_hue_shift_matches_colorsys(delta):
  image = _image()
  expected = np.array([
      colorsys.hsv_to_rgb((h + delta) % 1.0, s, v)
      for h, s, v in (colorsys.rgb_to_hsv(*p) for p in image.reshape(-1, 3))
  ]).reshape(image.shape)
  out = sp.adjust_hue(jnp.asarray(image, jnp.float32), delta)
  np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)


# ---------------------------------------------------------------------------
# The random perturbation.


def test_draws_are_per_key_deterministic_and_jittable():
  image = jnp.asarray(_image(), jnp.float32)
  f = lambda k: sp.perturb_style_image(image, k, DEFAULT)
  a, again = f(jax.random.key(1)), f(jax.random.key(1))
  np.testing.assert_array_equal(a, again)
  # XLA fuses and reorders float ops under jit: equal to float32 rounding.
  np.testing.assert_allclose(jax.jit(f)(jax.random.key(1)), a, atol=TOL, rtol=0)
  assert np.abs(f(jax.random.key(2)) - a).max() > 0.01
  assert a.shape == image.shape and 0 <= a.min() and a.max() <= 1


def test_random_amounts_stay_in_range_and_cover_it():
  # Mid-range pixels, so no clipping: each op's draw can be read off exactly.
  image = jnp.asarray(0.3 + 0.4 * _image(), jnp.float32)
  keys = [jax.random.key(i) for i in range(40)]
  deltas = [float(jnp.mean(sp.perturb_style_image(image, k, dict(brightness=0.1)) - image))
            for k in keys]
  assert max(deltas) <= 0.1 + 1e-6 and min(deltas) >= -0.1 - 1e-6
  assert max(deltas) > 0.05 and min(deltas) < -0.05
  flips = []
  for k in keys:
    out = np.asarray(sp.perturb_style_image(image, k, dict(hflip=True)))
    mirrored = np.array_equal(out, np.asarray(image)[:, ::-1])
    assert mirrored or np.array_equal(out, image)
    flips.append(mirrored)
  assert 8 <= sum(flips) <= 32
  noise = sp.perturb_style_image(image, keys[0], dict(noise_std=0.01)) - image
  assert float(jnp.std(noise)) == pytest.approx(0.01, rel=0.1)


# ---------------------------------------------------------------------------
# Targets with the real loss network.


@pytest.fixture(scope="module")
def loss_net():
  return vgg.load_loss_network("vgg16", "hed")


@pytest.fixture(scope="module")
def style_image():
  image = image_io.load_image(os.path.join(jaxstyle.STYLES_DIR, "mosaic.jpg"))
  return np.asarray(jax.image.resize(image, (48, 64, 3), "linear", antialias=True))


def gram_targets(net, style_batch):
  feats = net.features(style_batch, STYLE_LAYERS)
  return {k: losses.gram_matrix(v) for k, v in feats.items()}


def _rel(a, b):
  return float(jnp.sum((a - b) ** 2) / jnp.sum(b ** 2))


def test_bank_entries_are_perturbed_targets_and_differ(loss_net, style_image):
  base = sp.precompute_targets(gram_targets, loss_net, style_image, dict(mode="none"), seed=0)
  bank = sp.precompute_targets(gram_targets, loss_net, style_image, DEFAULT, seed=0)
  for name, b in bank.items():
    assert b.shape == (4,) + base[name].shape  # (bank, 1, C, C).
  # Entry i is the target of the perturbation drawn with fold_in(bank_key, i).
  key = jax.random.fold_in(sp.bank_key(0), 2)
  direct = gram_targets(loss_net, sp.perturb_style_image(style_image, key, DEFAULT)[None])
  for name in STYLE_LAYERS:
    assert _rel(bank[name][2], direct[name]) < 1e-6
  # Perturbation moves every layer's Gram target, and entries differ.
  for name in STYLE_LAYERS:
    for i in range(4):
      assert _rel(bank[name][i], base[name]) > 1e-4, (name, i)
      for j in range(i):
        assert _rel(bank[name][i], bank[name][j]) > 1e-4, (name, i, j)


def test_targets_for_step_in_each_mode(loss_net, style_image):
  style = jnp.asarray(style_image, jnp.float32)

  def run(cfg, precomputed, step):
    fn = jax.jit(lambda net, s, pre, k: sp.targets_for_step(
        k, cfg, target_fn=gram_targets, loss_net=net, style_image=s, precomputed=pre))
    return fn(loss_net, style, precomputed, sp.step_key(0, step))

  base = gram_targets(loss_net, style[None])
  none = run(dict(mode="none"), base, 5)
  assert all(_rel(none[k], base[k]) == 0 for k in base)

  bank = sp.make_bank(gram_targets, loss_net, style, sp.bank_key(0), DEFAULT, 4)
  picked = [run(DEFAULT, bank, step) for step in range(12)]
  indices = []
  for targets in picked:
    matches = [i for i in range(4) if all(
        np.array_equal(targets[k], bank[k][i]) for k in base)]
    assert len(matches) == 1 and targets["relu1_2"].shape == base["relu1_2"].shape
    indices.append(matches[0])
  assert len(set(indices)) > 1  # Different steps draw different entries...
  again = run(DEFAULT, bank, 7)  # ...and a step always draws the same one.
  assert all(np.array_equal(again[k], picked[7][k]) for k in base)

  per_step_cfg = dict(DEFAULT, mode="per_step")
  fresh = run(per_step_cfg, None, 3)
  expected = gram_targets(loss_net, sp.perturb_style_image(
      style, sp.step_key(0, 3), per_step_cfg)[None])
  for k in base:
    assert _rel(fresh[k], expected[k]) < 1e-6
    assert _rel(fresh[k], base[k]) > 1e-4
  assert _rel(run(per_step_cfg, None, 4)["relu2_2"], fresh["relu2_2"]) > 1e-4


# ---------------------------------------------------------------------------
# Config.


@pytest.mark.parametrize("key, value", [
    ("mode", "sometimes"), ("bank_size", 0), ("bank_size", 2.5),
    ("crop_scale", (0.0, 1.0)), ("crop_scale", (0.9, 0.8)), ("crop_scale", 1.0),
    ("hflip", 1), ("brightness", -0.1), ("contrast", 1.5), ("saturation", "0.1"),
    ("hue", 0.6), ("noise_std", -0.01), ("noise", 0.1),
])
def test_bad_config_names_the_key(key, value):
  with pytest.raises(ValueError, match=rf"config\.style\.perturb\.{key}\b"):
    sp.validate_perturb_config(dict(DEFAULT, **{key: value}))


def test_missing_config_is_off():
  assert sp.validate_perturb_config(None) == sp.PerturbConfig(mode="none")
  assert sp.validate_perturb_config({}).mode == "none"
  cfg = sp.validate_perturb_config(dict(mode="bank", hue=0.05))
  assert cfg.crop_scale == (1.0, 1.0) and not cfg.hflip and cfg.brightness == 0.0
  assert sp.validate_perturb_config(DEFAULT) == sp.PerturbConfig(**DEFAULT)
