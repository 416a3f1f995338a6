"""CycleGAN's networks (Zhu et al. 2017), as in pytorch-CycleGAN-and-pix2pix.

* `ResnetGenerator` ('resnet_9blocks'): c7s1-64, d128, d256, 9 residual blocks
  of 256, u128, u64, c7s1-3, tanh. 11,378,179 parameters at ngf 64.
* `NLayerDiscriminator` ('basic', n_layers 3): the 70×70 PatchGAN, one LSGAN
  score per overlapping 70×70 patch. 2,764,737 parameters at ndf 64.

Layer for layer the reference with `--norm instance`: instance norm without
affine parameters (so every convolution keeps its bias), reflect padding for
the 7×7 and residual convolutions but zero padding for the stride-2 ones,
transposed 3×3 convolutions (stride 2, padding 1, output padding 1) to upsample,
weights drawn from N(0, 0.02) and zero biases (`init_type='normal'`). Images are
NHWC in [-1, 1]; a generator maps an (N, H, W, 3) batch with H, W multiples of 4
to the same shape.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxstyle.models.layers import reflect_pad


def to_signed(images01: jax.Array) -> jax.Array:
  """[0, 1] → [-1, 1], the networks' range (transforms.Normalize(0.5, 0.5))."""
  return images01 * 2.0 - 1.0


def to_unit(images: jax.Array) -> jax.Array:
  """The networks' [-1, 1] → [0, 1], clipped."""
  return jnp.clip((images + 1.0) / 2.0, 0.0, 1.0)


# init_weights(net, 'normal', 0.02) of the reference.
_KERNEL_INIT = nn.initializers.normal(0.02)


def _instance_norm() -> nn.Module:
  # nn.InstanceNorm2d(affine=False): no parameters; two-pass variance, as torch.
  return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False,
                         use_fast_variance=False)


def _conv(features: int, kernel: int, strides: int = 1, padding="VALID", name=None):
  return nn.Conv(features, (kernel, kernel), strides=strides, padding=padding,
                 kernel_init=_KERNEL_INIT, name=name)


class ResnetBlock(nn.Module):
  """x + (pad, conv3, norm, ReLU, pad, conv3, norm)(x)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    y = _conv(features, 3, name="conv1")(reflect_pad(x, 1))
    y = nn.relu(_instance_norm()(y))
    y = _conv(features, 3, name="conv2")(reflect_pad(y, 1))
    return x + _instance_norm()(y)


class ResnetGenerator(nn.Module):
  """The CycleGAN generator; (N, H, W, 3) in [-1, 1] → same shape in [-1, 1].

  Attributes:
    ngf: filters of the first layer (64 in the paper); the widest is 4·ngf.
    num_blocks: residual blocks at 1/4 resolution (9 for 256² images, 6 for 128²
      in the paper).
  """
  ngf: int = 64
  num_blocks: int = 9

  @property
  def size_multiple(self) -> int:
    return 4  # Two stride-2 convolutions; the transposed ones double exactly.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ngf = self.ngf
    x = _conv(ngf, 7, name="conv_in")(reflect_pad(x, 3))
    x = nn.relu(_instance_norm()(x))
    for i, features in enumerate((2 * ngf, 4 * ngf)):
      x = _conv(features, 3, strides=2, padding=((1, 1), (1, 1)), name=f"down{i}")(x)
      x = nn.relu(_instance_norm()(x))
    for i in range(self.num_blocks):
      x = ResnetBlock(name=f"block{i}")(x)
    for i, features in enumerate((2 * ngf, ngf)):
      # ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1): the input
      # dilated by 2, padded 1 before and 2 after, then a 3×3 correlation
      # (with the torch kernel flipped spatially; see the tests' port).
      x = nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding=((1, 2), (1, 2)),
                           kernel_init=_KERNEL_INIT, name=f"up{i}")(x)
      x = nn.relu(_instance_norm()(x))
    x = _conv(3, 7, name="conv_out")(reflect_pad(x, 3))
    return jnp.tanh(x)


class NLayerDiscriminator(nn.Module):
  """PatchGAN: (N, H, W, 3) in [-1, 1] → (N, H/8 - 2, W/8 - 2, 1) raw scores.

  With 3 layers each output sees a 70×70 input patch. No norm after the first
  convolution; LeakyReLU 0.2; zero padding 1 on every 4×4 convolution.
  """
  ndf: int = 64
  num_layers: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pad = ((1, 1), (1, 1))
    x = nn.leaky_relu(_conv(self.ndf, 4, 2, pad, name="conv0")(x), 0.2)
    for n in range(1, self.num_layers + 1):
      features = self.ndf * min(2 ** n, 8)
      strides = 2 if n < self.num_layers else 1
      x = _conv(features, 4, strides, pad, name=f"conv{n}")(x)
      x = nn.leaky_relu(_instance_norm()(x), 0.2)
    return _conv(1, 4, 1, pad, name="conv_out")(x)


def receptive_field(num_layers: int = 3) -> int:
  """Input pixels one PatchGAN output sees (70 for 3 layers), by the recursion
  r ← r·stride + (kernel − stride) from the output back to the input."""
  strides = [2] * num_layers + [1, 1]
  r = 1
  for s in reversed(strides):
    r = r * s + (4 - s)
  return r
