"""The U-Net: size, cost, shapes, and the config registry."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxstyle import flops
from jaxstyle import models
from configs import default

# Johnson et al.'s TransformerNet (pytorch/examples fast_neural_style).
TRANSFORMER_NET_PARAMS = 1_679_235
TRANSFORMER_NET_MACS_256 = 10.1e9


def _default_model():
  return models.create_model(default.get_config().model)


def _param_count(model, size=256):
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes))


def test_default_model_parameter_count_is_exact_and_small():
  n = _param_count(_default_model())
  assert n == 240_979
  assert n <= TRANSFORMER_NET_PARAMS / 3


def test_default_model_macs_at_256_within_a_tenth_of_transformer_net():
  # Counted on the grouped-convolution form (the CPU 'shifts' form does the
  # same multiply-adds elementwise, invisible to a convolution counter).
  model = _default_model().clone(depthwise_impl="conv")
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 256, 256, 3)))
  macs = flops.count_macs(model.apply, params, jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
  assert macs == 591_462_400
  assert macs <= TRANSFORMER_NET_MACS_256 / 10


def test_mac_counter_matches_hand_count_for_dense_and_depthwise_convs():
  x = jax.ShapeDtypeStruct((2, 16, 16, 8), jnp.float32)
  dense = jax.ShapeDtypeStruct((3, 3, 8, 4), jnp.float32)
  depthwise = jax.ShapeDtypeStruct((3, 3, 1, 8), jnp.float32)
  def conv(x, k):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=x.shape[-1] // k.shape[2])
  assert flops.count_macs(conv, x, dense) == 2 * 16 * 16 * 4 * 9 * 8
  assert flops.count_macs(conv, x, depthwise) == 2 * 16 * 16 * 8 * 9
  # And inside jit (nested jaxprs are walked).
  assert flops.count_macs(jax.jit(conv), x, dense) == 2 * 16 * 16 * 4 * 9 * 8


@pytest.mark.parametrize("hw", [(64, 64), (40, 72)])
def test_unet_output_shape_and_range(hw):
  model = models.create_model(ml_collections.ConfigDict(dict(
      name="unet", features=(8, 16, 32), num_res_blocks=1)))
  assert model.size_multiple == 4
  x = jax.random.uniform(jax.random.key(0), (2, *hw, 3))
  params = model.init(jax.random.key(1), x)
  y = model.apply(params, x)
  assert y.shape == x.shape
  assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_ablation_switches_change_the_network():
  base = dict(name="unet", features=(8, 16, 32), num_res_blocks=1)
  sizes = {}
  for variant in [{}, {"separable": False}, {"skips": False}]:
    model = models.create_model(ml_collections.ConfigDict(dict(base, **variant)))
    sizes[tuple(variant)] = _param_count(model, 32)
  assert sizes[("separable",)] > sizes[()] > sizes[("skips",)]


def test_unknown_model_or_key_is_a_clear_error():
  with pytest.raises(ValueError, match="not one of"):
    models.create_model(ml_collections.ConfigDict(dict(name="resnet")))
  with pytest.raises(ValueError, match="unknown keys.*widht"):
    models.create_model(ml_collections.ConfigDict(dict(name="unet", widht=3)))
