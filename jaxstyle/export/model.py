"""A trained model as the exporters need it: network, parameters, provenance."""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxstyle import checkpointing
from jaxstyle import models
from jaxstyle import style_controls
from jaxstyle import trained_model
from jaxstyle.export.errors import ExportError
from jaxstyle.models import conditioning


@dataclasses.dataclass(frozen=True)
class Controls:
  """One setting of a multi-style / strength-controlled network's extra inputs
  (what verification runs at); `inputs` maps input names to float32 arrays."""
  label: str
  style_weights: np.ndarray | None = None
  strength: float | None = None

  @property
  def inputs(self) -> dict[str, np.ndarray]:
    out = {}
    if self.style_weights is not None:
      out["style_weights"] = np.asarray(self.style_weights, np.float32)
    if self.strength is not None:
      out["strength"] = np.array([self.strength], np.float32)
    return out


@dataclasses.dataclass
class ExportModel:
  """`export_fn` is what gets exported; `reference_fn` is the independent route
  checks compare against (the training-time layers, e.g. shifted multiply-adds
  for depthwise convolutions on CPU instead of the grouped convolution)."""
  name: str
  config: ml_collections.ConfigDict
  params: Any
  step: int
  multiple: int
  export_model: Any
  reference_model: Any
  # What `reference` runs with when it is not `params` (tests build from
  # altered parameters and check that verification notices).
  reference_params: Any = None

  @property
  def styles(self) -> list[str]:
    if "style" not in self.config:
      return []
    return [style_controls.style_name(s)
            for s in style_controls.style_sources(self.config.style)]

  @property
  def strength_control(self) -> bool:
    return bool(getattr(self.export_model, "strength_control", False))

  @property
  def conditional(self) -> bool:
    """Several instance-norm rows: the graph takes `style_weights` [N] (and
    `strength` [1] with strength control) besides `image`."""
    return getattr(self.export_model, "num_conditions", 1) > 1

  def extra_inputs(self) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the graph's inputs after `image`."""
    if not self.conditional:
      return []
    return [("style_weights", (self.export_model.num_styles,))] + (
        [("strength", (1,))] if self.strength_control else [])

  def control_settings(self) -> list[Controls]:
    """What a conditional export is verified at: every style alone, an equal
    blend of all, and half strength of the first; one plain setting otherwise."""
    if not self.conditional:
      return [Controls("")]
    n = self.export_model.num_styles
    full = 1.0 if self.strength_control else None
    settings = [Controls(name, np.eye(n, dtype=np.float32)[i], full)
                for i, name in enumerate(self.styles)]
    if n > 1:
      settings.append(Controls("blend", np.full(n, 1 / n, np.float32), full))
    if self.strength_control:
      settings.append(Controls(f"{self.styles[0]}@0.5", np.eye(n, dtype=np.float32)[0], 0.5))
    return settings

  def _condition(self, *controls):
    if not self.conditional:
      return ()
    weights, strength = (controls + (None,))[:2]
    return (conditioning.condition_vector(
        weights, strength, num_styles=self.export_model.num_styles,
        strength_control=self.strength_control),)

  def export_fn(self, params=None) -> Callable[..., jax.Array]:
    """(image, *extra inputs) → stylized, the function the exporters trace."""
    params = self.params if params is None else params
    return lambda x, *controls: self.export_model.apply({"params": params}, x,
                                                         *self._condition(*controls))

  def reference(self, images: np.ndarray, controls: Controls | None = None) -> np.ndarray:
    """NHWC float images in [0, 1] → stylized, by JAX (jit, fp32)."""
    if not hasattr(self, "_ref"):
      self._ref = jax.jit(lambda p, x, *c: self.reference_model.apply(
          {"params": p}, x, *self._condition(*c)))
    params = self.params if self.reference_params is None else self.reference_params
    inputs = (controls or Controls("")).inputs
    extra = [jnp.asarray(inputs[name]) for name, _ in self.extra_inputs()]
    return np.asarray(self._ref(params, jnp.asarray(images, jnp.float32), *extra))

  @property
  def num_params(self) -> int:
    return trained_model.count_params(self.params)

  def metadata(self) -> dict[str, str]:
    """What goes into every artifact: style(s), step, config (JSON)."""
    style = self.config.get("style", {}).get("image", "") if "style" in self.config else ""
    meta = {"model": self.name, "style": str(style), "training_step": str(self.step),
            "size_multiple": str(self.multiple), "params": str(self.num_params),
            "config": self.config.to_json_best_effort()}
    if self.conditional:
      meta.update(styles=",".join(self.styles), style="+".join(self.styles),
                  strength_control=str(self.strength_control).lower())
    return meta


def _export_variant(model_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The same network with library convolutions for depthwise layers, which
  every exporter lowers to one op (the shifted form would be k² slices)."""
  cfg = ml_collections.ConfigDict(model_config.to_dict())
  cls = models.MODELS.get(cfg.get("name"))
  if cls is not None and "depthwise_impl" in {f.name for f in dataclasses.fields(cls)}:
    cfg.depthwise_impl = "conv"
  return cfg


def load(workdir: str, step: int | None = None) -> ExportModel:
  config = checkpointing.load_config(workdir)
  if checkpointing.trainer_of(config) != "style_transfer":
    raise ExportError(
        f"{workdir} is a {config.trainer} run; export supports the style-transfer "
        "networks (unet, transformer_net). Use `jaxstyle.stylize` for this model.")
  trained = trained_model.load(workdir, step, model_config=_export_variant)
  params = jax.tree.map(lambda a: np.asarray(a, np.float32), trained.params)
  return ExportModel(name=str(config.model.name), config=config, params=params,
                     step=int(trained.metadata.get("step", step or -1)),
                     multiple=trained.size_multiple, export_model=trained.model,
                     reference_model=models.create_model(config.model))


def from_params(model_config: dict, params: Any, step: int = 0,
                config: ml_collections.ConfigDict | None = None) -> ExportModel:
  """For tests and benchmarks: any parameters for a model config (no workdir)."""
  model_config = ml_collections.ConfigDict(model_config)
  config = config or ml_collections.ConfigDict({"model": model_config})
  export_model = models.create_model(_export_variant(model_config))
  return ExportModel(name=str(model_config.name), config=config,
                     params=jax.tree.map(lambda a: np.asarray(a, np.float32), params),
                     step=step, multiple=int(getattr(export_model, "size_multiple", 1)),
                     export_model=export_model,
                     reference_model=models.create_model(model_config))
