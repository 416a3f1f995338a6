"""Style perturbation (paper §3.3): random variations of the style image.

Matching the Gram statistics of one exact picture over-fits its particular
crop and colours; matching a slightly different crop/colour variant each step
teaches the style instead. `config.style.perturb.mode` picks how:

* 'none': the unperturbed targets, computed once.
* 'bank': `bank_size` perturbed copies' targets computed once at start
  (`make_bank`), one drawn per step: a gather, no VGG work per step.
* 'per_step': a fresh perturbed copy and its VGG targets inside every step.

Everything is generic over `target_fn(loss_net, style_batch) -> pytree` (Gram
matrices today, patch targets later) and jittable. Each step's draw depends
only on (seed, step) through `step_key`, so a resumed run draws what an
uninterrupted one would.
"""

import dataclasses
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from jaxstyle import data_config

MODES = ("none", "per_step", "bank")
_KEY = "config.style.perturb"

# Salts for independent draws; never change them (resume).
_SALT_CROP, _SALT_FLIP, _SALT_BRIGHTNESS, _SALT_CONTRAST = 1, 2, 3, 4
_SALT_SATURATION, _SALT_HUE, _SALT_NOISE, _SALT_BANK_INDEX = 5, 6, 7, 8
_ROOT_STEP, _ROOT_BANK = 0x5354, 0x424B

# Rec. 601 luma, as in YIQ/YUV.
_LUMA = (0.299, 0.587, 0.114)

TargetFn = Callable[[Any, jax.Array], Any]


@dataclasses.dataclass(frozen=True)
class PerturbConfig:
  """Parsed `config.style.perturb`; the defaults are 'off'. Hashable (static)."""
  mode: str = "none"
  bank_size: int = 16
  crop_scale: tuple[float, float] = (1.0, 1.0)
  hflip: bool = False
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  noise_std: float = 0.0


_FIELDS = tuple(f.name for f in dataclasses.fields(PerturbConfig))
# Upper bounds keep every factor 1 ± amount >= 0 and hue within half a turn.
_AMOUNT_MAX = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0,
               "hue": 0.5, "noise_std": math.inf}


