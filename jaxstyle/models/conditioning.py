"""The condition of a multi-style network: which styles, blended how, how strongly.

A U-Net trained on N styles (config.model.num_styles) has one row of
instance-norm scale and bias per style; with config.model.strength_control it
has one more, the identity row, trained to give the photo back. A user's
choice, non-negative style weights w and a strength s in [0, 1], becomes the
weights those K rows are blended with: [s·w/Σw, 1 − s]. The same function runs
in training, in `jaxstyle stylize` and inside the exported ONNX and Core ML
graphs; user input is checked before it gets here (jaxstyle.style_controls).
"""

import jax
import jax.numpy as jnp


def num_conditions(num_styles: int, strength_control: bool) -> int:
  """Rows of instance-norm affine: one per style, plus the identity row."""
  return num_styles + int(strength_control)


def condition_vector(style_weights: jax.Array | None, strength: jax.Array | None, *,
                     num_styles: int, strength_control: bool) -> jax.Array:
  """(B, K) blend weights from style weights (N,) or (B, N) and a strength
  (scalar, (1,) or (B,); None = 1). Weights are normalised to sum 1; an
  all-zero vector gives all-zero weights (callers reject it first)."""
  if style_weights is None:
    if num_styles != 1:
      raise ValueError(f"this network has {num_styles} styles: style weights are needed")
    style_weights = jnp.ones((1, 1), jnp.float32)
  w = jnp.asarray(style_weights, jnp.float32)
  w = w.reshape(1, -1) if w.ndim == 1 else w
  if w.shape[-1] != num_styles:
    raise ValueError(f"style weights have length {w.shape[-1]}; this network has "
                     f"{num_styles} styles")
  w = w / jnp.maximum(jnp.sum(w, axis=-1, keepdims=True), 1e-12)
  if not strength_control:
    if strength is not None:
      raise ValueError("this network was trained without strength control "
                       "(config.model.strength_control=False)")
    return w
  s = jnp.ones((1,), jnp.float32) if strength is None else jnp.asarray(strength, jnp.float32)
  s = s.reshape(-1, 1)
  batch = max(w.shape[0], s.shape[0])
  w, s = jnp.broadcast_to(w, (batch, num_styles)), jnp.broadcast_to(s, (batch, 1))
  return jnp.concatenate([s * w, 1.0 - s], axis=-1)


def one_hot(indices: jax.Array, num_styles: int, strength_control: bool) -> jax.Array:
  """Training conditions: index i < N is style i, N the identity row."""
  return jax.nn.one_hot(indices, num_conditions(num_styles, strength_control))
