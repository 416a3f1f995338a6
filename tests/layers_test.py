"""Layers against independent references: numpy/float64 and plain convolutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.models import layers


def test_space_to_depth_and_back_match_explicit_loops():
  x = np.random.default_rng(0).normal(size=(2, 6, 4, 3)).astype(np.float32)
  block = 2
  want = np.zeros((2, 3, 2, 12), np.float32)
  for i in range(block):        # pixel (i, j) of each block → channel (i·b + j)·C + c
    for j in range(block):
      for c in range(3):
        want[..., (i * block + j) * 3 + c] = x[:, i::block, j::block, c]
  got = np.asarray(layers.space_to_depth(jnp.asarray(x), block))
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(np.asarray(layers.depth_to_space(jnp.asarray(want), block)), x)


@pytest.mark.parametrize("factor", [2, 3])
def test_upsample_conv_equals_nearest_upsampling_then_conv(factor):
  """The low-resolution, per-phase form is the two-step form, same parameters."""
  x = jax.random.normal(jax.random.key(0), (2, 5, 7, 4))
  module = layers.UpsampleConv(3, factor)
  params = module.init(jax.random.key(1), x)
  params = jax.tree.map(lambda a: a + jax.random.normal(jax.random.key(2), a.shape), params)
  got = module.apply(params, x)
  want = layers.Conv(3, 3).apply(params, layers.upsample_nearest(x, factor))
  assert got.shape == (2, 5 * factor, 7 * factor, 3)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("factor", [2, 3])
def test_blurred_upsample_conv_equals_upsampling_conv_then_binomial_blur(factor):
  """blur=True: nearest ×f of the edge-padded map, 3×3 conv, [1,2,1]/4 blur
  along H and W (all VALID), in float64 numpy, same parameters."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 7, 4))
  module = layers.UpsampleConv(3, factor, blur=True)
  params = module.init(jax.random.key(1), jnp.asarray(x, jnp.float32))
  kernel = rng.normal(size=(3, 3, 4, 3))
  bias = rng.normal(size=3)
  params = {"params": {"conv": {"kernel": jnp.asarray(kernel, jnp.float32),
                                "bias": jnp.asarray(bias, jnp.float32)}}}
  got = np.asarray(module.apply(params, jnp.asarray(x, jnp.float32)))

  up = np.repeat(np.repeat(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge"),
                           factor, axis=1), factor, axis=2)
  up = up[:, factor - 2:up.shape[1] - factor + 2, factor - 2:up.shape[2] - factor + 2]
  h, w = x.shape[1] * factor + 2, x.shape[2] * factor + 2
  conv = sum(np.einsum("bhwi,io->bhwo", up[:, a:a + h, c:c + w], kernel[a, c])
             for a in range(3) for c in range(3)) + bias
  b = np.array([1, 2, 1]) / 4
  rows = sum(b[a] * conv[:, a:a + h - 2] for a in range(3))
  want = sum(b[c] * rows[:, :, c:c + w - 2] for c in range(3))
  assert got.shape == want.shape == (2, 5 * factor, 7 * factor, 3)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


def test_instance_norm_matches_numpy_float64():
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 5.0, size=(2, 9, 7, 4)).astype(np.float32)
  module = layers.InstanceNorm(epsilon=1e-5)
  params = module.init(jax.random.key(0), x)
  scale = rng.normal(size=4).astype(np.float32)
  bias = rng.normal(size=4).astype(np.float32)
  params = {"params": {"scale": scale, "bias": bias}}
  got = np.asarray(module.apply(params, x))
  x64 = x.astype(np.float64)
  mean = x64.mean(axis=(1, 2), keepdims=True)
  var = x64.var(axis=(1, 2), keepdims=True)
  want = (x64 - mean) / np.sqrt(var + 1e-5) * scale + bias
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def test_instance_norm_finite_in_float16_on_large_images():
  # A sum over 1024² pixels of values ~10 overflows float16 (max 65504);
  # the mean-based form must not.
  x = jnp.full((1, 1024, 1024, 2), 10.0, jnp.float16) + jnp.linspace(
      0, 1, 1024, dtype=jnp.float16)[None, :, None, None]
  module = layers.InstanceNorm()
  params = jax.tree.map(lambda p: p.astype(jnp.float16),
                        module.init(jax.random.key(0), x))
  y = module.apply(params, x)
  assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("strides", [1, 2])
