"""CycleGAN: networks and losses against a float64 PyTorch port of the
reference (pytorch-CycleGAN-and-pix2pix), the history pool against its numpy
original, and end-to-end training: resume, data parallelism, inference."""

import functools
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs import cyclegan as cyclegan_config
from jaxstyle import checkpointing
from jaxstyle import cyclegan
from jaxstyle import stylize
from jaxstyle.models import cyclegan as nets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "folder:" + os.path.join(REPO, "jaxstyle", "assets", "styles")

# ----------------------------------------------------------------------------
# The reference networks (models/networks.py, --norm instance), in torch.
# InstanceNorm2d defaults: affine=False, eps 1e-5, so every conv has a bias.


class _TorchResnetBlock(torch.nn.Module):

  def __init__(self, dim):
    super().__init__()
    nn = torch.nn
    self.conv_block = nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim),
        nn.ReLU(True),
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))

  def forward(self, x):
    return x + self.conv_block(x)


class _TorchResnetGenerator(torch.nn.Module):

  def __init__(self, ngf=64, n_blocks=9):
    super().__init__()
    nn = torch.nn
    model = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=True),
             nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(2):
      mult = 2 ** i
      model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
    model += [_TorchResnetBlock(ngf * 4) for _ in range(n_blocks)]
    for i in range(2):
      mult = 2 ** (2 - i)
      model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                   output_padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
    model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    self.model = nn.Sequential(*model)

  def forward(self, x):
    return self.model(x)


class _TorchNLayerDiscriminator(torch.nn.Module):

  def __init__(self, ndf=64, n_layers=3):
    super().__init__()
    nn = torch.nn
    seq = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers):
      prev, mult = mult, min(2 ** n, 8)
      seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=True),
              nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    prev, mult = mult, min(2 ** n_layers, 8)
    seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=True),
            nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    self.model = nn.Sequential(*seq)

  def forward(self, x):
    return self.model(x)


def _flax_layer_names(net):
  if isinstance(net, _TorchResnetGenerator):
    blocks = [n for n in range(len(net.model)) if isinstance(net.model[n], _TorchResnetBlock)]
    return (["conv_in", "down0", "down1"]
            + [f"block{i}/conv{j}" for i in range(len(blocks)) for j in (1, 2)]
            + ["up0", "up1", "conv_out"])
  convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
  return [f"conv{i}" for i in range(len(convs) - 1)] + ["conv_out"]


