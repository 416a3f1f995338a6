"""Content augmentation on the host in numpy/PIL: resize, random resized crop,
rotation, flip.

Runs inside the input pipeline's worker processes, so it imports neither JAX
nor TensorFlow. Every random draw comes from a generator seeded by
(seed, index, op): `index` is the element's position in the global stream and
each op has its own salt, so a draw depends only on those three. Resuming a
run, changing the process or worker count, or turning one op on or off leaves
the other draws unchanged.

Crop, rotation and zoom are one bilinear resample: output pixel (x, y) reads
the input at `centre + s * R(theta) @ ((x, y) - (S - 1) / 2)`. The centre is
drawn only where the whole rotated sampling grid lies inside the image, so no
output pixel ever reads outside it (the fill value).
"""

import math

import numpy as np
from PIL import Image

from jaxstyle import data_config

# Per-op salts of the element seed; never change them (resume).
_SALT_SCALE = 1
_SALT_ANGLE = 2
_SALT_CENTRE = 3
_SALT_FLIP = 4
_SALT_PLAIN_CROP = 5
# A crop flatter than this (max − min, all channels) is drawn again: under
# instance norm a constant image has zero variance in every layer, and its
# gradient, scaled by 1/sqrt(epsilon) ≈ 316 at each of the ~24 norms,
# overflows to NaN (a black border or a blown-out sky at 128² crops of 512 px
# photos did it within 10 steps). It has nothing to stylize either.
_FLAT = 0.5 / 255
_ATTEMPTS = 8
# Salt offset of each redraw: attempt 0 uses the ops' own salts.
_SALT_ATTEMPT = 100
# Keeps the sampling grid this many pixels inside the image, so that an edge
# sample never gives a fill pixel a weight, whatever the coordinate rounding.
_MARGIN = 0.01


def op_rng(seed: int, index: int, salt: int) -> np.random.Generator:
  """The generator of one op for the element at `index` of the stream."""
  return np.random.default_rng([salt, seed % 2**64, index])


def resize_short_side(image: np.ndarray, image_size: int, resize_min: int) -> np.ndarray:
  """Scales a float (H, W, C) image so its short side is max(resize_min, image_size).

  resize_min 0 keeps images whose short side is already >= image_size. Both
  sides are rounded up and kept >= image_size. Bilinear, antialiased when
  shrinking (a triangle filter as wide as the scale): what
  `tf.image.resize(..., antialias=True)` computes, in PIL's float mode.
  """
  h, w = image.shape[:2]
  short = min(h, w)
  target = max(resize_min or short, image_size)
  if target == short:
    return image
  # 1e-9: h * target / short is an integer for the short side; no float fuzz
  # may round it up.
  new_h, new_w = (max(math.ceil(s * target / short - 1e-9), image_size) for s in (h, w))
  return np.stack([
      np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F")
                 .resize((new_w, new_h), Image.Resampling.BILINEAR))
      for c in range(image.shape[2])], axis=-1)


def crop_transform(centre_yx, scale: float, angle: float, image_size: int) -> np.ndarray:
  """The (8,) projective transform of a rotated, scaled square crop.

  Output pixel (x, y) of the `image_size`² result reads the input at
  `centre + scale * R(angle) @ ((x, y) - m)`, m = (image_size - 1) / 2, all in
  pixel-index coordinates (TF's ImageProjectiveTransform layout: a0..a7 with
  input x = a0 x + a1 y + a2, input y = a3 x + a4 y + a5). A positive angle
  rotates the content counter-clockwise as displayed, as
  `skimage.transform.rotate` does.
  """
  cy, cx = centre_yx
  m = (image_size - 1) / 2.0
  c, s = scale * math.cos(angle), scale * math.sin(angle)
  return np.array([c, -s, cx - c * m + s * m,
                   s, c, cy - s * m - c * m,
                   0.0, 0.0])


def rotated_crop(image: np.ndarray, transform, image_size: int,
                 fill_value: float = 0.0) -> np.ndarray:
  """Bilinear resample of a float (H, W, C) image by `crop_transform`.

  Each of a sample's four neighbours outside the image reads `fill_value`, as
  in TF's ImageProjectiveTransformV3 with fill_mode CONSTANT; the crops drawn
  here never have one (tests use a sentinel fill to prove it). Such crops go
  through PIL's float-mode affine resample (2.7× faster than numpy at 256²,
  the same samples); the others through numpy, for the fill semantics.
  """
  a = [float(v) for v in np.asarray(transform)[:6]]
  h, w, channels = image.shape
  last = image_size - 1
  # The grid is affine: its extreme samples are at the corners.
  corners_x = [a[0] * x + a[1] * y + a[2] for x in (0, last) for y in (0, last)]
  corners_y = [a[3] * x + a[4] * y + a[5] for x in (0, last) for y in (0, last)]
  if (min(corners_x) >= 0 and max(corners_x) < w - 1
      and min(corners_y) >= 0 and max(corners_y) < h - 1):
    return _resample_inside(image, a, image_size)
  return _resample_with_fill(image, a, image_size, fill_value)


def _resample_inside(image: np.ndarray, a, image_size: int) -> np.ndarray:
  """`rotated_crop` when every neighbour is inside: PIL, one float band at a time.

  PIL samples output pixel (x, y) at a0 (x + ½) + a1 (y + ½) + c with pixel
  centres at +½, so c = a2 + ½ - ½ (a0 + a1) gives the same sample points.
  """
  data = (a[0], a[1], a[2] + 0.5 - 0.5 * (a[0] + a[1]),
          a[3], a[4], a[5] + 0.5 - 0.5 * (a[3] + a[4]))
  size = (image_size, image_size)
  return np.stack([
      np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F")
                 .transform(size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR))
      for c in range(image.shape[2])], axis=-1)


