"""The style-transfer objective: what a training step of `jaxstyle.train` minimises.

Perceptual losses (Johnson et al. 2016) of a network's output through the
loss network: content, Gram style (and the local patch style), total
variation, an optional stability term; for a multi-style network each example
has its own condition and is judged against its own style. Pure functions of
parameters, batch and targets, so tests and tools can call them on their own.
"""

from typing import Any

import jax
import jax.numpy as jnp

from jaxstyle import losses
from jaxstyle.models import half_precision

# Input noise (one 8-bit grey level) of the evaluation's stability metric,
# and of training when config.loss has no stability_noise_std.
EVAL_NOISE_STD = 1 / 255


def style_and_content_layers(loss_cfg) -> tuple[dict, dict]:
  return dict(loss_cfg.style_layers), dict(loss_cfg.content_layers)


def local_style_layers(loss_cfg) -> dict:
  """Layers of the local (patch) style loss; none when its weight is 0."""
  if not loss_cfg.get("local_style_weight", 0.0):
    return {}
  return dict(loss_cfg.local_style_layers)


def style_targets(loss_net, style_images, loss_cfg) -> dict[str, Any]:
  """What the style terms compare against, from (1, H, W, 3) style images.

  {'grams': {layer: (1, C, C)}, 'colors': (1, Q, 3) colour quantiles (only
  with a colour term), 'local': patch targets (only with a local loss)}.
  Computed once, or per step / per bank entry for style perturbation.
  """
  style_layers, _ = style_and_content_layers(loss_cfg)
  local_layers = local_style_layers(loss_cfg)
  feats = loss_net.features(style_images, sorted(set(style_layers) | set(local_layers)))
  targets = {"grams": {k: losses.gram_matrix(feats[k]) for k in style_layers}}
  if loss_cfg.get("color_weight", 0.0):
    targets["colors"] = losses.color_quantiles(style_images)
  if local_layers:
    targets["local"] = losses.local_style_targets(
        {k: feats[k] for k in local_layers}, local_layers,
        loss_cfg.local_patch_size, loss_cfg.local_patch_stride)
  return targets


def apply_model(model, params, images, condition=None) -> jax.Array:
  """`model.apply`; a condition (B, K) only for networks with several norm rows."""
  if condition is None:
    return model.apply({"params": params}, images)
  return model.apply({"params": params}, images, condition)


def _stylize(model, params, batch, loss_cfg, noise_key, condition=None):
  """(stylized batch, stability gain or None) as config.loss asks."""
  if not loss_cfg.get("stability_weight", 0.0):
    return apply_model(model, params, batch, condition), None
  return stability_gain(
      model, params, batch, loss_cfg.get("stability_perturbation", "input_noise"),
      loss_cfg.get("stability_noise_std", EVAL_NOISE_STD), noise_key, condition)


def compute_losses(params, batch, targets, loss_net, noise_key=None, *, model,
                   loss_cfg) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Total loss and its terms for a batch of content images in [0, 1].

  With `loss_cfg.stability_weight` > 0 the network also runs on a perturbed
  copy of the batch (`stability_gain`); input noise comes from `noise_key`.
  """
  stylized, gain = _stylize(model, params, batch, loss_cfg, noise_key)
  total, metrics = perceptual_losses(stylized, batch, targets, loss_net, loss_cfg)
  if gain is None:
    return total, metrics
  metrics["stability_loss"] = gain
  metrics["loss"] = total + loss_cfg.stability_weight * gain
  return metrics["loss"], metrics


def training_conditions(key: jax.Array, batch_size: int, num_conditions: int) -> jax.Array:
  """The condition index of each example of a batch: consecutive indices from
  a random start, so every condition gets ⌊B/K⌋ or ⌈B/K⌉ examples per batch
  and each its share over the run; fixed by the step's key (resumes agree)."""
  start = jax.random.randint(jax.random.fold_in(key, 1), (), 0, num_conditions)
  return (start + jnp.arange(batch_size)) % num_conditions


