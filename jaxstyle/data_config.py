"""Validation of `config.data` and its augmentation (no JAX, no Grain).

The Trainer validates the whole config at start, before the input pipeline
starts its workers, so a bad value fails at once, naming its key.
"""

from typing import Any, Mapping, NamedTuple

MAX_ROTATE_DEGREES = 45.0
_AUGMENT_KEY = "config.data.augment"


class AugmentConfig(NamedTuple):
  """Parsed `config.data.augment`; the defaults are 'off'."""
  crop_scale: tuple[float, float] = (1.0, 1.0)
  hflip: bool = False
  rotate_degrees: float = 0.0

  @property
  def plain_crop(self) -> bool:
    """True when crops are plain unscaled, unrotated random crops."""
    return self.crop_scale == (1.0, 1.0) and self.rotate_degrees == 0.0


def parse_crop_scale(value: Any, key: str, of_what: str) -> tuple[float, float]:
  """Validates a `(lo, hi)` area-fraction range; `key` names it in errors."""
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f"{key}.crop_scale={value!r} must be a pair (lo, hi) of "
                     "area fractions") from None
  if not 0.0 < lo <= hi <= 1.0:
    raise ValueError(f"{key}.crop_scale={tuple(value)!r} must satisfy "
                     f"0 < lo <= hi <= 1 (area fractions of {of_what})")
  return lo, hi


def parse_augment_config(augment: Mapping[str, Any] | None) -> AugmentConfig:
  """Validates `config.data.augment`; missing keys (older configs) are off.

  Raises:
    ValueError: naming the offending `config.data.augment.<key>`.
  """
  if augment is None:
    return AugmentConfig()
  augment = dict(augment)
  unknown = sorted(set(augment) - set(AugmentConfig._fields))
  if unknown:
    raise ValueError(f"{_AUGMENT_KEY}.{unknown[0]}: unknown key; valid keys are "
                     f"{list(AugmentConfig._fields)}")
  out = AugmentConfig()
  if "crop_scale" in augment:
    out = out._replace(crop_scale=parse_crop_scale(
        augment["crop_scale"], _AUGMENT_KEY, "the crop"))
  if "hflip" in augment:
    value = augment["hflip"]
    if not isinstance(value, bool):
      raise ValueError(f"{_AUGMENT_KEY}.hflip={value!r} must be True or False")
    out = out._replace(hflip=value)
  if "rotate_degrees" in augment:
    value = augment["rotate_degrees"]
    if (isinstance(value, bool) or not isinstance(value, (int, float))
        or not 0.0 <= value < MAX_ROTATE_DEGREES):
      raise ValueError(f"{_AUGMENT_KEY}.rotate_degrees={value!r} must be a number in "
                       f"[0, {MAX_ROTATE_DEGREES:g}) (uniform in ±degrees)")
    out = out._replace(rotate_degrees=float(value))
  return out


def validate_data_config(data_config: Mapping[str, Any]) -> None:
  """Fails at start, naming the key, for values the pipeline cannot use.

  `config.data.augment` may be missing, or miss keys (configs saved before it
  existed): those augmentations are off.

  Raises:
    ValueError: naming `config.data.<key>` or `config.data.augment.<key>`.
  """
  image_size = data_config.get("image_size")
  if (isinstance(image_size, bool) or not isinstance(image_size, int)
      or image_size <= 0):
    raise ValueError(
        f"config.data.image_size={image_size!r} must be a positive integer")
  resize_min = data_config.get("resize_min") or 0
  if isinstance(resize_min, bool) or not isinstance(resize_min, int) or resize_min < 0:
    raise ValueError(
        f"config.data.resize_min={resize_min!r} must be an integer >= 0 (the "
        "short side images are resized to before cropping, at least "
        "image_size; 0: keep each image's size)")
  for key, lowest, meaning in (
      ("num_workers", -1, "decoding processes; 0: threads of the training process; "
       "-1: one per CPU core, at most 16"),
      ("prefetch", 1, "batches each worker keeps ready")):
    value = data_config.get(key, lowest)
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
      raise ValueError(f"config.data.{key}={value!r} must be an integer >= {lowest} "
                       f"({meaning})")
  parse_augment_config(data_config.get("augment"))
