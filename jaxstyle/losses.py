"""Perceptual losses for style transfer: content, Gram-matrix style, local
(patch) style, total variation.

Content and style terms are *relative* squared errors: each layer's error is
divided by the squared norm of its target. That makes every layer contribute
~1 when the output is unrelated to its target, whatever the layer's depth or
the loss network's input scaling (torchvision [0,1]-normalised vs Caffe 0–255
weights differ ~60× in feature magnitude), so the loss weights in a config mean
the same thing for every VGG source.
"""

import math
from typing import Mapping

import jax
import jax.numpy as jnp

_EPS = 1e-8
# Upper bound on the bytes of one block of output patches and their
# correlations with the style patches in `local_style_matches` (see there).
_CORRELATION_CHUNK_BYTES = 32 * 2**20


def gram_matrix(features: jax.Array) -> jax.Array:
  """(B, H, W, C) features → (B, C, C) channel correlations averaged over pixels."""
  b, h, w, c = features.shape
  flat = features.reshape(b, h * w, c)
  return jnp.einsum("bpc,bpd->bcd", flat, flat) / (h * w)


def relative_sq_error(x: jax.Array, target: jax.Array,
                      per_example: bool = False) -> jax.Array:
  """Per-sample ||x - target||² / ||target||², averaged over the batch (or (B,))."""
  axes = tuple(range(1, x.ndim))
  err = jnp.sum(jnp.square(x - target), axis=axes)
  norm = jnp.sum(jnp.square(target), axis=axes)
  per_sample = err / (norm + _EPS)
  return per_sample if per_example else jnp.mean(per_sample)


def content_loss(features: Mapping[str, jax.Array],
                 targets: Mapping[str, jax.Array],
                 layer_weights: Mapping[str, float],
                 per_example: bool = False) -> jax.Array:
  """Weighted sum over layers of the relative feature reconstruction error."""
  return sum(w * relative_sq_error(features[name], targets[name], per_example)
             for name, w in layer_weights.items())


def style_loss(features: Mapping[str, jax.Array],
               style_grams: Mapping[str, jax.Array],
               layer_weights: Mapping[str, float],
               per_example: bool = False) -> dict[str, jax.Array]:
  """Relative Gram-matrix error per layer.

  `style_grams[name]` has shape (1, C, C) (one style image, broadcast over the
  batch) or (B, C, C) (each example its own style). Returns {layer: weighted
  loss}, each a scalar or, with `per_example`, (B,); sum the values for the total.
  """
  out = {}
  for name, w in layer_weights.items():
    g = gram_matrix(features[name])
    target = jnp.broadcast_to(style_grams[name], g.shape)
    out[name] = w * relative_sq_error(g, target, per_example)
  return out


COLOR_QUANTILES = 256


def color_quantiles(images: jax.Array, num: int = COLOR_QUANTILES) -> jax.Array:
  """(B, H, W, 3) → (B, num, 3): each channel's values at the quantiles
  (i + ½) / num, i.e. the image's colour histogram per channel, sorted."""
  b, h, w, c = images.shape
  flat = jnp.sort(images.reshape(b, h * w, c), axis=1)
  index = jnp.floor((jnp.arange(num) + 0.5) / num * (h * w)).astype(jnp.int32)
  return flat[:, index, :]


def color_distribution_loss(images: jax.Array, target_quantiles: jax.Array,
                            per_example: bool = False) -> jax.Array:
  """Relative squared error between the images' per-channel colour quantiles
  and `target_quantiles` ((1 or B, num, 3), from `color_quantiles` of the
  style): the 1-D Wasserstein-2 distance of each channel's histogram, so the
  output takes the style's palette (the distribution that histogram matching
  would impose), which the Gram terms only constrain through its moments."""
  q = color_quantiles(images, target_quantiles.shape[1])
  return relative_sq_error(q, jnp.broadcast_to(target_quantiles, q.shape), per_example)


def total_variation(images: jax.Array, per_example: bool = False) -> jax.Array:
  """Mean squared difference between neighbouring pixels (images in [0, 1])."""
  dy = images[:, 1:, :, :] - images[:, :-1, :, :]
  dx = images[:, :, 1:, :] - images[:, :, :-1, :]
  if per_example:
    return jnp.mean(jnp.square(dy), axis=(1, 2, 3)) + jnp.mean(jnp.square(dx), axis=(1, 2, 3))
  return jnp.mean(jnp.square(dy)) + jnp.mean(jnp.square(dx))


