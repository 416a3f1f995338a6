"""The U-Net and TransformerNet: size, cost, shapes, and the config registry."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

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
  assert n == 242_275
  assert n <= TRANSFORMER_NET_PARAMS / 3


def test_default_model_macs_at_256_within_a_tenth_of_transformer_net():
  # Counted on the grouped-convolution form (the CPU 'shifts' form does the
  # same multiply-adds elementwise, invisible to a convolution counter).
  model = _default_model().clone(depthwise_impl="conv")
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 256, 256, 3)))
  macs = flops.count_macs(model.apply, params, jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
  assert macs == 165_275_776
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


# ----------------------------------------------------------------------------
# U-Net ablation switches.


def _unet_param_count(features, num_res_blocks, separable, skips, patch_size=1,
                      first_skip_level=0):
  """From the layer shapes in unet.py's docstring, independently of Flax."""
  def conv_norm(c_in, c_out):  # no conv bias (the norm removes it); IN scale + shift
    conv = 9 * c_in + c_in * c_out if separable else 9 * c_in * c_out
    return conv + 2 * c_out
  f = features
  pixels = 3 * patch_size ** 2                    # channels of a space-to-depth patch
  n = 9 * pixels * f[0] + 2 * f[0]                 # stem conv + norm
  for level in range(1, len(f)):
    n += conv_norm(f[level - 1], f[level]) + conv_norm(f[level], f[level])
  n += num_res_blocks * 2 * conv_norm(f[-1], f[-1])
  for level in range(len(f) - 1, 0, -1):
    width = f[level - 1]
    skip = skips and level - 1 >= first_skip_level
    n += conv_norm(f[level], width) + conv_norm(2 * width if skip else width, width)
  return n + 9 * f[0] * 3 + 3                     # head conv with bias (at the pixels)


@pytest.mark.parametrize("variant", [
    dict(features=(16, 32, 64, 128), num_res_blocks=5),  # configs/fullres.py: 240,979
    dict(features=(16, 32, 64, 128), num_res_blocks=5, patch_size=2,
         conv_before_upsample=True),  # the default: 242,275
    dict(features=(8, 16, 32), num_res_blocks=1, patch_size=2),
    dict(features=(8, 16, 32), num_res_blocks=1, conv_before_upsample=True),
    dict(features=(8, 16, 32), num_res_blocks=2, separable=False),
    dict(features=(8, 16, 32), num_res_blocks=2, skips=False),
    dict(features=(8, 16, 32), num_res_blocks=1, separable=False, skips=False),
    dict(features=(8, 16, 32), num_res_blocks=1, patch_size=2, first_skip_level=1),
    dict(features=(8, 16, 32, 64), num_res_blocks=1, first_skip_level=2),
])
def test_unet_variants_build_run_and_have_the_expected_size(variant):
  model = models.create_model(ml_collections.ConfigDict(dict(name="unet", **variant)))
  want = _unet_param_count(variant["features"], variant["num_res_blocks"],
                           variant.get("separable", True), variant.get("skips", True),
                           variant.get("patch_size", 1), variant.get("first_skip_level", 0))
  assert _param_count(model, 32) == want
  if variant["features"] == (16, 32, 64, 128):
    assert want == (242_275 if variant.get("patch_size") == 2 else 240_979)
    return
  x = jax.random.uniform(jax.random.key(0), (2, 8 * model.size_multiple, 40, 3))
  y = model.apply(model.init(jax.random.key(1), x), x)
  assert y.shape == x.shape
  assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0 and float(y.std()) > 0


# ----------------------------------------------------------------------------
# TransformerNet against the pytorch/examples fast_neural_style code.


class _TorchConv(torch.nn.Module):
  def __init__(self, c_in, c_out, k, stride=1, upsample=None):
    super().__init__()
    self.upsample = upsample
    self.pad = torch.nn.ReflectionPad2d(k // 2)
    self.conv2d = torch.nn.Conv2d(c_in, c_out, k, stride)

  def forward(self, x):
    if self.upsample:
      x = torch.nn.functional.interpolate(x, mode="nearest", scale_factor=self.upsample)
    return self.conv2d(self.pad(x))


class _TorchResidual(torch.nn.Module):
  def __init__(self, c):
    super().__init__()
    self.conv1, self.in1 = _TorchConv(c, c, 3), torch.nn.InstanceNorm2d(c, affine=True)
    self.conv2, self.in2 = _TorchConv(c, c, 3), torch.nn.InstanceNorm2d(c, affine=True)

  def forward(self, x):
    return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))


class _TorchTransformerNet(torch.nn.Module):
  """pytorch/examples fast_neural_style/neural_style/transformer_net.py."""

  def __init__(self):
    super().__init__()
    norm = lambda c: torch.nn.InstanceNorm2d(c, affine=True)
    self.conv1, self.in1 = _TorchConv(3, 32, 9), norm(32)
    self.conv2, self.in2 = _TorchConv(32, 64, 3, 2), norm(64)
    self.conv3, self.in3 = _TorchConv(64, 128, 3, 2), norm(128)
    self.res = torch.nn.ModuleList([_TorchResidual(128) for _ in range(5)])
    self.deconv1, self.in4 = _TorchConv(128, 64, 3, upsample=2), norm(64)
    self.deconv2, self.in5 = _TorchConv(64, 32, 3, upsample=2), norm(32)
    self.deconv3 = _TorchConv(32, 3, 9)

  def forward(self, x):
    y = torch.relu(self.in1(self.conv1(x)))
    y = torch.relu(self.in2(self.conv2(y)))
    y = torch.relu(self.in3(self.conv3(y)))
    for block in self.res:
      y = block(y)
    y = torch.relu(self.in4(self.deconv1(y)))
    y = torch.relu(self.in5(self.deconv2(y)))
    return self.deconv3(y)