def test_separable_conv_equals_plain_conv_with_equivalent_weights(strides):
  """depthwise k×k then pointwise 1×1 == one dense conv with W[h,w,i,o] = D[h,w,i]·P[i,o]."""
  rng = np.random.default_rng(1)
  c_in, c_out, k = 5, 7, 3
  x = rng.normal(size=(2, 10, 12, c_in)).astype(np.float32)
  sep = layers.SeparableConv(c_out, k, strides)
  params = sep.init(jax.random.key(0), x)["params"]
  depthwise = np.asarray(params["depthwise"]["kernel"])   # (k, k, 1, c_in)
  pointwise = np.asarray(params["pointwise"]["kernel"])   # (c_in, c_out)
  bias = np.asarray(params["pointwise"]["bias"])
  dense_kernel = depthwise[:, :, 0, :, None] * pointwise[None, None]
  plain = layers.Conv(c_out, k, strides)
  plain_params = {"params": {"conv": {"kernel": dense_kernel, "bias": bias}}}
  got = sep.apply({"params": params}, x)
  want = plain.apply(plain_params, x)
  assert got.shape == want.shape == (2, 10 // strides, 12 // strides, c_out)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_conv_reflect_padding_matches_numpy():
  """A 3×3 conv with reflect padding against an explicit float64 loop."""
  rng = np.random.default_rng(2)
  x = rng.normal(size=(1, 6, 5, 2)).astype(np.float32)
  conv = layers.Conv(3, 3)
  params = conv.init(jax.random.key(1), x)
  kernel = np.asarray(params["params"]["conv"]["kernel"], np.float64)
  bias = np.asarray(params["params"]["conv"]["bias"], np.float64)
  xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  want = np.zeros((1, 6, 5, 3))
  for i in range(6):
    for j in range(5):
      want[0, i, j] = np.einsum("hwc,hwco->o", xp[0, i:i + 3, j:j + 3], kernel) + bias
  np.testing.assert_allclose(conv.apply(params, x), want, atol=1e-5)


def test_upsample_nearest_matches_numpy_repeat():
  x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
  want = x.repeat(2, axis=1).repeat(2, axis=2)
  np.testing.assert_array_equal(layers.upsample_nearest(jnp.asarray(x)), want)


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("hw", [(10, 12), (9, 7), (37, 20)])
def test_depthwise_shifts_equal_grouped_conv_values_and_gradients(strides, hw):
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(2, *hw, 6)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 1, 6)), jnp.float32)
  def grouped(x, k):
    return jax.lax.conv_general_dilated(
        x, k, (strides, strides), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=6)
  shifts = lambda x, k: layers.depthwise_conv_shifts(x, k, strides)
  np.testing.assert_allclose(shifts(x, kernel), grouped(x, kernel), atol=1e-5)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  g_shift = jax.grad(loss(shifts), argnums=(0, 1))(x, kernel)
  g_conv = jax.grad(loss(grouped), argnums=(0, 1))(x, kernel)
  for a, b in zip(g_shift, g_conv):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_unet_depthwise_impls_agree():
  from jaxstyle.models import unet
  x = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
  a = unet.UNet(features=(8, 16, 32), num_res_blocks=1, depthwise_impl="shifts")
  b = unet.UNet(features=(8, 16, 32), num_res_blocks=1, depthwise_impl="conv")
  params = a.init(jax.random.key(1), x)
  np.testing.assert_allclose(a.apply(params, x), b.apply(params, x), atol=1e-5)


@pytest.mark.parametrize("pad", [1, 2, 4])
def test_reflect_pad_values_and_gradient_match_numpy_pad(pad):
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, 3)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(2, 9 + 2 * pad, 7 + 2 * pad, 3)), jnp.float32)
  plain = lambda x: jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  np.testing.assert_array_equal(layers.reflect_pad(x, pad),
                                np.pad(np.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)),
                                       mode="reflect"))
  want = jax.grad(lambda x: jnp.sum(plain(x) * weights))(x)
  got = jax.grad(lambda x: jnp.sum(layers.reflect_pad(x, pad) * weights))(x)
  np.testing.assert_allclose(got, want, atol=1e-5)
