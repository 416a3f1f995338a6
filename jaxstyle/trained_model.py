"""A training workdir opened for use: config, network, parameters, styles.

The one route from a workdir to something that stylizes, for `jaxstyle
stylize`, the Python `Stylizer` and the exporters: it rebuilds the network
from config.json, restores and checks the checkpoint's parameters, and knows
the styles and controls the network was trained with.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxstyle import checkpointing
from jaxstyle import models
from jaxstyle import style_controls
from jaxstyle.models import conditioning
from jaxstyle.models import cyclegan as cyclegan_nets


def count_params(params: Any) -> int:
  """Number of parameters (array elements) in a pytree."""
  return int(sum(np.prod(np.shape(p)) for p in jax.tree.leaves(params)))


def abstract_params(model) -> Any:
  """The shapes and dtypes of a network's parameters, without computing them."""
  return jax.eval_shape(model.init, jax.random.key(0), *models.init_inputs(model))["params"]


@dataclasses.dataclass
class TrainedModel:
  """`forward(params, images, condition)` maps (B, H, W, 3) in [0, 1] to the
  stylized batch in [0, 1]; `condition` is None or what `condition` returns."""
  workdir: str
  config: ml_collections.ConfigDict
  model: Any
  params: Any
  metadata: dict[str, Any]
  forward: Callable[..., jax.Array]
  style_names: list[str]
  strength_control: bool = False

  @property
  def size_multiple(self) -> int:
    return int(getattr(self.model, "size_multiple", 1))

  @property
  def num_params(self) -> int:
    return count_params(self.params)

  @property
  def step(self) -> int:
    return int(self.metadata.get("step", -1))

  def condition(self, style_weights=None, strength=None) -> np.ndarray | None:
    """The (1, K) norm-row weights for a user's style weights (a spec such as
    'mosaic=0.7,candy=0.3', a mapping or a vector) and strength in [0, 1];
    None for a single-style network at full strength. Bad values raise a
    ValueError naming them."""
    weights = style_controls.parse_style_weights(style_weights, self.style_names)
    strength = style_controls.check_strength(strength, self.strength_control)
    if getattr(self.model, "num_conditions", 1) == 1:
      return None
    return np.asarray(conditioning.condition_vector(
        weights, strength, num_styles=len(self.style_names),
        strength_control=self.strength_control))


def load(workdir: str, step: int | None = None,
         model_config: Callable[[ml_collections.ConfigDict], ml_collections.ConfigDict]
         | None = None) -> TrainedModel:
  """The checkpoint at `step` (default: the latest) of `workdir`.

  `model_config` maps config.model to the network to build (the exporters'
  variant with library depthwise convolutions; same parameters). A CycleGAN
  workdir gives its G_AB (content → painting), mapped from and back to [0, 1].
  """
  config = checkpointing.load_config(workdir)
  if checkpointing.trainer_of(config) == "cyclegan":
    model = models.create_model(config.model)
    params, meta = checkpointing.load_params(workdir, abstract_params(model), step,
                                             where=("generators", "params", "g_ab"))
    forward = lambda p, x, c=None: cyclegan_nets.to_unit(
        model.apply({"params": p}, cyclegan_nets.to_signed(x)))
    return TrainedModel(workdir, config, model, params, dict(meta), forward,
                        style_names=["cyclegan"])
  model = models.create_model(model_config(config.model) if model_config else config.model)
  params, meta = checkpointing.load_params(workdir, abstract_params(model), step)

  def forward(p, x, condition=None):
    if condition is None:
      return model.apply({"params": p}, x)
    return model.apply({"params": p}, x, jnp.asarray(condition, jnp.float32))

  names = [style_controls.style_name(s) for s in style_controls.style_sources(config.style)]
  return TrainedModel(workdir, config, model, params, dict(meta), forward, names,
                      strength_control=bool(getattr(model, "strength_control", False)))