def _flax_params_from_torch(net):
  """The PyTorch weights in TransformerNet's parameter tree (OIHW → HWIO)."""
  def conv_norm(conv, norm):
    out = {"conv": {"conv": {
        "kernel": conv.conv2d.weight.detach().numpy().transpose(2, 3, 1, 0),
        "bias": conv.conv2d.bias.detach().numpy()}}}
    if norm is not None:
      out["norm"] = {"scale": norm.weight.detach().numpy(), "bias": norm.bias.detach().numpy()}
    return out
  params = {"in_conv": conv_norm(net.conv1, net.in1), "down1": conv_norm(net.conv2, net.in2),
            "down2": conv_norm(net.conv3, net.in3), "up2": conv_norm(net.deconv1, net.in4),
            "up1": conv_norm(net.deconv2, net.in5),
            "out_conv": conv_norm(net.deconv3, None)["conv"]}
  for i, block in enumerate(net.res):
    params[f"res{i}"] = {"conv1": conv_norm(block.conv1, block.in1),
                         "conv2": conv_norm(block.conv2, block.in2)}
  return params


def test_transformer_net_equals_the_pytorch_example():
  torch.manual_seed(0)
  net = _TorchTransformerNet().double()
  with torch.no_grad():  # non-trivial norm affines, so a swapped scale/shift shows
    for module in net.modules():
      if isinstance(module, torch.nn.InstanceNorm2d):
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.5, 0.5)
  torch_count = sum(p.numel() for p in net.parameters())
  assert torch_count == TRANSFORMER_NET_PARAMS

  model = models.create_model(ml_collections.ConfigDict(dict(name="transformer_net")))
  assert model.size_multiple == 4
  x = np.random.default_rng(0).uniform(size=(2, 40, 56, 3))
  init_params = model.init(jax.random.key(0), jnp.asarray(x, jnp.float32))["params"]
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), _flax_params_from_torch(net))
  # Same tree, same shapes: the parameter count is the PyTorch example's.
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, init_params)
  assert _param_count(model) == TRANSFORMER_NET_PARAMS

  with torch.no_grad():
    want = torch.sigmoid(net(torch.from_numpy(x.transpose(0, 3, 1, 2)))).numpy()
  got = model.apply({"params": params}, jnp.asarray(x, jnp.float32))
  assert got.shape == x.shape
  # float32 through 17 convolutions vs a float64 PyTorch reference.
  np.testing.assert_allclose(np.asarray(got), want.transpose(0, 2, 3, 1), atol=2e-5)
  assert float(got.min()) >= 0.0 and float(got.max()) <= 1.0 and float(got.std()) > 0.01


def test_transformer_net_macs_at_256():
  model = models.create_model(ml_collections.ConfigDict(dict(name="transformer_net")))
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 256, 256, 3)))
  macs = flops.count_macs(model.apply, params,
                          jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
  # out_h · out_w · k² · c_in · c_out per convolution.
  want = (256 ** 2 * 81 * 3 * 32 + 128 ** 2 * 9 * 32 * 64 + 64 ** 2 * 9 * 64 * 128
          + 10 * 64 ** 2 * 9 * 128 * 128
          + 128 ** 2 * 9 * 128 * 64 + 256 ** 2 * 9 * 64 * 32 + 256 ** 2 * 81 * 32 * 3)
  assert macs == want == 10_078_912_512
  assert abs(macs - TRANSFORMER_NET_MACS_256) / TRANSFORMER_NET_MACS_256 < 0.01


def test_create_model_builds_transformer_net_and_names_foreign_keys():
  model = models.create_model(ml_collections.ConfigDict(dict(
      name="transformer_net", features=[8, 16, 32, 64], num_res_blocks=1)))
  assert model.features == (8, 16, 32, 64) and model.num_res_blocks == 1
  assert model.size_multiple == 8
  x = jax.random.uniform(jax.random.key(0), (1, 24, 16, 3))
  y = model.apply(model.init(jax.random.key(1), x), x)
  assert y.shape == x.shape
  # The U-Net's switches mean nothing to TransformerNet: a config that only
  # changed model.name must fail naming them.
  unet_keys = dict(default.get_config().model)
  with pytest.raises(ValueError, match=r"unknown keys \['conv_before_upsample', "
                     r"'depthwise_impl', 'first_skip_level', 'head_blur', 'num_styles', 'patch_size', "
                     r"'photo_skip', "
                     r"'separable', 'skips', 'strength_control'\] "
                     r"for model "
                     r"'transformer_net'"):
    models.create_model(ml_collections.ConfigDict(dict(unet_keys, name="transformer_net")))