def _resample_with_fill(image: np.ndarray, a, image_size: int,
                        fill_value: float) -> np.ndarray:
  h, w, channels = image.shape
  grid = np.arange(image_size, dtype=np.float64)
  x_in = a[0] * grid[None, :] + a[1] * grid[:, None] + a[2]
  y_in = a[3] * grid[None, :] + a[4] * grid[:, None] + a[5]
  x0, y0 = np.floor(x_in), np.floor(y_in)
  fx, fy = (x_in - x0)[..., None], (y_in - y0)[..., None]
  flat = image.reshape(h * w, channels)

  def read(y, x):
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    index = np.clip(y, 0, h - 1).astype(np.intp) * w + np.clip(x, 0, w - 1).astype(np.intp)
    return np.where(inside[..., None], flat[index], np.float32(fill_value))

  top = (1 - fx) * read(y0, x0) + fx * read(y0, x0 + 1)
  bottom = (1 - fx) * read(y0 + 1, x0) + fx * read(y0 + 1, x0 + 1)
  return ((1 - fy) * top + fy * bottom).astype(np.float32)


def grid_half_extent(scale: float, angle: float, image_size: int) -> float:
  """Half the axis-aligned extent of the rotated sampling grid, in pixels."""
  spread = abs(math.cos(angle)) + abs(math.sin(angle))
  return scale * (image_size - 1) * spread / 2.0


def fitted_transform(image_hw, area: float, angle: float, u, image_size: int) -> np.ndarray:
  """The transform for given draws: area fraction, angle (radians), u in [0,1]².

  The crop's area is the fraction `area` of the largest crop the angle allows:
  the plain `image_size`² window when the rotated window fits in the image's
  short side, else the largest that does (a rotation by θ needs
  |cos θ| + |sin θ| times the side, up to 1.41× at 45°, so with
  resize_min == image_size a rotated crop always zooms in a little). `u` places
  the centre uniformly over the positions where every sample is inside.
  """
  hw = np.asarray(image_hw, np.float64)
  short = float(hw.min())
  max_scale = 1.0
  if image_size > 1:
    unit = grid_half_extent(1.0, angle, image_size)
    max_scale = min(1.0, (short - 1.0 - 2 * _MARGIN) / (2.0 * unit))
  scale = math.sqrt(area) * max_scale
  half = grid_half_extent(scale, angle, image_size) + _MARGIN
  centre = half + np.asarray(u, np.float64) * np.maximum(hw - 1.0 - 2.0 * half, 0.0)
  return crop_transform(centre, scale, angle, image_size)


def sample_transform(image_hw, index: int, *, seed: int, image_size: int,
                     cfg: data_config.AugmentConfig, attempt: int = 0) -> np.ndarray:
  """Draws crop area, angle and centre of the element at `index`; its transform."""
  lo, hi = cfg.crop_scale
  redraw = _SALT_ATTEMPT * attempt
  area = op_rng(seed, index, _SALT_SCALE + redraw).uniform(lo, hi)
  max_angle = math.radians(cfg.rotate_degrees)
  angle = op_rng(seed, index, _SALT_ANGLE + redraw).uniform(-max_angle, max_angle)
  u = op_rng(seed, index, _SALT_CENTRE + redraw).uniform(size=2)
  return fitted_transform(image_hw, area, angle, u, image_size)


def plain_crop(image: np.ndarray, index: int, *, seed: int, image_size: int,
               attempt: int = 0) -> np.ndarray:
  """An unscaled image_size² window at a uniform integer offset (no resampling)."""
  h, w = image.shape[:2]
  top, left = op_rng(seed, index, _SALT_PLAIN_CROP + _SALT_ATTEMPT * attempt).integers(
      0, (h - image_size + 1, w - image_size + 1))
  return image[top:top + image_size, left:left + image_size]


def random_flip(image: np.ndarray, index: int, *, seed: int) -> np.ndarray:
  """Mirrors left-right with probability 1/2 (a draw of its own)."""
  return image[:, ::-1] if op_rng(seed, index, _SALT_FLIP).uniform() < 0.5 else image


def augment(image: np.ndarray, index: int, *, seed: int, image_size: int, resize_min: int,
            cfg: data_config.AugmentConfig) -> np.ndarray:
  """One training crop: float32 (image_size, image_size, 3) in [0, 1].

  `image` is float (H, W, 3) in [0, 1]. The short side is resized first
  (`resize_short_side`); with crop_scale (1, 1) and rotate_degrees 0 the crop
  is a plain window of pixels, otherwise the rotated, zoomed resample; hflip
  mirrors the result. A flat crop is drawn again (up to 8 times, `_FLAT`).
  """
  image = resize_short_side(image, image_size, resize_min)
  for attempt in range(_ATTEMPTS):
    if cfg.plain_crop:
      out = plain_crop(image, index, seed=seed, image_size=image_size, attempt=attempt)
    else:
      transform = sample_transform(image.shape[:2], index, seed=seed,
                                   image_size=image_size, cfg=cfg, attempt=attempt)
      out = rotated_crop(image, transform, image_size)
    if np.ptp(out) >= _FLAT:
      break
  if cfg.hflip:
    out = random_flip(out, index, seed=seed)
  return np.clip(out, 0.0, 1.0, dtype=np.float32)