def _to_flax(net, grads=False):
  """The torch net's weights (or their .grad) as a flax params tree (float64)."""
  layers = [m for m in net.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
  params = {}
  for name, layer in zip(_flax_layer_names(net), layers, strict=True):
    w, b = (layer.weight.grad, layer.bias.grad) if grads else (layer.weight, layer.bias)
    w = w.detach().numpy()
    if isinstance(layer, torch.nn.ConvTranspose2d):
      # (in, out, kh, kw), and a transposed conv correlates with the flipped kernel.
      kernel = w.transpose(2, 3, 0, 1)[::-1, ::-1]
    else:
      kernel = w.transpose(2, 3, 1, 0)
    node = params
    for part in name.split("/")[:-1]:
      node = node.setdefault(part, {})
    node[name.split("/")[-1]] = {"kernel": np.ascontiguousarray(kernel),
                                 "bias": b.detach().numpy()}
  return params


def _nchw(x):
  return torch.from_numpy(np.asarray(x, np.float64).transpose(0, 3, 1, 2))


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def _f32(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _assert_tree_close(got, want, rtol):
  """Every entry within rtol · the largest |want| of the tree.

  Per leaf would not do: the gradient of a bias right before an instance norm
  is 0 in exact arithmetic, float32 rounding noise here.
  """
  atol = rtol * max(float(np.max(np.abs(w))) for w in jax.tree.leaves(want))
  jax.tree.map(lambda g, w: np.testing.assert_allclose(
      np.asarray(g, np.float64), w, rtol=0, atol=atol), got, want)


# ----------------------------------------------------------------------------
# Architecture.


@pytest.fixture(scope="module")
def torch_full_size():
  """The reference's default G (ngf 64, 9 blocks) and D (ndf 64, 3 layers)."""
  torch.manual_seed(1)
  return (_TorchResnetGenerator().double().eval(),
          _TorchNLayerDiscriminator().double().eval())


def test_parameter_counts_equal_the_reference(torch_full_size):
  torch_g, torch_d = torch_full_size
  assert sum(p.numel() for p in torch_g.parameters()) == 11_378_179
  assert sum(p.numel() for p in torch_d.parameters()) == 2_764_737
  x = jnp.zeros((1, 64, 64, 3))
  g = jax.eval_shape(nets.ResnetGenerator().init, jax.random.key(0), x)
  d = jax.eval_shape(nets.NLayerDiscriminator().init, jax.random.key(0), x)
  assert _count(g) == 11_378_179 and _count(d) == 2_764_737
  assert nets.receptive_field(3) == 70
  # Without its (global) instance norms, one score of the reference PatchGAN
  # depends on exactly a 70×70 window: the support of its gradient.
  small = _TorchNLayerDiscriminator(ndf=2).double()
  for i, layer in enumerate(small.model):
    if isinstance(layer, torch.nn.InstanceNorm2d):
      small.model[i] = torch.nn.Identity()
  image = torch.randn(1, 3, 128, 128, dtype=torch.float64, requires_grad=True)
  small(image)[0, 0, 7, 7].backward()
  rows, cols = np.nonzero(np.any(image.grad[0].numpy() != 0, axis=0))
  assert rows.max() - rows.min() + 1 == cols.max() - cols.min() + 1 == 70
  # The init of the reference: N(0, 0.02) weights, zero biases.
  params = nets.NLayerDiscriminator(ndf=16).init(jax.random.key(0), x)["params"]
  assert 0.018 < float(jnp.std(params["conv3"]["kernel"])) < 0.022
  assert not np.any(params["conv3"]["bias"])


def test_full_size_networks_equal_the_torch_reference(torch_full_size):
  """ngf 64 / 9 blocks and ndf 64 on random inputs; flax float32 vs torch float64."""
  torch_g, torch_d = torch_full_size
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 36, 44, 3))
  with torch.no_grad():
    want_g = _nhwc(torch_g(_nchw(x)))
    want_d = _nhwc(torch_d(_nchw(np.tile(x, (1, 2, 2, 1)))))
  got_g = nets.ResnetGenerator().apply({"params": _f32(_to_flax(torch_g))}, jnp.asarray(x, jnp.float32))
  got_d = nets.NLayerDiscriminator().apply({"params": _f32(_to_flax(torch_d))},
                                           jnp.asarray(np.tile(x, (1, 2, 2, 1)), jnp.float32))
  assert got_g.shape == want_g.shape == (2, 36, 44, 3)
  assert got_d.shape == want_d.shape == (2, 7, 9, 1)
  np.testing.assert_allclose(got_g, want_g, atol=1e-4)
  np.testing.assert_allclose(got_d, want_d, atol=1e-4 * np.abs(want_d).max())


# ----------------------------------------------------------------------------
# Losses and gradients: one iteration of the reference's backward_G / backward_D.


