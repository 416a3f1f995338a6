"""Model registry: `config.model.name` picks the class, the rest are its fields."""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from jaxstyle.models.cyclegan import ResnetGenerator
from jaxstyle.models.transformer_net import TransformerNet
from jaxstyle.models.unet import UNet

MODELS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "transformer_net": TransformerNet,
    # CycleGAN's generator: images in [-1, 1], trained by jaxstyle.cyclegan.
    "cyclegan_resnet": ResnetGenerator,
}


def create_model(model_config: ml_collections.ConfigDict) -> nn.Module:
  """Builds the network named by `model_config.name` from the other fields."""
  kwargs = dict(model_config)
  name = kwargs.pop("name")
  if name not in MODELS:
    raise ValueError(f"config.model.name={name!r} is not one of {sorted(MODELS)}")
  cls = MODELS[name]
  known = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(kwargs) - known)
  if unknown:
    raise ValueError(f"config.model has unknown keys {unknown} for model {name!r}; "
                     f"known: {sorted(known)}")
  if "features" in kwargs:
    kwargs["features"] = tuple(kwargs["features"])
  return cls(**kwargs)


def init_inputs(model: nn.Module, size: int = 64) -> tuple:
  """What `model.init(rng, *inputs)` takes: a zero image batch, and a zero
  condition for a network with several instance-norm rows (multi-style)."""
  size = max(size, getattr(model, "size_multiple", 1))
  images = jnp.zeros((1, size, size, 3))
  k = getattr(model, "num_conditions", 1)
  return (images,) if k == 1 else (images, jnp.zeros((1, k)))
