"""A trained model as the exporters need it: network, parameters, provenance."""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxstyle import checkpointing
from jaxstyle import models
from jaxstyle.export.errors import ExportError


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

  def export_fn(self, params=None) -> Callable[[jax.Array], jax.Array]:
    params = self.params if params is None else params
    return lambda x: self.export_model.apply({"params": params}, x)

  def reference(self, images: np.ndarray) -> np.ndarray:
    """NHWC float images in [0, 1] → stylized, by JAX (jit, fp32)."""
    if not hasattr(self, "_ref"):
      self._ref = jax.jit(lambda p, x: self.reference_model.apply({"params": p}, x))
    params = self.params if self.reference_params is None else self.reference_params
    return np.asarray(self._ref(params, jnp.asarray(images, jnp.float32)))

  @property
  def num_params(self) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(self.params))

  def metadata(self) -> dict[str, str]:
    """What goes into every artifact: style, step, config (JSON)."""
    style = self.config.get("style", {}).get("image", "") if "style" in self.config else ""
    return {"model": self.name, "style": str(style), "training_step": str(self.step),
            "size_multiple": str(self.multiple), "params": str(self.num_params),
            "config": self.config.to_json_best_effort()}


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
  reference_model = models.create_model(config.model)
  export_model = models.create_model(_export_variant(config.model))
  multiple = int(getattr(export_model, "size_multiple", 1))
  size = max(64, multiple)
  abstract = jax.eval_shape(export_model.init, jax.random.key(0),
                            jnp.zeros((1, size, size, 3)))
  params, meta = checkpointing.load_params(workdir, abstract["params"], step)
  params = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
  return ExportModel(name=str(config.model.name), config=config, params=params,
                     step=int(meta.get("step", step or -1)), multiple=multiple,
                     export_model=export_model, reference_model=reference_model)


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