def validate_perturb_config(cfg: Mapping[str, Any] | PerturbConfig | None
                            ) -> PerturbConfig:
  """Checks `config.style.perturb` and returns it parsed.

  Missing (older configs) → mode 'none'; missing keys → that perturbation off.

  Raises:
    ValueError: naming the offending `config.style.perturb.<key>`.
  """
  if isinstance(cfg, PerturbConfig):
    return cfg
  if cfg is None:
    return PerturbConfig()
  cfg = dict(cfg)
  unknown = sorted(set(cfg) - set(_FIELDS))
  if unknown:
    raise ValueError(f"{_KEY}.{unknown[0]}: unknown key; valid keys are {list(_FIELDS)}")
  out = {}
  mode = cfg.get("mode", "none")
  if mode not in MODES:
    raise ValueError(f"{_KEY}.mode={mode!r} must be one of {MODES}")
  out["mode"] = mode
  if "bank_size" in cfg:
    n = cfg["bank_size"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
      raise ValueError(f"{_KEY}.bank_size={n!r} must be an integer >= 1")
    out["bank_size"] = n
  if "crop_scale" in cfg:
    out["crop_scale"] = data_config.parse_crop_scale(
        cfg["crop_scale"], _KEY, "the style image")
  if "hflip" in cfg:
    if not isinstance(cfg["hflip"], bool):
      raise ValueError(f"{_KEY}.hflip={cfg['hflip']!r} must be True or False")
    out["hflip"] = cfg["hflip"]
  for key, top in _AMOUNT_MAX.items():
    if key in cfg:
      value = cfg[key]
      if (isinstance(value, bool) or not isinstance(value, (int, float))
          or not 0.0 <= value <= top):
        raise ValueError(f"{_KEY}.{key}={value!r} must be a number in [0, {top:g}]")
      out[key] = float(value)
  return PerturbConfig(**out)


# ----------------------------------------------------------------------------
# Single perturbations with explicit parameters (each the identity at its
# neutral value), on (H, W, 3) images in [0, 1].


def crop_and_resize(image: jax.Array, area, offset) -> jax.Array:
  """The crop of `area` fraction (same aspect ratio) at `offset` ∈ [0, 1]²
  of the free range, bilinearly resized back to the image's shape."""
  h, w = image.shape[:2]
  side = jnp.sqrt(area)
  start = jnp.asarray(offset, jnp.float32) * (1.0 - side) * jnp.array([h, w], jnp.float32)
  # Output coordinate x reads input (x - translation) / scale = side * x + start.
  scale = jnp.full((2,), 1.0, jnp.float32) / side
  return jax.image.scale_and_translate(
      image, image.shape, (0, 1), scale, -start * scale, method="linear",
      antialias=False)


def adjust_brightness(image: jax.Array, delta) -> jax.Array:
  return image + delta


def adjust_contrast(image: jax.Array, factor) -> jax.Array:
  """Scales deviations from each channel's mean (as `tf.image.adjust_contrast`)."""
  mean = jnp.mean(image, axis=(0, 1), keepdims=True)
  return mean + factor * (image - mean)


def adjust_saturation(image: jax.Array, factor) -> jax.Array:
  """Scales the chroma around the luma: Y kept, I and Q of YIQ times `factor`."""
  luma = image @ jnp.array(_LUMA, image.dtype)
  return luma[..., None] + factor * (image - luma[..., None])


def rgb_to_hsv(rgb: jax.Array) -> jax.Array:
  """`colorsys.rgb_to_hsv` on the last axis, all components in [0, 1]."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  maxc, minc = jnp.max(rgb, axis=-1), jnp.min(rgb, axis=-1)
  delta = maxc - minc
  s = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.0), 0.0)
  safe = jnp.where(delta > 0, delta, 1.0)
  rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
  h = jnp.where(r == maxc, bc - gc, jnp.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
  h = jnp.where(delta > 0, jnp.mod(h / 6.0, 1.0), 0.0)
  return jnp.stack([h, s, maxc], axis=-1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
  """Inverse of `rgb_to_hsv` (branch-free form of `colorsys.hsv_to_rgb`)."""
  h, s, v = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
  k = jnp.mod(jnp.array([5.0, 3.0, 1.0], hsv.dtype) + 6.0 * h, 6.0)
  return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def adjust_hue(image: jax.Array, delta) -> jax.Array:
  """Rotates the HSV hue by `delta` turns (as `tf.image.adjust_hue`)."""
  hsv = rgb_to_hsv(image)
  hsv = hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + delta, 1.0))
  return hsv_to_rgb(hsv)


# ----------------------------------------------------------------------------
# The random perturbation.


def perturb_style_image(image: jax.Array, key: jax.Array,
                        perturb_cfg: Mapping[str, Any] | PerturbConfig) -> jax.Array:
  """A random variant of an (H, W, 3) image in [0, 1]; same shape, jittable.

  Crop (area ~ U(crop_scale), resized back), hflip (p = 1/2), brightness
  (+U(±b)), contrast (×U(1 ± c) around the channel means), saturation
  (×U(1 ± s) around the luma), hue (+U(±h) turns), Gaussian noise; clipped to
  [0, 1] after each colour change. Each draw comes from `key` folded with its
  own salt; ops whose amount is 0 are skipped, so all-zero is the identity.
  """
  cfg = validate_perturb_config(perturb_cfg)
  image = jnp.asarray(image, jnp.float32)
  sub = lambda salt: jax.random.fold_in(key, salt)
  uniform = lambda salt, amount, shape=(): jax.random.uniform(
      sub(salt), shape, minval=-amount, maxval=amount)

  lo, hi = cfg.crop_scale
  if (lo, hi) != (1.0, 1.0):
    k_area, k_offset = jax.random.split(sub(_SALT_CROP))
    area = jax.random.uniform(k_area, (), minval=lo, maxval=hi)
    image = crop_and_resize(image, area, jax.random.uniform(k_offset, (2,)))
  if cfg.hflip:
    flip = jax.random.bernoulli(sub(_SALT_FLIP))
    image = jnp.where(flip, image[:, ::-1], image)
  if cfg.brightness:
    image = jnp.clip(adjust_brightness(image, uniform(_SALT_BRIGHTNESS, cfg.brightness)), 0, 1)
  if cfg.contrast:
    factor = 1.0 + uniform(_SALT_CONTRAST, cfg.contrast)
    image = jnp.clip(adjust_contrast(image, factor), 0, 1)
  if cfg.saturation:
    factor = 1.0 + uniform(_SALT_SATURATION, cfg.saturation)
    image = jnp.clip(adjust_saturation(image, factor), 0, 1)
  if cfg.hue:
    image = jnp.clip(adjust_hue(image, uniform(_SALT_HUE, cfg.hue)), 0, 1)
  if cfg.noise_std:
    noise = cfg.noise_std * jax.random.normal(sub(_SALT_NOISE), image.shape)
    image = jnp.clip(image + noise, 0, 1)
  return image


# ----------------------------------------------------------------------------
# Targets.


def step_key(seed: int, step) -> jax.Array:
  """The perturbation key of training step `step` (may be traced)."""
  root = jax.random.fold_in(jax.random.key(seed), _ROOT_STEP)
  return jax.random.fold_in(root, step)


def bank_key(seed: int) -> jax.Array:
  """The key `make_bank` draws its entries from (distinct from step keys)."""
  return jax.random.fold_in(jax.random.key(seed), _ROOT_BANK)


def make_bank(target_fn: TargetFn, loss_net, style_image, key: jax.Array,
              perturb_cfg: Mapping[str, Any] | PerturbConfig,
              bank_size: int | None = None, *, chunk_size: int = 4):
  """Targets of `bank_size` perturbed copies, stacked on a new leading axis.

  Entry i is `target_fn(loss_net, perturb_style_image(style, fold_in(key, i))[None])`.
  One jitted program; `chunk_size` copies go through the loss network at a
  time (`lax.map`), so memory does not grow with the bank.
  """
  cfg = validate_perturb_config(perturb_cfg)
  bank_size = cfg.bank_size if bank_size is None else bank_size
  if bank_size < 1:
    raise ValueError(f"{_KEY}.bank_size={bank_size} must be >= 1")

  @jax.jit
  def build(net, style, key):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(bank_size))
    one = lambda k: target_fn(net, perturb_style_image(style, k, cfg)[None])
    return jax.lax.map(one, keys, batch_size=min(chunk_size, bank_size))

  return build(loss_net, jnp.asarray(style_image, jnp.float32), key)


def precompute_targets(target_fn: TargetFn, loss_net, style_image,
                       perturb_cfg: Mapping[str, Any] | PerturbConfig | None,
                       seed: int):
  """What `targets_for_step` takes as `precomputed`, computed once at start.

  'none': `target_fn(loss_net, style[None])`; 'bank': `make_bank(...)` with
  `bank_key(seed)`; 'per_step': None.
  """
  cfg = validate_perturb_config(perturb_cfg)
  style = jnp.asarray(style_image, jnp.float32)
  if cfg.mode == "none":
    return jax.jit(target_fn)(loss_net, style[None])
  if cfg.mode == "bank":
    return make_bank(target_fn, loss_net, style, bank_key(seed), cfg)
  return None


def targets_for_step(key: jax.Array,
                     perturb_cfg: Mapping[str, Any] | PerturbConfig | None, *,
                     target_fn: TargetFn, loss_net, style_image, precomputed):
  """The style targets of one step; call inside the jitted train step.

  Args:
    key: `step_key(seed, step)`.
    perturb_cfg: `config.style.perturb` (static: close over it).
    target_fn: `target_fn(loss_net, style_batch) -> pytree`.
    loss_net: the loss network (pass as a jit argument).
    style_image: (H, W, 3) in [0, 1]; only read in 'per_step' mode.
    precomputed: `precompute_targets(...)`: targets ('none') or bank ('bank').

  Returns:
    A pytree shaped like `target_fn(loss_net, style_image[None])`.
  """
  cfg = validate_perturb_config(perturb_cfg)
  if cfg.mode != "per_step" and not jax.tree.leaves(precomputed):
    raise ValueError(f"{_KEY}.mode={cfg.mode!r} needs `precomputed` from "
                     "precompute_targets() with the same config")
  if cfg.mode == "none":
    return precomputed
  if cfg.mode == "bank":
    n = jax.tree.leaves(precomputed)[0].shape[0]
    index = jax.random.randint(jax.random.fold_in(key, _SALT_BANK_INDEX), (), 0, n)
    return jax.tree.map(lambda b: b[index], precomputed)
  perturbed = perturb_style_image(style_image, key, cfg)
  return jax.lax.stop_gradient(target_fn(loss_net, perturbed[None]))
