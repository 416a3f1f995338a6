"""Building blocks shared by the style-transfer networks.

All layers are NHWC. Convolutions use reflect padding (zero padding leaves dark
borders in stylized images) and upsampling is nearest-neighbour followed by a
convolution (transposed convolutions leave checkerboard artifacts).
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _reflect_pad_fwd(x, pad):
  return _reflect_pad(x, pad), None


def _reflect_pad_bwd(pad, _, g):
  """Folds the mirrored borders back onto the rows/columns they copy.

  Autodiff's version is a chain of pads and scatter-adds, ~20% of the U-Net's
  gradient time on XLA:CPU.
  """
  p = pad
  g = (g[:, :, p:-p].at[:, :, 1:p + 1].add(g[:, :, p - 1::-1])
       .at[:, :, -p - 1:-1].add(g[:, :, :-p - 1:-1]))
  g = (g[:, p:-p].at[:, 1:p + 1].add(g[:, p - 1::-1])
       .at[:, -p - 1:-1].add(g[:, :-p - 1:-1]))
  return (g,)


_reflect_pad.defvjp(_reflect_pad_fwd, _reflect_pad_bwd)


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Pads H and W by `pad` pixels, mirroring the border (excluding the edge)."""
  return x if pad == 0 else _reflect_pad(x, pad)


def edge_pad(x: jax.Array, pad: int) -> jax.Array:
  """Pads H and W by repeating the border pixels."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling by an integer factor (broadcast + reshape)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)


def space_to_depth(x: jax.Array, block: int) -> jax.Array:
  """[B, H, W, C] → [B, H/b, W/b, b·b·C]: each b×b pixel block becomes one
  position, channel (i·b + j)·C + c holding pixel (i, j) of channel c (the
  order of ONNX `SpaceToDepth` and Core ML `space_to_depth`). Lossless."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // block, block, w // block, block, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // block, w // block, block * block * c)


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
  """Inverse of `space_to_depth` (ONNX `DepthToSpace` mode DCR)."""
  b, h, w, c = x.shape
  c_out = c // (block * block)
  x = x.reshape(b, h, w, block, block, c_out)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * block, w * block, c_out)


# The variable collection of statistics that replace InstanceNorm's own.
NORM_STATS = "norm_stats"


class InstanceNorm(nn.Module):
  """Instance normalization: per-sample, per-channel over H and W, with affine.

  Written as mean / mean-of-squared-deviations (not sum / count) so that it stays
  finite in half precision on large images.

  With `num_conditions` K > 1 it is conditional instance normalization
  (Dumoulin et al. 2017): K rows of scale and bias, and each sample's affine is
  its `condition` weights (B, K) times them, so a one-hot condition selects a
  row and other weights blend rows. K = 1 has today's (C,) parameters.

  Variables `mean` and `var` (C,) in the `NORM_STATS` collection, when given,
  replace the statistics of `x`: `jaxstyle.tiling` normalises each tile of a
  large image with the whole image's.
  """
  epsilon: float = 1e-5
  num_conditions: int = 1
  # Each mean over H, W as two one-axis means (the SavedModel export's form,
  # jaxstyle/export/tf_export.py); the same function.
  two_stage_mean: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    features = x.shape[-1]
    shape = (features,) if self.num_conditions == 1 else (self.num_conditions, features)
    scale = self.param("scale", nn.initializers.ones, shape)
    bias = self.param("bias", nn.initializers.zeros, shape)
    if self.num_conditions > 1:
      if condition is None or condition.shape[-1] != self.num_conditions:
        got = None if condition is None else condition.shape
        raise ValueError(f"{self.name}: a condition of shape (batch, {self.num_conditions}) "
                         f"is needed, got {got}")
      scale = (condition @ scale)[:, None, None, :]
      bias = (condition @ bias)[:, None, None, :]
    if self.two_stage_mean:
      mean_hw = lambda v: jnp.mean(jnp.mean(v, axis=1, keepdims=True), axis=2, keepdims=True)
    else:
      mean_hw = lambda v: jnp.mean(v, axis=(1, 2), keepdims=True)
    if self.has_variable(NORM_STATS, "mean"):
      centered = x - self.get_variable(NORM_STATS, "mean")
      var = self.get_variable(NORM_STATS, "var")
    else:
      centered = x - mean_hw(x)
      var = mean_hw(jnp.square(centered))
    return centered * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class _ConvWeights(nn.Module):
  """A 3×3 convolution's kernel and bias, named as in `Conv` (conv/kernel, conv/bias)."""
  shape: tuple

  @nn.compact
  def __call__(self):
    return (self.param("kernel", nn.initializers.lecun_normal(), self.shape),
            self.param("bias", nn.initializers.zeros, self.shape[-1:]))