def test_losses_and_gradients_equal_the_reference():
  torch.manual_seed(2)
  ngf, blocks, ndf = 8, 2, 8
  g_ab, g_ba = (_TorchResnetGenerator(ngf, blocks).double() for _ in range(2))
  d_a, d_b = (_TorchNLayerDiscriminator(ndf).double() for _ in range(2))
  rng = np.random.default_rng(1)
  real_a01, real_b01 = rng.uniform(0, 1, (2, 2, 32, 32, 3))
  ta, tb = _nchw(real_a01 * 2 - 1), _nchw(real_b01 * 2 - 1)

  # backward_G, then numpy for the loss formulas (MSE to 1, L1).
  fake_b, fake_a = g_ab(ta), g_ba(tb)
  rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
  idt_a, idt_b = g_ba(ta), g_ab(tb)
  score_b, score_a = d_b(fake_b), d_a(fake_a)
  np_ = lambda t: t.detach().numpy()
  want = {
      "g/gan_ab": np.mean((np_(score_b) - 1) ** 2),
      "g/gan_ba": np.mean((np_(score_a) - 1) ** 2),
      "g/cycle_a": np.mean(np.abs(np_(rec_a) - np_(ta))),
      "g/cycle_b": np.mean(np.abs(np_(rec_b) - np_(tb))),
      "g/identity_a": np.mean(np.abs(np_(idt_a) - np_(ta))),
      "g/identity_b": np.mean(np.abs(np_(idt_b) - np_(tb))),
  }
  want["g/loss"] = (want["g/gan_ab"] + want["g/gan_ba"]
                    + 10 * (want["g/cycle_a"] + want["g/cycle_b"])
                    + 0.5 * 10 * (want["g/identity_a"] + want["g/identity_b"]))
  mse, l1 = torch.nn.MSELoss(), torch.nn.L1Loss()
  loss_g = (mse(score_b, torch.ones_like(score_b)) + mse(score_a, torch.ones_like(score_a))
            + 10 * (l1(rec_a, ta) + l1(rec_b, tb)) + 5 * (l1(idt_a, ta) + l1(idt_b, tb)))
  loss_g.backward()
  want_g_grads = {"g_ab": _to_flax(g_ab, grads=True), "g_ba": _to_flax(g_ba, grads=True)}
  # backward_D_basic on the (detached) fakes; an empty pool passes them through.
  for net in (d_a, d_b):
    net.zero_grad()
  def backward_d_basic(net, real, fake):
    pred_real, pred_fake = net(real), net(fake.detach())
    return 0.5 * (mse(pred_real, torch.ones_like(pred_real))
                  + mse(pred_fake, torch.zeros_like(pred_fake)))
  loss_d_b = backward_d_basic(d_b, tb, fake_b)
  loss_d_a = backward_d_basic(d_a, ta, fake_a)
  (loss_d_a + loss_d_b).backward()
  want_d_grads = {"d_a": _to_flax(d_a, grads=True), "d_b": _to_flax(d_b, grads=True)}

  gen, disc = nets.ResnetGenerator(ngf, blocks), nets.NLayerDiscriminator(ndf)
  g_params = _f32({"g_ab": _to_flax(g_ab), "g_ba": _to_flax(g_ba)})
  d_params = _f32({"d_a": _to_flax(d_a), "d_b": _to_flax(d_b)})
  loss_cfg = cyclegan_config.get_config().loss
  real_a, real_b = (nets.to_signed(jnp.asarray(x, jnp.float32)) for x in (real_a01, real_b01))
  g_fn = jax.jit(jax.value_and_grad(functools.partial(
      cyclegan.generator_loss, gen=gen, disc=disc, loss_cfg=loss_cfg), has_aux=True))
  (_, (metrics, got_fake_a, got_fake_b)), g_grads = g_fn(g_params, d_params, real_a, real_b)
  for key, value in want.items():
    np.testing.assert_allclose(metrics[key], value, rtol=2e-5, err_msg=key)
  np.testing.assert_allclose(got_fake_b, _nhwc(fake_b), atol=1e-5)
  _assert_tree_close(g_grads, want_g_grads, rtol=1e-3)

  d_fn = jax.jit(jax.value_and_grad(functools.partial(
      cyclegan.discriminator_loss, disc=disc), has_aux=True))
  (_, d_metrics), d_grads = d_fn(d_params, real_a, real_b, got_fake_a, got_fake_b)
  np.testing.assert_allclose(d_metrics["d/loss_a"], loss_d_a.item(), rtol=2e-5)
  np.testing.assert_allclose(d_metrics["d/loss_b"], loss_d_b.item(), rtol=2e-5)
  _assert_tree_close(d_grads, want_d_grads, rtol=1e-3)


