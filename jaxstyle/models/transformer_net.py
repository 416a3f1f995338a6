"""Johnson et al. 2016 TransformerNet, the reference architecture for ablations.

Layer for layer the network of pytorch/examples `fast_neural_style`
(transformer_net.py), with the defaults features=(32, 64, 128), 5 blocks:

  conv 9×9 3→32, IN, ReLU                       256²
  conv 3×3 s2 32→64, IN, ReLU                   128²
  conv 3×3 s2 64→128, IN, ReLU                   64²
  5 × residual (conv 3×3, IN, ReLU, conv 3×3, IN) + identity
  nearest ×2, conv 3×3 128→64, IN, ReLU         128²
  nearest ×2, conv 3×3 64→32, IN, ReLU          256²
  conv 9×9 32→3, sigmoid → RGB in [0, 1]

Every convolution is reflect-padded and has a bias, and every instance norm
has a learned scale and shift, as in PyTorch (`nn.Conv2d` bias=True,
`InstanceNorm2d(affine=True)`): 1,679,235 parameters and 10.08 GMAC at 256².
The biases before instance norm are redundant (the norm subtracts them) but
are kept so the parameter count is the reference's.

Output: the PyTorch example returns unbounded values in 0–255 units and clamps
when saving; Johnson's original Torch code squashed with a scaled tanh. Here the
last conv goes through a sigmoid, which is the same squashing as
(tanh(x/2) + 1)/2, gives the [0, 1] range the losses expect with a gradient
everywhere (a clip would zero it outside the range), and matches the U-Net's
head, so an ablation between the two compares the bodies only.
"""

from typing import Sequence

import flax.linen as nn
import jax

from jaxstyle.models import layers


class _ConvNorm(nn.Module):
  """Reflect-padded conv (with bias) → affine instance norm → optional ReLU."""
  features: int
  kernel_size: int = 3
  strides: int = 1
  relu: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = layers.Conv(self.features, self.kernel_size, self.strides, use_bias=True,
                    name="conv")(x)
    x = layers.InstanceNorm(name="norm")(x)
    return nn.relu(x) if self.relu else x


class _ResidualBlock(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = _ConvNorm(self.features, name="conv1")(x)
    y = _ConvNorm(self.features, relu=False, name="conv2")(y)
    return x + y


class TransformerNet(nn.Module):
  """Johnson et al.'s fast style-transfer network; input and output RGB in [0, 1].

  Attributes:
    features: channel width at full resolution and after each stride-2 conv
      (the reference has two downsamplings: (32, 64, 128)).
    num_res_blocks: residual blocks at the lowest resolution.
  """
  features: Sequence[int] = (32, 64, 128)
  num_res_blocks: int = 5

  @property
  def size_multiple(self) -> int:
    """Input H and W must be multiples of this (one halving per level)."""
    return 2 ** (len(self.features) - 1)

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = _ConvNorm(self.features[0], kernel_size=9, name="in_conv")(images)
    for level, width in enumerate(self.features[1:], start=1):
      x = _ConvNorm(width, strides=2, name=f"down{level}")(x)
    for i in range(self.num_res_blocks):
      x = _ResidualBlock(self.features[-1], name=f"res{i}")(x)
    for level in range(len(self.features) - 1, 0, -1):
      x = layers.upsample_nearest(x)
      x = _ConvNorm(self.features[level - 1], name=f"up{level}")(x)
    x = layers.Conv(3, 9, use_bias=True, name="out_conv")(x)
    return nn.sigmoid(x)