# ----------------------------------------------------------------------------
# Local (patch) style loss: CNNMRF (Li & Wand 2016) nearest-neighbour matching.


def _patches(x: jax.Array, size: int, stride: int = 1) -> jax.Array:
  """(B, H, W, C) → (B, Ho, Wo, size, size, C): every size×size window at `stride`.

  Built from size² strided slices, so its gradient is size² pads and adds.
  """
  b, h, w, c = x.shape
  if h < size or w < size:
    raise ValueError(f"features of {h}×{w} are smaller than patch_size={size}")
  ho, wo = (h - size) // stride + 1, (w - size) // stride + 1
  windows = [x[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
             for i in range(size) for j in range(size)]
  return jnp.stack(windows, axis=3).reshape(b, ho, wo, size, size, c)


def local_style_targets(style_features: Mapping[str, jax.Array],
                        layer_weights: Mapping[str, float],
                        patch_size: int, stride: int) -> dict[str, jax.Array]:
  """Style patches of each layer of `layer_weights`: {layer: (N, k, k, C)}.

  `style_features[layer]` is (S, H, W, C), usually S = 1; the patches of all S
  images form one pool. N = S·((H-k)//stride + 1)·((W-k)//stride + 1) is fixed by
  the shapes, so the result can be computed under jit or stacked into a bank.
  Only raw patches are kept (their normalised copies are recomputed per step,
  cheap next to the matching) to halve the memory of a bank of targets.
  """
  out = {}
  for name in layer_weights:
    f = style_features[name]
    out[name] = _patches(f, patch_size, stride).reshape(
        -1, patch_size, patch_size, f.shape[-1])
  return out


def local_style_matches(features: jax.Array, style_patches: jax.Array,
                        chunk_bytes: int = _CORRELATION_CHUNK_BYTES) -> jax.Array:
  """Index of the best style patch for each stride-1 patch of `features`.

  features (B, H, W, C), style_patches (N, k, k, C) → (B, H-k+1, W-k+1) int32:
  argmax_j <p, s_j> / (|p| |s_j|), the normalised cross-correlation (|p| is the
  same for every j, so only the style patches are normalised). No gradient
  flows through the matching.

  The correlations are a matmul of output patches (·, k²C) with the normalised
  style patches (N, k²C); on XLA:CPU that GEMM is ~1.5× faster than the
  equivalent convolution with N kernels. Memory: for batch 4 of 256² content
  and a 256² style image on relu3_3 the full correlation matrix is 15376 × 3844
  (236 MB) and the output patches 15376 × 2304 (142 MB), so both are made for
  a block of output rows at a time (`lax.map` over blocks, each at most
  `chunk_bytes` of patches + correlations) and reduced to the argmax in the
  block: peak memory is one block, whatever the image sizes.
  """
  dtype = jnp.result_type(features.dtype, style_patches.dtype, jnp.float32)
  f = jax.lax.stop_gradient(features).astype(dtype)
  s = jax.lax.stop_gradient(style_patches).astype(dtype)
  n, k = s.shape[0], s.shape[1]
  s = s.reshape(n, -1)
  s = s / (jnp.sqrt(jnp.sum(jnp.square(s), axis=1, keepdims=True)) + _EPS)
  b, h, w, _ = f.shape
  ho, wo = h - k + 1, w - k + 1
  # Output rows per block: its patches (B·rows·Wo × k²C) and correlations
  # (B·rows·Wo × N) together fit in chunk_bytes; blocks of equal size.
  row_bytes = jnp.dtype(dtype).itemsize * b * wo * (n + s.shape[1])
  num_chunks = math.ceil(ho / max(1, min(ho, chunk_bytes // row_bytes)))
  rows = math.ceil(ho / num_chunks)

  def best(x):  # (B, rows + k - 1, W, C) → (B, rows, Wo)
    p = _patches(x, k).reshape(-1, s.shape[1])
    return jnp.argmax(p @ s.T, axis=-1).astype(jnp.int32).reshape(b, -1, wo)

  if num_chunks == 1:
    return best(f)
  # Blocks are read in place (no padded copy); the last one starts at
  # Ho - rows, overlapping its predecessor, and the repeated rows are dropped.
  starts = jnp.minimum(jnp.arange(num_chunks) * rows, ho - rows)
  idx = jax.lax.map(
      lambda start: best(jax.lax.dynamic_slice_in_dim(f, start, rows + k - 1, axis=1)),
      starts)  # (chunks, B, rows, Wo)
  overlap = (num_chunks - 1) * rows - (ho - rows)
  return jnp.concatenate(
      [jnp.moveaxis(idx[:-1], 0, 1).reshape(b, -1, wo), idx[-1, :, overlap:]], axis=1)


@jax.checkpoint
def _matched_sq_error(features: jax.Array, idx: jax.Array,
                      style_patches: jax.Array) -> jax.Array:
  """Per sample Σ_i |p_i - s_idx(i)|² over the stride-1 patches p_i of `features`.

  Summed offset by offset within the patch, so neither the output patches nor
  the matched ones (k² times the features' size) are materialised; the
  checkpoint makes the backward recompute the differences instead of keeping
  k² of them.
  """
  k = style_patches.shape[1]
  ho, wo = idx.shape[1:]
  err = 0.0
  for i in range(k):
    for j in range(k):
      matched = jnp.take(style_patches[:, i, j], idx, axis=0)  # (B, Ho, Wo, C)
      diff = features[:, i:i + ho, j:j + wo] - matched
      err = err + jnp.sum(jnp.square(diff), axis=(1, 2, 3))
  return err


def local_style_loss(features: Mapping[str, jax.Array],
                     targets: Mapping[str, jax.Array],
                     layer_weights: Mapping[str, float],
                     patch_size: int,
                     chunk_bytes: int = _CORRELATION_CHUNK_BYTES) -> dict[str, jax.Array]:
  """Relative distance of each output patch to its nearest style patch, per layer.

  For every stride-1 k×k patch p_i of `features[layer]` (B, H, W, C) and its
  match m_i = targets[layer][local_style_matches(...)]: per sample
  Σ_i |p_i - m_i|² / Σ_i |m_i|², averaged over the batch, times the layer's
  weight: 0 when every output patch occurs in the style image, 1 for an
  all-zero output, so its weight compares with the other relative terms.
  The matching is piecewise constant, so the gradient treats it as fixed.
  Neither output nor matched patches are materialised whole (see
  `local_style_matches`, `_matched_sq_error`): the loss adds ~34 MiB to the
  XLA:CPU temp memory of a batch-4 256² training step (1.6 GiB) where whole
  patches and correlations added ~230 MiB.
  Returns {layer: weighted loss}; sum for the total.
  """
  out = {}
  for name, w in layer_weights.items():
    style = jax.lax.stop_gradient(targets[name])
    if style.shape[1:3] != (patch_size, patch_size):
      raise ValueError(f"local style targets of {name!r} are {style.shape[1]}×"
                       f"{style.shape[2]} patches, not patch_size={patch_size}")
    idx = local_style_matches(features[name], style, chunk_bytes)
    err = _matched_sq_error(features[name], idx, style)
    norm = jnp.sum(jnp.take(jnp.sum(jnp.square(style), axis=(1, 2, 3)), idx), axis=(1, 2))
    out[name] = w * jnp.mean(err / (norm + _EPS))
  return out


# ----------------------------------------------------------------------------
# Stability (Gupta et al. 2017, "Characterizing and Improving Stability in
# Neural Style Transfer"): the output should not jump when the input barely
# changes.


def output_gain(stylized: jax.Array, perturbed: jax.Array, scale: float) -> jax.Array:
  """Mean squared output change per unit squared input perturbation: (rms gain)².

  `perturbed` is the network's output when its input (or its arithmetic) is
  perturbed by about `scale`, e.g. Gaussian noise of standard deviation
  `scale`: ≈1 for an identity map. A large gain makes the output flicker
  between video frames and magnifies fp16 rounding on device.
  """
  return jnp.mean(jnp.square(perturbed - stylized)) / scale**2