def test_learning_rate_follows_the_reference_lambda_rule():
  """Constant, then linear; torch's LambdaLR with the reference rule, per step."""
  n_steps, n_decay = 10, 4
  schedule = cyclegan.linear_decay_schedule(2e-4, n_steps, n_decay / n_steps)
  opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=2e-4, betas=(0.5, 0.999))
  n_const = n_steps - n_decay
  rule = lambda epoch: 1.0 - max(0, epoch + 1 - n_const) / float(n_decay + 1)
  scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=rule)
  for count in range(n_steps):
    np.testing.assert_allclose(schedule(count), opt.param_groups[0]["lr"], rtol=1e-6)
    opt.step()
    scheduler.step()
  assert schedule(0) == schedule(n_const - 1) == pytest.approx(2e-4)
  assert schedule(n_steps - 1) == pytest.approx(2e-4 / (n_decay + 1))


# ----------------------------------------------------------------------------
# History pool.


class _NumpyImagePool:
  """util/image_pool.py's ImagePool.query, with its random draws passed in."""

  def __init__(self, pool_size):
    self.pool_size, self.images = pool_size, []

  def query(self, images, uniforms, indices):
    out = []
    for image, u, j in zip(images, uniforms, indices):
      if len(self.images) < self.pool_size:
        self.images.append(image.copy())
        out.append(image)
      elif u > 0.5:
        out.append(self.images[j].copy())
        self.images[j] = image.copy()
      else:
        out.append(image)
    return np.stack(out)


def test_pool_matches_the_reference_query():
  pool_size, batch = 5, 3
  pool = cyclegan.ImagePool.create(pool_size, (2, 2, 3))
  reference = _NumpyImagePool(pool_size)
  query = jax.jit(cyclegan.pool_query)
  swaps = 0
  for step in range(30):
    images = np.arange(batch)[:, None, None, None] + 10.0 * step + np.zeros((batch, 2, 2, 3))
    draws = cyclegan.pool_draws(jax.random.fold_in(jax.random.key(0), step), batch, pool_size)
    pool, out = query(pool, jnp.asarray(images, jnp.float32), *draws)
    want = reference.query(images, *map(np.asarray, draws))
    np.testing.assert_array_equal(out, want)
    swaps += int(np.sum(np.asarray(out) != images) > 0)
    if step == 0:  # Filling: stored in order, returned unchanged.
      np.testing.assert_array_equal(out, images)
    if step == 1:  # 5 filled; the 6th image was the first that could swap.
      np.testing.assert_array_equal(pool.images[:3], images[:3] - 10)
      np.testing.assert_array_equal(out[:2], images[:2])
  assert int(pool.count) == pool_size
  np.testing.assert_array_equal(pool.images, np.stack(reference.images))
  assert swaps > 0


def test_pool_swaps_half_the_time_uniformly_and_is_seeded():
  pool_size, n = 4, 4000
  images = np.arange(pool_size + n, dtype=np.float32).reshape(-1, 1, 1, 1)
  draws = cyclegan.pool_draws(jax.random.key(3), pool_size + n, pool_size)
  pool, out = jax.jit(cyclegan.pool_query)(
      cyclegan.ImagePool.create(pool_size, (1, 1, 1)), images, *draws)
  swapped = np.asarray(out[pool_size:, 0, 0, 0]) != images[pool_size:, 0, 0, 0]
  assert 0.46 < swapped.mean() < 0.54  # Binomial(4000, ½): σ = 0.008.
  slots = np.bincount(np.asarray(draws[1])[pool_size:][swapped], minlength=pool_size)
  assert slots.min() > 0.85 * slots.mean()
  again = cyclegan.pool_draws(jax.random.key(3), pool_size + n, pool_size)
  other = cyclegan.pool_draws(jax.random.key(4), pool_size + n, pool_size)
  np.testing.assert_array_equal(draws[0], again[0])
  assert not np.array_equal(draws[0], other[0])
  # Pool size 0: no pool.
  _, same = cyclegan.pool_query(cyclegan.ImagePool.create(0, (1, 1, 1)), images, *draws)
  np.testing.assert_array_equal(same, images)