def conditional_losses(params, batch, targets, loss_net, step_key, *, model,
                       loss_cfg) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The loss of a multi-style / strength-controlled network (`model.num_conditions`
  > 1) on a batch in which each example has its own condition
  (`training_conditions`).

  An example of style i is judged against style i's Grams (`targets['grams']`
  stacked (N, C, C)) as in `perceptual_losses`; an identity example (strength
  0) by its content loss and config.loss.identity_weight times its relative
  pixel error to the photo, and no style or TV term. The terms in `metrics`
  are averages over the examples they apply to.
  """
  num_styles, k = model.num_styles, model.num_conditions
  ids = training_conditions(step_key, batch.shape[0], k)
  stylized, gain = _stylize(model, params, batch, loss_cfg, step_key, jax.nn.one_hot(ids, k))
  style_layers, content_layers = style_and_content_layers(loss_cfg)
  feats = loss_net.features(stylized, sorted(set(style_layers) | set(content_layers)))
  content_targets = jax.lax.stop_gradient(loss_net.features(batch, list(content_layers)))
  content = losses.content_loss(feats, content_targets, content_layers, per_example=True)
  style_ids = jnp.minimum(ids, num_styles - 1)
  grams = {name: g[style_ids] for name, g in targets["grams"].items()}
  style_terms = losses.style_loss(feats, grams, style_layers, per_example=True)
  style = sum(style_terms.values())
  tv = losses.total_variation(stylized, per_example=True)
  identity = losses.relative_sq_error(stylized, batch, per_example=True)
  is_style = (ids < num_styles).astype(jnp.float32)
  per_example = (loss_cfg.content_weight * content
                 + is_style * (loss_cfg.style_weight * style + loss_cfg.tv_weight * tv)
                 + (1 - is_style) * loss_cfg.get("identity_weight", 0.0) * identity)
  total = jnp.mean(per_example)

  def mean_over(values, mask):
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)

  metrics = {"content_loss": jnp.mean(content), "style_loss": mean_over(style, is_style),
             "tv_loss": mean_over(tv, is_style)}
  metrics.update({f"style_loss/{n}": mean_over(v, is_style) for n, v in style_terms.items()})
  if model.strength_control:
    metrics["identity_loss"] = mean_over(identity, 1 - is_style)
  if gain is not None:
    metrics["stability_loss"] = gain
    total = total + loss_cfg.stability_weight * gain
  metrics["loss"] = total
  return total, metrics


def stability_gain(model, params, batch, perturbation: str, noise_std: float,
                   noise_key, condition=None) -> tuple[jax.Array, jax.Array]:
  """(stylized batch, squared gain from a perturbation to the output).

  'input_noise': Gaussian noise of `noise_std` on the input (Gupta et al. 2017:
  flicker between video frames). 'fp16': weights, input and every layer's
  output rounded to float16, as a Core ML fp16 package computes; the scale is
  float16's unit roundoff.
  """
  if perturbation == "fp16":
    stylized = apply_model(model, params, batch, condition)
    perturbed = half_precision.apply_fp16(model, params, batch, condition)
    return stylized, losses.output_gain(stylized, perturbed, half_precision.UNIT_ROUNDOFF)
  if noise_key is None:
    raise ValueError("config.loss.stability_perturbation='input_noise' needs a noise key")
  noisy = batch + noise_std * jax.random.normal(noise_key, batch.shape, batch.dtype)
  # One forward pass over both: twice the batch.
  both = None if condition is None else jnp.concatenate([condition, condition])
  stylized, perturbed = jnp.split(
      apply_model(model, params, jnp.concatenate([batch, noisy]), both), 2)
  return stylized, losses.output_gain(stylized, perturbed, noise_std)


def noise_key(seed: int, step) -> jax.Array:
  """The stability-noise key of training step `step`: fixed by seed and step,
  so a resumed run draws the same noise."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 0x57AB), step)


def perceptual_losses(stylized, batch, targets, loss_net, loss_cfg
                      ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Weighted content + style (global, local) + colour + TV loss of `stylized` `batch`.

  `targets` comes from `style_targets`.
  """
  style_layers, content_layers = style_and_content_layers(loss_cfg)
  local_layers = local_style_layers(loss_cfg)
  feats = loss_net.features(
      stylized, sorted(set(style_layers) | set(content_layers) | set(local_layers)))
  # Content targets only need VGG up to the deepest content layer (relu2_2 by
  # default): a third of the VGG cost of the stylized images.
  content_targets = jax.lax.stop_gradient(loss_net.features(batch, list(content_layers)))
  content = losses.content_loss(feats, content_targets, content_layers)
  style_terms = losses.style_loss(feats, targets["grams"], style_layers)
  style = sum(style_terms.values())
  tv = losses.total_variation(stylized)
  total = (loss_cfg.content_weight * content + loss_cfg.style_weight * style
           + loss_cfg.tv_weight * tv)
  metrics = {"content_loss": content, "style_loss": style, "tv_loss": tv}
  metrics.update({f"style_loss/{k}": v for k, v in style_terms.items()})
  if loss_cfg.get("color_weight", 0.0):
    color = losses.color_distribution_loss(stylized, targets["colors"])
    total = total + loss_cfg.color_weight * color
    metrics["color_loss"] = color
  if local_layers:
    local_terms = losses.local_style_loss(feats, targets["local"], local_layers,
                                          loss_cfg.local_patch_size)
    local = sum(local_terms.values())
    total = total + loss_cfg.local_style_weight * local
    metrics["local_style_loss"] = local
    metrics.update({f"local_style_loss/{k}": v for k, v in local_terms.items()})
  metrics["loss"] = total
  return total, metrics
