"""Stateless content augmentation in TF: random resized crop, rotation, flip.

Used inside tf.data on the host. Every random draw is a `stateless_*` op seeded
by `[seed, index]` (the element's position in the stream) folded with a
per-op salt, so a draw depends only on (seed, index, op): resuming a run, or
turning one op on or off, leaves the other ops' draws unchanged.

Crop, rotation and resize are one bilinear resample
(`tf.raw_ops.ImageProjectiveTransformV3`): output pixel (x, y) reads the input
at `centre + s * R(theta) @ ((x, y) - (S - 1) / 2)`. The centre is drawn only
where the whole rotated sampling grid lies inside the image, so no output
pixel ever reads the fill value.
"""

import math

import tensorflow as tf

from jaxstyle.data_config import AugmentConfig  # noqa: F401 (re-exported)
from jaxstyle.data_config import MAX_ROTATE_DEGREES  # noqa: F401 (re-exported)
from jaxstyle.data_config import parse_augment_config as parse_config  # noqa: F401

# Per-op salts folded into the element seed; never change them (resume).
_SALT_SCALE = 1
_SALT_ANGLE = 2
_SALT_CENTRE = 3
_SALT_FLIP = 4
# Keeps the sampling grid this many pixels inside the image, against float32
# rounding of coordinates (an exact edge sample would weight a fill pixel 0).
_MARGIN = 0.01


def op_seed(seed: int, index, salt: int) -> tf.Tensor:
  """The stateless seed of one op for the element at `index` of the stream."""
  base = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
  return tf.random.experimental.stateless_fold_in(base, salt)


def crop_transform(centre_yx, scale, angle, image_size: int) -> tf.Tensor:
  """The (8,) projective transform of a rotated, scaled square crop.

  Output pixel (x, y) of the `image_size`² result reads the input at
  `centre + scale * R(angle) @ ((x, y) - m)`, m = (image_size - 1) / 2, all in
  pixel-index coordinates. A positive angle rotates the content
  counter-clockwise as displayed, as `skimage.transform.rotate` does.
  """
  cy, cx = centre_yx[0], centre_yx[1]
  m = (image_size - 1) / 2.0
  c, s = scale * tf.cos(angle), scale * tf.sin(angle)
  return tf.cast(tf.stack([
      c, -s, cx - c * m + s * m,
      s, c, cy - s * m - c * m,
      0.0, 0.0,
  ]), tf.float32)


def rotated_crop(image: tf.Tensor, transform: tf.Tensor, image_size: int,
                 fill_value: float = 0.0) -> tf.Tensor:
  """Bilinear resample of an (H, W, 3) float image by `crop_transform`."""
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image[None],
      transforms=transform[None],
      output_shape=tf.constant([image_size, image_size], tf.int32),
      fill_value=tf.constant(fill_value, tf.float32),
      interpolation="BILINEAR",
      fill_mode="CONSTANT",
  )
  return out[0]


def grid_half_extent(scale, angle, image_size: int):
  """Half the axis-aligned extent of the rotated sampling grid, in pixels."""
  spread = tf.abs(tf.cos(angle)) + tf.abs(tf.sin(angle))
  return scale * (image_size - 1) * spread / 2.0


def fitted_transform(image_hw, area, angle, u, image_size: int) -> tf.Tensor:
  """The transform for given draws: area fraction, angle (radians), u in [0,1]².

  The crop's area is the fraction `area` of the largest crop the angle allows:
  the plain `image_size`² window when the rotated window fits in the image's
  short side, else the largest that does (a rotation by θ needs
  |cos θ| + |sin θ| times the side, up to 1.41× at 45°, so with
  resize_min == image_size a rotated crop always zooms in a little). `u` places
  the centre uniformly over the positions where every sample is inside.
  """
  hw = tf.cast(image_hw, tf.float32)
  short = tf.minimum(hw[0], hw[1])
  max_scale = 1.0
  if image_size > 1:
    unit = grid_half_extent(1.0, angle, image_size)
    max_scale = tf.minimum(1.0, (short - 1.0 - 2 * _MARGIN) / (2.0 * unit))
  scale = tf.sqrt(area) * max_scale
  half = grid_half_extent(scale, angle, image_size) + _MARGIN
  centre = half + u * tf.maximum(hw - 1.0 - 2.0 * half, 0.0)
  return crop_transform(centre, scale, angle, image_size)


def sample_transform(image_hw, index, *, seed: int, image_size: int,
                     cfg: AugmentConfig) -> tf.Tensor:
  """Draws crop area, angle and centre of the element at `index`; its transform."""
  lo, hi = cfg.crop_scale
  area = tf.random.stateless_uniform(
      [], op_seed(seed, index, _SALT_SCALE), minval=lo, maxval=hi)
  max_angle = math.radians(cfg.rotate_degrees)
  angle = tf.random.stateless_uniform(
      [], op_seed(seed, index, _SALT_ANGLE), minval=-max_angle, maxval=max_angle)
  u = tf.random.stateless_uniform([2], op_seed(seed, index, _SALT_CENTRE))
  return fitted_transform(image_hw, area, angle, u, image_size)


def random_flip(image: tf.Tensor, index, *, seed: int) -> tf.Tensor:
  """Mirrors left-right with probability 1/2 (a draw of its own)."""
  flip = tf.random.stateless_uniform([], op_seed(seed, index, _SALT_FLIP)) < 0.5
  return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