# ----------------------------------------------------------------------------
# Domain B.


def _tiny_config(**overrides):
  config = cyclegan_config.get_config()
  config.data.source = DATA
  config.data.image_size = 32
  config.data.resize_min = 48
  config.data.num_workers = 0
  config.model.ngf = 8
  config.model.num_blocks = 2
  config.discriminator.ndf = 8
  config.pool_size = 3
  config.style.image = "mosaic,candy"
  config.style.size = 64
  config.batch_size = 2
  config.num_train_steps = 4
  config.optimizer.decay_fraction = 0.0  # So a run can be extended and compared.
  config.log_every_steps = 1
  config.image_every_steps = 2
  config.checkpoint_every_steps = 2
  config.eval.image_size = 32
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def test_style_crops_are_deterministic_augmented_crops():
  crops = cyclegan.StyleCrops(_tiny_config())
  assert [os.path.basename(p) for p in crops.paths] == ["mosaic.jpg", "candy.jpg"]
  batch = next(crops.batches(4, start_step=7))
  assert batch.shape == (4, 32, 32, 3) and batch.dtype == np.float32
  assert 0.0 <= batch.min() and batch.max() <= 1.0
  np.testing.assert_array_equal(batch[2], crops.image(7, 2))
  assert not np.array_equal(batch[0], batch[1])
  resumed = crops.batches(4, start_step=7)
  np.testing.assert_array_equal(next(resumed), batch)
  # The crop is a zoom into the style image: its colours, not random noise.
  style = crops.images[0]
  for channel in range(3):
    assert abs(batch[..., channel].mean() - style[..., channel].mean()) < 0.25


def test_unprepared_tfds_domain_b_names_the_dataset(tmp_path):
  config = _tiny_config(**{"data_b.source": "cycle_gan/vangogh2photo",
                           "data_b.data_dir": str(tmp_path)})
  with pytest.raises(FileNotFoundError, match="cycle_gan/vangogh2photo.*style_crops"):
    cyclegan.create_domain_b(config, 0)


def test_bad_config_names_the_key():
  with pytest.raises(ValueError, match="config.data.image_size"):
    cyclegan.validate_config(_tiny_config(**{"data.image_size": 30}))
  with pytest.raises(ValueError, match="config.model.name"):
    cyclegan.validate_config(_tiny_config(**{"model.name": "unet"}))
  with pytest.raises(ValueError, match="config.loss.cycle_weight"):
    cyclegan.validate_config(_tiny_config(**{"loss.cycle_weight": -1.0}))


# ----------------------------------------------------------------------------
# End to end.


def _final_state(workdir):
  return checkpointing.restore_on_one_device(str(workdir))[1]


