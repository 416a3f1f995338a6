"""Strips of pictures that show a multi-style network's controls.

A blend strip goes from style A to style B in equal steps of the style
weights; a strength strip from strength 0 (the photo) to 1 (the full style).
Training writes them into the gallery of a multi-style run and
tools/control_report.py measures them.
"""

from typing import Callable, Sequence

import numpy as np

from jaxstyle.models import conditioning

# (image HxWx3 in [0, 1], condition (1, K)) → stylized image.
ApplyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def blend_conditions(num_styles: int, a: int, b: int, steps: int, strength_control: bool
                     ) -> list[np.ndarray]:
  """Conditions from style a alone to style b alone, `steps` of them."""
  out = []
  for t in np.linspace(0.0, 1.0, steps):
    weights = np.zeros(num_styles, np.float32)
    weights[a] += 1 - t
    weights[b] += t
    out.append(np.asarray(conditioning.condition_vector(
        weights, 1.0 if strength_control else None, num_styles=num_styles,
        strength_control=strength_control)))
  return out


def strength_conditions(num_styles: int, style: int, steps: int) -> list[np.ndarray]:
  """Conditions of `style` at strengths 0 … 1, `steps` of them."""
  weights = np.eye(num_styles, dtype=np.float32)[style]
  return [np.asarray(conditioning.condition_vector(weights, s, num_styles=num_styles,
                                                   strength_control=True))
          for s in np.linspace(0.0, 1.0, steps)]


def strip(apply_fn: ApplyFn, image: np.ndarray, conditions: Sequence[np.ndarray],
          gap: int = 4) -> tuple[np.ndarray, list[np.ndarray]]:
  """(one picture: the outputs side by side with white gaps, the outputs)."""
  outputs = [np.clip(np.asarray(apply_fn(image, c), np.float32), 0, 1) for c in conditions]
  h = image.shape[0]
  pieces = []
  for out in outputs:
    pieces += [out, np.ones((h, gap, 3), np.float32)]
  return np.concatenate(pieces[:-1], axis=1), outputs


def gallery_strips(apply_fn: ApplyFn, image: np.ndarray, style_names: Sequence[str],
                   strength_control: bool, steps: int = 5) -> dict[str, np.ndarray]:
  """{'blend_<a>_<b>': strip, 'strength_<a>': strip} for the first two styles."""
  n = len(style_names)
  strips = {}
  if n > 1:
    strips[f"blend_{style_names[0]}_{style_names[1]}"] = strip(
        apply_fn, image, blend_conditions(n, 0, 1, steps, strength_control))[0]
  if strength_control:
    strips[f"strength_{style_names[0]}"] = strip(
        apply_fn, image, strength_conditions(n, 0, steps))[0]
  return strips