# Binomial [1, 2, 1] / 4: the shortest symmetric filter with zero gain at the
# Nyquist frequency, i.e. it removes exactly a 2-pixel alternation.
_BLUR = np.array([1.0, 2.0, 1.0], np.float32) / 4


class UpsampleConv(nn.Module):
  """Nearest ×factor upsampling then `Conv(features, 3)`, computed at the low
  resolution: one 3×3 conv whose factor² output groups are the conv's kernel
  summed over the taps that land on the same low-resolution pixel, then
  depth-to-space. Exactly the same function and parameters as the two-step
  form (reflect padding of the upsampled map is edge padding before it), but
  it never builds the factor²-times larger map of the input's width.

  The sub-pixel phases share one kernel, but that does not rule out a
  phase-periodic grid: the difference between two phases of a block is the
  kernel applied to the low-resolution feature differences, so a network
  pushed towards fine texture learns to paint a 2-pixel grid (measured in
  docs/quality.md). `blur=True` follows the conv with a fixed [1, 2, 1] / 4
  blur along H and W at the full resolution, which has zero gain at the
  2-pixel period; it folds into the same per-phase 3×3 kernels (the function
  is the three-step form with the upsampled map edge-padded by 2), so it costs
  nothing at run time.
  """
  features: int
  factor: int = 2
  blur: bool = False

  def phase_taps(self) -> np.ndarray:
    """taps[i, a, t]: the weight with which tap t (offset t-1) of the 3×3
    kernel reaches low-resolution offset a-1 in an output pixel of phase i."""
    f = self.factor
    blur = {0: 1.0} if not self.blur else {d - 1: w for d, w in enumerate(_BLUR)}
    taps = np.zeros((f, 3, 3), np.float32)
    for i in range(f):
      for t in range(3):
        for d, w in blur.items():
          taps[i, (i + d + t - 1) // f + 1, t] += w
    return taps

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    f = self.factor
    kernel, bias = _ConvWeights((3, 3, x.shape[-1], self.features), name="conv")()
    taps = self.phase_taps()
    phases = [jnp.einsum("ay,bx,yxio->abio", taps[i], taps[j], kernel)
              for i in range(f) for j in range(f)]
    y = jax.lax.conv_general_dilated(
        edge_pad(x, 1), jnp.concatenate(phases, axis=-1), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return depth_to_space(y + jnp.tile(bias, f * f), f)


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


def _window(x, i, j, strides, out_h, out_w, row_step=1):
  """x[:, i + s·row_step·h, j + s·w] for h < out_h, w < out_w."""
  rs = strides * row_step
  return x[:, i:i + rs * (out_h - 1) + 1:rs, j:j + strides * (out_w - 1) + 1:strides]


def _shifted_sum(x, kernel, strides):
  k = kernel.shape[0]
  out_h = (x.shape[1] - k) // strides + 1
  out_w = (x.shape[2] - k) // strides + 1
  return sum(_window(x, i, j, strides, out_h, out_w) * kernel[i, j, 0]
             for i in range(k) for j in range(k))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv_shifts(x: jax.Array, kernel: jax.Array, strides: int = 1) -> jax.Array:
  """Depthwise VALID convolution as k² shifted multiply-adds.

  Same result as `lax.conv_general_dilated(..., feature_group_count=C)` with an
  HWIO kernel of shape (k, k, 1, C). XLA:CPU runs grouped convolutions ~20×
  slower than this elementwise form. The gradient is written by hand too:
  autodiff's (a pad + add per tap for dx, a copied slice + reduction per tap
  for the kernel) made the U-Net's backward ~2× slower (tools/benchmark.py).
  """
  return _shifted_sum(x, kernel, strides)


def _depthwise_fwd(x, kernel, strides):
  return _shifted_sum(x, kernel, strides), (x, kernel)


def _depthwise_bwd(strides, residuals, g):
  x, kernel = residuals
  k = kernel.shape[0]
  _, out_h, out_w, channels = g.shape
  # dx: the stride-dilated, zero-padded cotangent correlated with the flipped
  # kernel: again k² shifted multiply-adds in one loop fusion.
  extra_h = x.shape[1] - ((out_h - 1) * strides + k)
  extra_w = x.shape[2] - ((out_w - 1) * strides + k)
  g_padded = jax.lax.pad(g, jnp.zeros((), g.dtype), (
      (0, 0, 0), (k - 1, k - 1 + extra_h, strides - 1),
      (k - 1, k - 1 + extra_w, strides - 1), (0, 0, 0)))
  dx = _shifted_sum(g_padded, kernel[::-1, ::-1], 1)
  # dkernel[i, j, c] = Σ_{b,h,w} x[b, i + s·h, j + s·w, c] · g[b, h, w, c].
  # Rows are first summed in groups of t by elementwise adds of strided slices
  # (one vectorised loop, taps innermost for cache reuse), then a contiguous
  # reduction finishes; a direct reduction per tap copies each slice first.
  t = max(d for d in range(1, min(16, out_h) + 1) if out_h % d == 0)
  rows = out_h // t
  partial_sums = [
      sum(_window(x, i + strides * r, j, strides, rows, out_w, row_step=t) * g[:, r::t]
          for r in range(t))
      for i in range(k) for j in range(k)]
  dk = jnp.stack(partial_sums, axis=-2).sum(axis=(0, 1, 2))
  return dx, dk.reshape(k, k, 1, channels).astype(kernel.dtype)


depthwise_conv_shifts.defvjp(_depthwise_fwd, _depthwise_bwd)


class DepthwiseConv(nn.Module):
  """k×k depthwise convolution (no padding; the caller reflect-pads).

  Attributes:
    impl: 'conv' (lax grouped convolution), 'shifts' (see
      `depthwise_conv_shifts`) or 'auto' (shifts on CPU, conv elsewhere).
      Parameters are identical for all three.
  """
  kernel_size: int = 3
  strides: int = 1
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, channels))
    impl = self.impl
    if impl == "auto":
      impl = "shifts" if jax.default_backend() == "cpu" else "conv"
    if impl == "shifts":
      return depthwise_conv_shifts(x, kernel, self.strides)
    if impl != "conv":
      raise ValueError(f"DepthwiseConv.impl={impl!r}: use 'auto', 'shifts' or 'conv'")
    return jax.lax.conv_general_dilated(
        x, kernel, (self.strides,) * 2, "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


class SeparableConv(nn.Module):
  """Depthwise k×k convolution followed by a pointwise 1×1 convolution.

  For C_in→C_out this costs k²·C_in + C_in·C_out weights instead of
  k²·C_in·C_out: the main reason the U-Net is ~10× cheaper than TransformerNet.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = True
  depthwise_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = reflect_pad(x, self.kernel_size // 2)
    x = DepthwiseConv(self.kernel_size, self.strides, self.depthwise_impl,
                      name="depthwise")(x)
    # A 1×1 convolution is a matmul over channels; as Dense its gradient is a
    # plain GEMM, ~2× faster on XLA:CPU than the convolution's.
    return nn.Dense(self.features, use_bias=self.use_bias, name="pointwise")(x)


class ConvNormAct(nn.Module):
  """conv → instance norm → ReLU, the unit every encoder/decoder stage repeats.

  The convolution has no bias: instance norm removes it anyway.
  """
  features: int
  separable: bool = True
  strides: int = 1
  kernel_size: int = 3
  activation: Callable[[jax.Array], jax.Array] | None = nn.relu
  depthwise_impl: str = "auto"
  num_conditions: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    if self.separable:
      conv = SeparableConv(self.features, self.kernel_size, self.strides,
                           use_bias=False, depthwise_impl=self.depthwise_impl, name="conv")
    else:
      conv = Conv(self.features, self.kernel_size, self.strides, use_bias=False, name="conv")
    x = conv(x)
    x = InstanceNorm(num_conditions=self.num_conditions, name="norm")(x, condition)
    return self.activation(x) if self.activation is not None else x
