"""Content augmentation: geometry against skimage and TensorFlow's ops, no fill
pixels, pipeline draws."""

import math

import ml_collections
import numpy as np
from PIL import Image
import pytest
from skimage import transform as sk_transform

from jaxstyle import augment
from jaxstyle import data_config
from jaxstyle import input_pipeline

IMAGE_SIZE = 32
BATCH = 4
SENTINEL = -1000.0  # Fill value: any weight on it shows up as a large error.


def _crop(image, transform, size, fill_value=SENTINEL):
  return augment.rotated_crop(np.asarray(image, np.float32), transform, size, fill_value)


def _pattern(h, w, seed=0):
  """Random pixels (no smoothness to hide interpolation errors) in [0, 1]."""
  return np.random.default_rng(seed).random((h, w, 3))


# ---------------------------------------------------------------------------
# Geometry of one crop.


@pytest.mark.parametrize("degrees", [7.0, -23.0, 40.0])
def test_rotation_matches_skimage_rotate(degrees):
  # skimage rotates counter-clockwise about ((W-1)/2, (H-1)/2) with bilinear
  # interpolation (order=1), in float64. Our crop of the same centre at scale 1
  # must be the middle of that image; float32 pixels allow ~1e-6.
  image = _pattern(61, 61)
  theta = math.radians(degrees)
  size = int((60 / (abs(math.cos(theta)) + abs(math.sin(theta))))) - 1
  size -= 1 - size % 2  # Odd: the middle crop is then centred on pixel 30.
  transform = augment.crop_transform((30.0, 30.0), 1.0, theta, size)
  ours = _crop(image, transform, size)
  reference = sk_transform.rotate(image, degrees, order=1, mode="constant",
                                  cval=np.nan)
  top = (61 - size) // 2
  reference = reference[top:top + size, top:top + size]
  assert not np.isnan(reference).any()  # The crop is inside the image.
  np.testing.assert_allclose(ours, reference, atol=2e-5, rtol=0)


def test_scaled_rotated_offset_crop_matches_skimage_warp():
  # The general case: zoom 1/0.6, 15 degrees, off-centre, non-square image.
  image = _pattern(50, 70, seed=1)
  scale, theta, (cy, cx), size = 0.6, math.radians(15.0), (21.5, 40.25), 40
  ours = _crop(image, augment.crop_transform((cy, cx), scale, theta, size), size)
  m = (size - 1) / 2
  # Output (x, y) -> input: centre + scale * R(theta) @ ((x, y) - m).
  out_to_in = (sk_transform.AffineTransform(translation=(-m, -m))
               + sk_transform.AffineTransform(scale=scale, rotation=theta)
               + sk_transform.AffineTransform(translation=(cx, cy)))
  reference = sk_transform.warp(image, out_to_in, output_shape=(size, size),
                                order=1, mode="constant", cval=np.nan)
  assert not np.isnan(reference).any()
  np.testing.assert_allclose(ours, reference, atol=2e-5, rtol=0)


@pytest.mark.parametrize("hw", [(32, 32), (32, 57), (90, 33), (200, 140)])
@pytest.mark.parametrize("degrees", [44.99, -44.99, 10.0])
def test_extreme_crops_have_no_fill_pixels(hw, degrees):
  # The largest crop at the widest angle, centred at each corner of its range.
  image = np.full(hw + (3,), 0.6)
  for area in (1.0, 0.3):
    for u in ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.5)):
      transform = augment.fitted_transform(
          hw, area, math.radians(degrees), np.asarray(u), IMAGE_SIZE)
      out = _crop(image, transform, IMAGE_SIZE)
      np.testing.assert_allclose(out, 0.6, atol=1e-5, rtol=0,
                                 err_msg=f"area={area}, u={u}")


def test_fill_detection_can_fail():
  # A crop one pixel past the allowed range does read the fill value.
  hw, theta = (60, 60), math.radians(30.0)
  half = float(augment.grid_half_extent(1.0, theta, IMAGE_SIZE))
  inside = augment.crop_transform((half + 0.02, 29.5), 1.0, theta, IMAGE_SIZE)
  outside = augment.crop_transform((half - 1.0, 29.5), 1.0, theta, IMAGE_SIZE)
  image = np.full(hw + (3,), 0.6)
  assert np.allclose(_crop(image, inside, IMAGE_SIZE), 0.6, atol=1e-5)
  assert _crop(image, outside, IMAGE_SIZE).min() < 0.0


