"""Perceptual losses for style transfer: content, Gram-matrix style, total variation.

Content and style terms are *relative* squared errors: each layer's error is
divided by the squared norm of its target. That makes every layer contribute
~1 when the output is unrelated to its target, whatever the layer's depth or
the loss network's input scaling (torchvision [0,1]-normalised vs Caffe 0–255
weights differ ~60× in feature magnitude), so the loss weights in a config mean
the same thing for every VGG source.
"""

from typing import Mapping

import jax
import jax.numpy as jnp

_EPS = 1e-8


def gram_matrix(features: jax.Array) -> jax.Array:
  """(B, H, W, C) features → (B, C, C) channel correlations averaged over pixels."""
  b, h, w, c = features.shape
  flat = features.reshape(b, h * w, c)
  return jnp.einsum("bpc,bpd->bcd", flat, flat) / (h * w)


def _relative_sq_error(x: jax.Array, target: jax.Array) -> jax.Array:
  """Per-sample ||x - target||² / ||target||², averaged over the batch."""
  axes = tuple(range(1, x.ndim))
  err = jnp.sum(jnp.square(x - target), axis=axes)
  norm = jnp.sum(jnp.square(target), axis=axes)
  return jnp.mean(err / (norm + _EPS))


def content_loss(features: Mapping[str, jax.Array],
                 targets: Mapping[str, jax.Array],
                 layer_weights: Mapping[str, float]) -> jax.Array:
  """Weighted sum over layers of the relative feature reconstruction error."""
  return sum(w * _relative_sq_error(features[name], targets[name])
             for name, w in layer_weights.items())


def style_loss(features: Mapping[str, jax.Array],
               style_grams: Mapping[str, jax.Array],
               layer_weights: Mapping[str, float]) -> dict[str, jax.Array]:
  """Relative Gram-matrix error per layer.

  `style_grams[name]` has shape (1, C, C) (one style image, broadcast over the
  batch) or (B, C, C). Returns {layer: weighted loss}; sum the values for the total.
  """
  out = {}
  for name, w in layer_weights.items():
    g = gram_matrix(features[name])
    target = jnp.broadcast_to(style_grams[name], g.shape)
    out[name] = w * _relative_sq_error(g, target)
  return out


def total_variation(images: jax.Array) -> jax.Array:
  """Mean squared difference between neighbouring pixels (images in [0, 1])."""
  dy = images[:, 1:, :, :] - images[:, :-1, :, :]
  dx = images[:, :, 1:, :] - images[:, :, :-1, :]
  return jnp.mean(jnp.square(dy)) + jnp.mean(jnp.square(dx))
