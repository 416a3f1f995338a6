"""Building blocks shared by the style-transfer networks.

All layers are NHWC. Convolutions use reflect padding (zero padding leaves dark
borders in stylized images) and upsampling is nearest-neighbour followed by a
convolution (transposed convolutions leave checkerboard artifacts).
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Pads H and W by `pad` pixels, mirroring the border (excluding the edge)."""
  if pad == 0:
    return x
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling by an integer factor (broadcast + reshape)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)


class InstanceNorm(nn.Module):
  """Instance normalization: per-sample, per-channel over H and W, with affine.

  Written as mean / mean-of-squared-deviations (not sum / count) so that it stays
  finite in half precision on large images.
  """
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    centered = x - mean
    var = jnp.mean(jnp.square(centered), axis=(1, 2), keepdims=True)
    return centered * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class Conv(nn.Module):
  """Standard k×k convolution with reflect padding."""
  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = reflect_pad(x, self.kernel_size // 2)
    return nn.Conv(self.features, (self.kernel_size,) * 2, strides=self.strides,
                   padding="VALID", use_bias=self.use_bias, name="conv")(x)


class SeparableConv(nn.Module):
  """Depthwise k×k convolution followed by a pointwise 1×1 convolution.

  For C_in→C_out this costs k²·C_in + C_in·C_out weights instead of
  k²·C_in·C_out: the main reason the U-Net is ~10× cheaper than TransformerNet.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    x = reflect_pad(x, self.kernel_size // 2)
    x = nn.Conv(channels, (self.kernel_size,) * 2, strides=self.strides,
                padding="VALID", feature_group_count=channels, use_bias=False,
                name="depthwise")(x)
    return nn.Conv(self.features, (1, 1), use_bias=self.use_bias,
                   name="pointwise")(x)


class ConvNormAct(nn.Module):
  """conv → instance norm → ReLU, the unit every encoder/decoder stage repeats.

  The convolution has no bias: instance norm removes it anyway.
  """
  features: int
  separable: bool = True
  strides: int = 1
  kernel_size: int = 3
  activation: Callable[[jax.Array], jax.Array] | None = nn.relu

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv_cls = SeparableConv if self.separable else Conv
    x = conv_cls(self.features, self.kernel_size, self.strides, use_bias=False,
                 name="conv")(x)
    x = InstanceNorm(name="norm")(x)
    return self.activation(x) if self.activation is not None else x