def _max_abs_diff(a, b):
  return max(jax.tree.leaves(jax.tree.map(
      lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  cyclegan.train_and_evaluate(_tiny_config(), str(workdir))
  return workdir


def test_run_writes_checkpoints_tensorboard_gallery_summary(uninterrupted):
  with open(uninterrupted / "summary.json") as f:
    summary = json.load(f)
  assert summary["steps"] == 4 and summary["trainer"] == "cyclegan"
  for key in ("cycle_loss_a_initial", "cycle_loss_a_final", "wall_time_s"):
    assert np.isfinite(summary[key]), key
  for key in ("g/loss", "d/loss", "g/cycle_a", "g/identity_b", "d/loss_b"):
    assert np.isfinite(summary["train_final"][key]), key
  assert summary["generator_params"] == _count(jax.eval_shape(
      nets.ResnetGenerator(8, 2).init, jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  assert {"2", "4"} <= set(os.listdir(uninterrupted / "checkpoints"))
  assert any((uninterrupted / "tensorboard").iterdir())
  assert (uninterrupted / "gallery" / "grid.png").exists()
  with open(uninterrupted / "config.json") as f:
    assert json.load(f)["trainer"] == "cyclegan"
  state = _final_state(uninterrupted)
  assert int(state["pool_a"]["count"]) == 3  # 4 steps × 2 images, pool of 3.
  assert int(state["generators"]["step"]) == int(state["discriminators"]["step"]) == 4


def test_resume_equals_the_uninterrupted_run(uninterrupted, tmp_path):
  """A workdir holding the uninterrupted run's step-2 checkpoint, as an
  interrupted run leaves it, trains on to the same step-4 state."""
  shutil.copytree(uninterrupted, tmp_path, dirs_exist_ok=True)
  for step in os.listdir(tmp_path / "checkpoints"):
    if step != "2":
      shutil.rmtree(tmp_path / "checkpoints" / step)
  os.remove(tmp_path / "summary.json")
  cyclegan.train_and_evaluate(_tiny_config(), str(tmp_path))
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["resumed_from_step"] == 2
  # Parameters, Adam moments and both history pools.
  assert _max_abs_diff(_final_state(uninterrupted), _final_state(tmp_path)) <= 1e-6


def test_load_stylizer_uses_g_ab_in_unit_range(uninterrupted):
  apply_fn, multiple, meta = stylize.load_stylizer(str(uninterrupted))
  assert multiple == 4 and meta["step"] == 4
  image = np.random.default_rng(0).uniform(0, 1, (36, 52, 3)).astype(np.float32)
  out = apply_fn(image)
  assert out.shape == image.shape and 0.0 <= out.min() and out.max() <= 1.0
  params = _final_state(uninterrupted)["generators"]["params"]["g_ab"]
  assert meta["num_params"] == _count(params)
  want = (nets.ResnetGenerator(8, 2).apply({"params": params}, image[None] * 2 - 1)[0] + 1) / 2
  np.testing.assert_allclose(out, want, atol=1e-6)


def test_two_devices_through_the_cli_equal_one_device(uninterrupted, tmp_path):
  """`python -m jaxstyle.train` runs configs with trainer='cyclegan'; its first
  step over 2 devices equals the 1-device step.

  Compared after one step: the gradients (Adam's first moment is ½·grad), the
  history pools and the losses to float tolerance. Parameters only to 2·lr:
  Adam's first update is lr·sign(grad), and the gradients of the biases in
  front of instance norms are 0 up to rounding, so their signs (and, GAN
  training being chaotic, everything after) differ between reduction orders.
  """
  config = _tiny_config()
  overrides = [f"--config.{k}={v}" for k, v in (
      ("data.source", DATA), ("data.image_size", 32), ("data.resize_min", 48),
      ("data.num_workers", 0), ("model.ngf", 8), ("model.num_blocks", 2),
      ("discriminator.ndf", 8), ("pool_size", 3), ("style.image", config.style.image),
      ("style.size", 64), ("batch_size", 2), ("num_train_steps", 1),
      ("optimizer.decay_fraction", 0.0), ("eval.image_size", 32))]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.train", "--config",
       os.path.join(REPO, "configs", "cyclegan.py"), "--workdir", str(tmp_path), *overrides],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["devices"] == 2
  _, one, meta_one = checkpointing.restore_on_one_device(str(uninterrupted), step=1)
  _, two, meta_two = checkpointing.restore_on_one_device(str(tmp_path), step=1)
  assert meta_one["step"] == meta_two["step"] == 1
  for net in ("generators", "discriminators"):
    _assert_tree_close(two[net]["opt_state"][0]["mu"], jax.tree.map(
        lambda x: np.asarray(x, np.float64), one[net]["opt_state"][0]["mu"]), rtol=1e-4)
    assert _max_abs_diff(one[net]["params"], two[net]["params"]) <= 2.01 * 2e-4
  assert _max_abs_diff(one["pool_a"], two["pool_a"]) <= 1e-5
  assert _max_abs_diff(one["pool_b"], two["pool_b"]) <= 1e-5
