"""U-Net style-transfer network built from depthwise-separable convolutions.

Layout of the full-resolution network (features=(16, 32, 64, 128),
patch_size=1; configs/fullres.py) at 256×256:

  stem   3×3 conv 3→16                        256²   ─────────────────┐ skip
  down1  sep s2 16→32, sep 32→32              128²   ─────────────┐   │
  down2  sep s2 32→64, sep 64→64               64²   ─────────┐   │   │
  down3  sep s2 64→128, sep 128→128            32²            │   │   │
  body   num_res_blocks × (sep, sep) + identity at 32²        │   │   │
  up3    nearest ×2, sep 128→64, concat ← ────────────────────┘   │   │
         sep 128→64                            64²                │   │
  up2    …→32, concat, sep                    128²   ←────────────┘   │
  up1    …→16, concat, sep                    256²   ←────────────────┘
  head   3×3 conv 16→3, sigmoid → RGB in [0, 1]

jaxstyle's default (configs/default.py) is patch_size=2 with
conv_before_upsample=True. patch_size=2 puts a lossless 2×2 space-to-depth
before the stem (256²×3 → 128²×12) and makes the head a nearest ×2 upsampling
+ 3×3 conv 16→3 computed at 128² (`layers.UpsampleConv`: per-phase kernels,
then depth-to-space), so every level runs at half the resolution;
conv_before_upsample=True runs each decoder level's first conv before its
upsampling ("sep 128→64, nearest ×2"). Together: 0.28× the multiply-adds,
~5× faster under onnxruntime, a little less fine detail.

Only the stem and head (pixel ends, where depthwise convolution saves little)
are standard convolutions.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxstyle.models import conditioning
from jaxstyle.models import layers


class ResidualBlock(nn.Module):
  features: int
  conv: type[nn.Module] = layers.ConvNormAct

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    y = self.conv(self.features, name="conv1")(x, condition)
    y = self.conv(self.features, activation=None, name="conv2")(y, condition)
    return x + y


class UNet(nn.Module):
  """Encoder/decoder with skip connections; input and output RGB in [0, 1].

  Attributes:
    features: channel width at full resolution and after each downsampling.
    num_res_blocks: residual blocks at the lowest resolution.
    separable: depthwise-separable (True) or standard 3×3 convolutions inside.
    skips: concatenate encoder features into the decoder (the U in U-Net).
    depthwise_impl: how depthwise convolutions run ('auto', 'shifts', 'conv');
      the parameters and the function are the same for all.
    patch_size: the network works on patch_size×patch_size pixel blocks:
      space-to-depth before the stem; the head upsamples and convolves at the
      low resolution (`layers.UpsampleConv`). 2 runs every layer at a quarter
      of the pixels (≈4× less time and activation memory at a given image
      size); the stem sees every pixel and the head writes every pixel.
    conv_before_upsample: each decoder level first narrows the channels at the
      lower resolution, then upsamples, instead of upsampling the wide map;
      the same layers, ≈4× fewer MACs in them and half the upsampled memory.
    first_skip_level: the shallowest encoder level whose features skip to the
      decoder (0: the stem's, i.e. all skips; 1: from down1 on, ...). The
      shallow skips carry the photo's own pixels and colours past the
      bottleneck, where the style is made.
    head_blur: with patch_size > 1, a fixed [1, 2, 1] / 4 blur after the head
      (`layers.UpsampleConv(blur=True)`, folded into its kernels: free at run
      time), so the network cannot paint a grid at the patch period.
    num_styles: styles trained into the one network: every instance norm of
      the body and decoder has a row of scale and bias per style (conditional
      instance norm); convolutions and the encoder are shared. 1 (and no strength control) is the plain
      single-style network, parameters and all.
    strength_control: one more norm row, the identity, trained to reproduce
      the photo; blending it with the style rows sets the strength at
      inference (`conditioning.condition_vector`).
    photo_skip: with strength control, the photo's logits join the head's
      output through a per-condition gate (blended like the norm rows). The
      stem's instance norm discards each photo's own channel means and
      contrasts, which no norm row can restore; this path keeps them, so the
      identity condition can give the photo back (docs/quality.md).
  """
  features: Sequence[int] = (16, 32, 64, 128)
  num_res_blocks: int = 5
  separable: bool = True
  skips: bool = True
  depthwise_impl: str = "auto"
  patch_size: int = 1
  conv_before_upsample: bool = False
  first_skip_level: int = 0
  head_blur: bool = False
  num_styles: int = 1
  strength_control: bool = False
  photo_skip: bool = False

  @property
  def num_conditions(self) -> int:
    """Rows of every instance norm's affine; > 1 makes `condition` required."""
    return conditioning.num_conditions(self.num_styles, self.strength_control)

  @property
  def size_multiple(self) -> int:
    """Input H and W must be multiples of this (the patch, one halving per level)."""
    return self.patch_size * 2 ** (len(self.features) - 1)

  @nn.compact
  def __call__(self, images: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    """images (B, H, W, 3) in [0, 1]; condition (B, num_conditions) norm-row
    weights (`conditioning`), only for a network with more than one row."""
    k = self.num_conditions
    if k == 1 and condition is not None:
      raise ValueError("this network has one style and no strength control: "
                       "it takes no condition")
    # The encoder describes the photo and is shared by every condition; the
    # body and decoder, where the style is painted, have a norm row per
    # condition (with the encoder's norms conditioned too, 4 styles and
    # strength control would add 6.5% parameters instead of 5.0%).
    conv = functools.partial(layers.ConvNormAct, separable=self.separable,
                             depthwise_impl=self.depthwise_impl)
    styled_conv = functools.partial(conv, num_conditions=k)
    x = images
    if self.patch_size > 1:
      x = layers.space_to_depth(x, self.patch_size)
    x = layers.Conv(self.features[0], 3, use_bias=False, name="stem")(x)
    x = nn.relu(layers.InstanceNorm(name="stem_norm")(x))
    encoded = [x]
    for level, width in enumerate(self.features[1:], start=1):
      x = conv(width, strides=2, name=f"down{level}_a")(x)
      x = conv(width, name=f"down{level}_b")(x)
      encoded.append(x)
    conv = styled_conv
    for i in range(self.num_res_blocks):
      x = ResidualBlock(self.features[-1], conv, name=f"res{i}")(x, condition)
    for level in range(len(self.features) - 1, 0, -1):
      width = self.features[level - 1]
      if self.conv_before_upsample:
        x = layers.upsample_nearest(conv(width, name=f"up{level}_a")(x, condition))
      else:
        x = conv(width, name=f"up{level}_a")(layers.upsample_nearest(x), condition)
      if self.skips and level - 1 >= self.first_skip_level:
        x = jnp.concatenate([x, encoded[level - 1]], axis=-1)
      x = conv(width, name=f"up{level}_b")(x, condition)
    if self.patch_size > 1:
      x = layers.UpsampleConv(3, self.patch_size, blur=self.head_blur, name="head")(x)
    else:
      x = layers.Conv(3, 3, name="head")(x)
    if self.photo_skip:
      x = x + self._photo_gate(condition) * logit(images)
    return nn.sigmoid(x)

  def _photo_gate(self, condition: jax.Array) -> jax.Array:
    """(B, 1, 1, 1) weight of the photo's logits: the condition's blend of a
    per-row gate that starts at 1 for the identity row, 0 for the styles."""
    if not self.strength_control:
      raise ValueError("model.photo_skip needs model.strength_control (the identity row)")
    k = self.num_conditions
    gate = self.param("photo_gate", lambda _, shape: jnp.zeros(shape).at[-1].set(1.0), (k,))
    return (condition @ gate[:, None]).reshape(-1, 1, 1, 1)


def logit(pixels: jax.Array, eps: float = 1 / 512) -> jax.Array:
  """Inverse of the sigmoid, pixels clipped to [eps, 1 − eps] (sigmoid gives
  them back within eps; finite in float16)."""
  p = jnp.clip(pixels, eps, 1.0 - eps)
  return jnp.log(p) - jnp.log(1.0 - p)