def test_sampled_crops_have_no_fill_pixels():
  cfg = data_config.AugmentConfig(crop_scale=(0.5, 1.0), hflip=False,
                                  rotate_degrees=44.99)
  image = np.full((40, 71, 3), 0.6)
  angles = []
  for index in range(300):
    transform = augment.sample_transform(
        (40, 71), index, seed=7, image_size=IMAGE_SIZE, cfg=cfg)
    out = _crop(image, transform, IMAGE_SIZE)
    np.testing.assert_allclose(out, 0.6, atol=1e-5, rtol=0, err_msg=f"{index}")
    angles.append(math.degrees(math.atan2(float(transform[3]), float(transform[0]))))
  assert max(angles) > 43 and min(angles) < -43  # The draws reach the extremes.


def test_fast_and_fill_paths_are_the_same_resample():
  # Crops inside the image go through PIL, others through numpy (for the fill
  # value): on a crop inside, both give the same samples.
  image = _pattern(50, 70, seed=2).astype(np.float32)
  transform = augment.crop_transform((24.3, 33.1), 0.8, math.radians(-17.0), 40)
  fast = _crop(image, transform, 40)
  exact = augment._resample_with_fill(image, [float(v) for v in transform[:6]], 40, SENTINEL)
  np.testing.assert_allclose(fast, exact, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------
# The ops against TensorFlow's, which the tf.data pipeline used (before
# jaxstyle moved to Grain): same transform, same pixels, to float32 rounding.


@pytest.mark.parametrize("trial", range(8))
def test_rotated_crop_matches_tf_image_projective_transform(trial):
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(trial)
  image = _pattern(60, 80, seed=trial).astype(np.float32)
  size = 32
  # Half of these windows reach outside the image: fill pixels must match too.
  transform = augment.crop_transform(
      (rng.uniform(5, 55), rng.uniform(5, 75)), rng.uniform(0.5, 1.2),
      rng.uniform(-0.7, 0.7), size)
  ours = _crop(image, transform, size, fill_value=-7.0)
  want = tf.raw_ops.ImageProjectiveTransformV3(
      images=image[None], transforms=tf.constant(transform[None], tf.float32),
      output_shape=[size, size], fill_value=-7.0, interpolation="BILINEAR",
      fill_mode="CONSTANT")[0].numpy()
  # TF computes sample coordinates in float32 (~3e-5 of a pixel at x = 80).
  np.testing.assert_allclose(ours, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("hw, image_size, resize_min", [
    ((480, 640), 256, 256),   # default config: COCO-sized photo, shrink
    ((333, 500), 128, 160),   # quickstart
    ((120, 97), 32, 48),      # tiny
    ((40, 33), 48, 0),        # smaller than the crop: enlarge
    ((50, 70), 32, 100),      # resize_min above the short side: enlarge
    ((90, 200), 64, 0),       # big enough: unchanged
])
def test_resize_matches_tf_image_resize_antialias(hw, image_size, resize_min):
  tf = pytest.importorskip("tensorflow")
  image = _pattern(*hw, seed=3).astype(np.float32)
  ours = augment.resize_short_side(image, image_size, resize_min)
  # The tf.data pipeline's resize, verbatim.
  short = min(hw)
  target = max(resize_min or short, image_size)
  scale = tf.cast(target, tf.float32) / tf.cast(short, tf.float32)
  new_size = tf.maximum(tf.cast(tf.math.ceil(tf.cast(tf.stack(hw), tf.float32) * scale),
                                tf.int32), image_size)
  want = image if target == short else tf.image.resize(image, new_size, antialias=True).numpy()
  assert ours.shape == want.shape
  np.testing.assert_allclose(ours, want, atol=5e-5, rtol=0)  # 1.4e-5 measured


# ---------------------------------------------------------------------------
# Config validation.


@pytest.mark.parametrize("key, value", [
    ("crop_scale", (0.0, 1.0)),
    ("crop_scale", (0.8, 0.5)),
    ("crop_scale", (0.5, 1.5)),
    ("crop_scale", 0.5),
    ("crop_scale", (0.2, 0.4, 0.6)),
    ("rotate_degrees", -1.0),
    ("rotate_degrees", 45.0),
    ("rotate_degrees", "10"),
    ("hflip", "yes"),
    ("rotation", 10.0),  # Unknown key (a typo).
])
def test_bad_augment_values_name_the_key(tmp_path, key, value):
  good = dict(crop_scale=(0.5, 1.0), hflip=True, rotate_degrees=10.0)
  config = _config(tmp_path, augment=dict(good, **{key: value}))
  with pytest.raises(ValueError, match=rf"config\.data\.augment\.{key}\b"):
    data_config.validate_data_config(config)
  with pytest.raises(ValueError, match=rf"config\.data\.augment\.{key}\b"):
    input_pipeline.create_train_dataset(config, global_batch_size=BATCH, seed=0)


@pytest.mark.parametrize("key, value", [("image_size", 0), ("image_size", 32.5),
                                        ("resize_min", -1), ("num_workers", -2),
                                        ("num_workers", 1.5), ("prefetch", 0)])
def test_bad_data_values_name_the_key(tmp_path, key, value):
  config = _config(tmp_path, **{key: value})
  with pytest.raises(ValueError, match=rf"config\.data\.{key}="):
    data_config.validate_data_config(config)


def test_missing_augment_keys_are_off():
  assert data_config.parse_augment_config(None) == data_config.AugmentConfig()
  assert data_config.AugmentConfig().plain_crop
  cfg = data_config.parse_augment_config({"hflip": True})
  assert cfg == data_config.AugmentConfig(hflip=True) and cfg.plain_crop


# ---------------------------------------------------------------------------
# The pipeline with augmentation.


def _config(root, **overrides):
  return ml_collections.ConfigDict(dict(dict(
      source=f"folder:{root}", split="train", data_dir=None, download=False,
      image_size=IMAGE_SIZE, resize_min=0, num_workers=0), **overrides))


def _take(config, n, seed=0, start_step=0):
  it = input_pipeline.create_train_dataset(
      config, global_batch_size=BATCH, seed=seed, start_step=start_step)
  try:
    return np.concatenate([next(it) for _ in range(n)])
  finally:
    it.close()


def _write_images(root, n=6):
  rng = np.random.default_rng(0)
  for i in range(n):
    pixels = rng.integers(0, 256, (40 + 7 * i, 60 - 3 * i, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / f"img_{i}.png")


def test_plain_settings_take_plain_windows(tmp_path):
  # One image, no resize: every element is an unresampled 32² window of it
  # (exact pixels, no interpolation), at offsets that vary; the augment block
  # with 'off' values is the same as no block.
  pixels = np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(tmp_path / "only.png")
  windows = np.lib.stride_tricks.sliding_window_view(
      pixels / np.float32(255), (IMAGE_SIZE, IMAGE_SIZE, 3))[..., 0, :, :, :]
  plain = dict(crop_scale=(1.0, 1.0), hflip=False, rotate_degrees=0.0)
  batches = _take(_config(tmp_path), 3, seed=4)
  np.testing.assert_array_equal(_take(_config(tmp_path, augment=plain), 3, seed=4), batches)
  offsets = set()
  for crop in batches:
    match = np.argwhere((windows == crop).all(axis=(2, 3, 4)))
    assert len(match) == 1
    offsets.add(tuple(match[0]))
  assert len(offsets) >= 8  # 12 draws over 14 x 39 offsets.


def test_flip_is_an_exact_mirror(tmp_path):
  _write_images(tmp_path)
  aug = dict(crop_scale=(0.5, 1.0), hflip=False, rotate_degrees=10.0)
  unflipped = _take(_config(tmp_path, augment=aug), 6)
  flipped = _take(_config(tmp_path, augment=dict(aug, hflip=True)), 6)
  mirrored = [np.array_equal(f, u[:, ::-1]) for f, u in zip(flipped, unflipped)]
  same = [np.array_equal(f, u) for f, u in zip(flipped, unflipped)]
  assert all(m or s for m, s in zip(mirrored, same))
  assert 4 <= sum(mirrored) <= 20  # p = 1/2 over 24 images.


def test_pipeline_rotations_leave_no_fill_pixels(tmp_path):
  # Constant-colour images of several shapes; short side == image_size is the
  # tightest case. Fill pixels (0) would pull a pixel below 200/255.
  for i, hw in enumerate([(32, 32), (32, 50), (77, 32), (45, 45)]):
    Image.fromarray(np.full(hw + (3,), 200, np.uint8)).save(tmp_path / f"{i}.png")
  aug = dict(crop_scale=(0.5, 1.0), hflip=True, rotate_degrees=44.9)
  batches = _take(_config(tmp_path, augment=aug), 16)
  np.testing.assert_allclose(batches, 200 / 255, atol=1e-5, rtol=0)


def test_crop_scale_and_angle_of_sampled_crops(tmp_path):
  # A horizontal ramp (pixel value = column) shows each crop's geometry: the
  # output's gradient is scale * (cos θ, -sin θ) per pixel, in 1/255 units.
  ramp = np.broadcast_to(np.arange(120, dtype=np.uint8)[None, :, None], (90, 120, 3))
  Image.fromarray(np.ascontiguousarray(ramp)).save(tmp_path / "ramp.png")
  aug = dict(crop_scale=(0.25, 0.25), hflip=False, rotate_degrees=10.0)
  batches = _take(_config(tmp_path, augment=aug), 8) * 255.0
  angles = []
  for image in batches:
    dx = np.mean(np.diff(image, axis=1))
    dy = np.mean(np.diff(image, axis=0))
    # Area 1/4 of the plain 32² window (it fits at 10° in 90 px): scale 1/2.
    assert math.hypot(dx, dy) == pytest.approx(0.5, abs=1e-4)
    angles.append(math.degrees(math.atan2(-dy, dx)))
  assert max(angles) <= 10.0 + 1e-3 and min(angles) >= -10.0 - 1e-3
  assert max(angles) > 3 and min(angles) < -3


def test_augmented_stream_is_deterministic_and_resumes(tmp_path):
  _write_images(tmp_path)
  config = _config(tmp_path, augment=dict(crop_scale=(0.5, 1.0), hflip=True,
                                          rotate_degrees=10.0))
  fresh = _take(config, 5, seed=2)
  np.testing.assert_array_equal(_take(config, 5, seed=2), fresh)
  resumed = _take(config, 2, seed=2, start_step=3)
  np.testing.assert_array_equal(resumed, fresh[3 * BATCH:])
  plain = _take(_config(tmp_path), 5, seed=2)
  assert not np.array_equal(plain, fresh)  # Augmentation did something.
  assert not np.array_equal(_take(config, 5, seed=3), fresh)


@pytest.mark.parametrize("aug", [dict(), dict(crop_scale=(0.5, 1.0), rotate_degrees=10.0)],
                         ids=["plain", "rotated"])
def test_flat_crops_are_drawn_again(aug, monkeypatch):
  # A photo that is black but for one textured corner: most 32² windows are
  # flat (the NaN-gradient case of augment._FLAT); every crop returned must
  # not be, and the draws stay a function of (seed, index).
  image = np.zeros((96, 96, 3), np.float32)
  image[56:, 56:] = _pattern(40, 40)
  cfg = data_config.AugmentConfig(hflip=False, **aug)
  take = lambda photo, i: augment.augment(photo, i, seed=0, image_size=IMAGE_SIZE,
                                          resize_min=0, cfg=cfg)
  crops = [take(image, i) for i in range(40)]
  assert all(np.ptp(c) >= augment._FLAT for c in crops)
  np.testing.assert_array_equal(take(image, 7), crops[7])
  # A blank photo still gives a (flat) crop once the attempts are spent.
  assert all(np.ptp(take(image * 0, i)) == 0 for i in range(3))
  # Without the redraw (one attempt) most of these crops would have been flat.
  monkeypatch.setattr(augment, "_ATTEMPTS", 1)
  assert sum(np.ptp(take(image, i)) < augment._FLAT for i in range(40)) > 10
