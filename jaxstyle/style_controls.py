"""A user's style choice checked and turned into numbers: style weights, strength.

`--style_weights mosaic=0.7,candy=0.3 --strength 0.6` (or the Python
stylizer's arguments) become a weight vector over the network's styles and a
strength in [0, 1]; anything that cannot be meant raises a ValueError naming
the value. numpy only: the onnxruntime stylizer uses it without JAX.
"""

import os
from collections.abc import Mapping, Sequence

import numpy as np


def style_sources(style_cfg: Mapping) -> list[str]:
  """The styles of a run's config.style: `images` if given, else `image`."""
  images = style_cfg.get("images") or ()
  return [str(s) for s in images] if images else [str(style_cfg["image"])]


def style_name(style: str) -> str:
  """The name a style goes by: a shipped style's name, or a path's file stem."""
  return os.path.splitext(os.path.basename(str(style)))[0]


def parse_style_weights(spec: str | Mapping[str, float] | Sequence[float] | None,
                        names: Sequence[str]) -> np.ndarray | None:
  """'mosaic=0.7,candy=0.3', 'candy' (that style alone), {'mosaic': 0.7}, or a
  vector of len(names) → float32 weights over `names`, normalised to sum 1.

  None: the only style of a one-style network, else an error listing the
  styles.
  """
  names = list(names)
  if spec is None:
    if len(names) == 1:
      return None
    raise ValueError(f"this model has {len(names)} styles ({', '.join(names)}): "
                     "choose with style_weights, e.g. "
                     f"'{names[0]}=0.7,{names[1]}=0.3' or '{names[0]}'")
  if isinstance(spec, str):
    mapping = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
      name, sep, value = part.partition("=")
      try:
        mapping[name.strip()] = float(value) if sep else 1.0
      except ValueError:
        raise ValueError(f"style weight {part!r} is not name=number") from None
    spec = mapping
  if isinstance(spec, Mapping):
    unknown = sorted(set(spec) - set(names))
    if unknown:
      raise ValueError(f"unknown style {unknown[0]!r}: this model has "
                       f"{', '.join(names)}")
    weights = np.array([float(spec.get(n, 0.0)) for n in names], np.float32)
  else:
    weights = np.asarray(spec, np.float32).reshape(-1)
    if weights.size != len(names):
      raise ValueError(f"style_weights has {weights.size} values; this model has "
                       f"{len(names)} styles ({', '.join(names)})")
  if not np.isfinite(weights).all() or (weights < 0).any():
    bad = weights[~np.isfinite(weights) | (weights < 0)][0]
    raise ValueError(f"style weight {bad:g} is not allowed: weights are >= 0")
  if weights.sum() <= 0:
    raise ValueError(f"style weights {weights.tolist()} are all zero: give at least "
                     "one style a positive weight")
  return weights / weights.sum()


def check_strength(strength: float | None, strength_control: bool) -> float | None:
  """None (full style) or a float in [0, 1]; a network trained without the
  identity condition only takes None or 1."""
  if strength is None:
    return None
  strength = float(strength)
  if not 0.0 <= strength <= 1.0:
    raise ValueError(f"strength={strength:g} is outside [0, 1] (0: the photo, 1: "
                     "the full style)")
  if not strength_control:
    if strength == 1.0:
      return None
    raise ValueError(f"strength={strength:g} needs a model trained with "
                     "config.model.strength_control=True")
  return strength
