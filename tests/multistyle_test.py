"""Multi-style U-Net: conditional instance norm, blending, strength, training, stylize."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import quickstart
from configs import tiny
from jaxstyle import models
from jaxstyle import objectives
from jaxstyle import train
from jaxstyle.models import conditioning
from jaxstyle.models import vgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLES_DIR = os.path.join(REPO, "jaxstyle", "assets", "styles")


def _model(num_styles=1, strength_control=False, base=tiny, photo_skip=False):
  cfg = base.get_config().model
  cfg.num_styles, cfg.strength_control = num_styles, strength_control
  cfg.photo_skip = photo_skip
  return models.create_model(cfg)


def _random_params(model, seed=0):
  """Initialised parameters with every norm row made different (init has them equal)."""
  params = model.init(jax.random.key(seed), *models.init_inputs(model, 32))["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  return jax.tree.unflatten(tree, [
      x + 0.2 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def _select_rows(params, weights):
  """The single-style network's parameters: every (K, C) norm row blended by `weights`."""
  def select(path, x):
    is_norm = path[-1].key in ("scale", "bias") and "norm" in path[-2].key
    return jnp.asarray(weights) @ x if is_norm and x.ndim == 2 else x
  return jax.tree_util.tree_map_with_path(select, params)


def test_one_style_network_is_unchanged():
  model = _model(base=quickstart)
  params = model.init(jax.random.key(0), *models.init_inputs(model))["params"]
  # The default network's parameter count (README); norms keep (C,) rows.
  assert sum(x.size for x in jax.tree.leaves(params)) == 242_275
  assert params["res0"]["conv1"]["norm"]["scale"].shape == (128,)
  assert model.num_conditions == 1
  with pytest.raises(ValueError, match="takes no condition"):
    model.apply({"params": params}, jnp.zeros((1, 64, 64, 3)), jnp.ones((1, 1)))


def test_parameter_overhead_of_four_styles_and_strength():
  single, multi = _model(base=quickstart), _model(4, True, base=quickstart)
  count = lambda m: sum(x.size for x in jax.tree.leaves(
      jax.eval_shape(m.init, jax.random.key(0), *models.init_inputs(m))["params"]))
  overhead = count(multi) / count(single) - 1
  assert 0 < overhead <= 0.05, overhead


@pytest.mark.parametrize("weights", [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.3, 0.7, 0.0],
                                     [0.2, 0.3, 0.5]])
def test_a_condition_equals_the_single_style_network_with_those_norm_rows(weights):
  """One-hot selects a style's γ/β; a blend is the convex combination of them."""
  multi = _model(2, True)
  params = _random_params(multi)
  images = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))
  got = multi.apply({"params": params}, images, jnp.tile(jnp.asarray([weights]), (2, 1)))
  single = _model()
  want = single.apply({"params": _select_rows(params, np.asarray(weights, np.float32))}, images)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6)


def test_photo_skip_adds_the_condition_gated_photo_logits():
  # The same parameters with and without the skip: in logit space the outputs
  # differ by exactly (condition · gate) × logit(photo).
  with_skip, without = _model(2, True, photo_skip=True), _model(2, True)
  params = _random_params(with_skip)
  gate = params["photo_gate"]
  assert gate.shape == (3,)
  images = jax.random.uniform(jax.random.key(4), (3, 32, 32, 3))
  condition = jnp.asarray([[1.0, 0, 0], [0, 0, 1.0], [0.2, 0.3, 0.5]])
  got = with_skip.apply({"params": params}, images, condition)
  plain = without.apply({"params": {k: v for k, v in params.items() if k != "photo_gate"}},
                        images, condition)
  p = np.clip(np.asarray(images, np.float64), 1 / 512, 1 - 1 / 512)
  logits = (np.log(np.asarray(plain, np.float64) / (1 - np.asarray(plain, np.float64)))
            + (np.asarray(condition) @ np.asarray(gate))[:, None, None, None]
            * np.log(p / (1 - p)))
  np.testing.assert_allclose(np.asarray(got), 1 / (1 + np.exp(-logits)), atol=2e-6)


def test_photo_skip_lets_the_identity_row_give_the_photo_back():
  # With a silent head (zero kernel and bias) the identity row, whose gate
  # starts at 1, returns the photo to within the logit's clipping (1/512);
  # a style row (gate 0) returns mid-grey. Without the skip no norm row can
  # (the stem's instance norm removes each photo's channel means).
  model = _model(1, True, photo_skip=True)
  params = model.init(jax.random.key(0), *models.init_inputs(model, 32))["params"]
  np.testing.assert_array_equal(params["photo_gate"], [0.0, 1.0])
  params["head"] = jax.tree.map(jnp.zeros_like, params["head"])
  images = jax.random.uniform(jax.random.key(5), (2, 32, 32, 3))
  condition = conditioning.condition_vector(jnp.ones(1), jnp.asarray([0.0, 1.0]),
                                            num_styles=1, strength_control=True)
  out = np.asarray(model.apply({"params": params}, images, condition))
  assert np.max(np.abs(out[0] - np.asarray(images[0]))) <= 1 / 512 + 1e-6
  np.testing.assert_allclose(out[1], 0.5, atol=1e-6)
  with pytest.raises(ValueError, match="photo_skip needs model.strength_control"):
    bad = _model(2, False, photo_skip=True)
    bad.init(jax.random.key(0), *models.init_inputs(bad, 32))


def test_condition_vector_blends_and_strength_endpoints():
  cv = lambda w, s: np.asarray(conditioning.condition_vector(
      None if w is None else jnp.asarray(w, jnp.float32), s, num_styles=2,
      strength_control=True))
  np.testing.assert_allclose(cv([1, 3], None), [[0.25, 0.75, 0.0]])
  np.testing.assert_allclose(cv([1, 3], 0.0), [[0.0, 0.0, 1.0]])
  np.testing.assert_allclose(cv([2, 0], 0.6), [[0.6, 0.0, 0.4]], atol=1e-7)
  np.testing.assert_allclose(cv([[1, 0], [0, 1]], jnp.asarray([1.0, 0.5])),
                             [[1, 0, 0], [0, 0.5, 0.5]])
  with pytest.raises(ValueError, match="length 3; this network has 2 styles"):
    cv([1, 1, 1], None)
  with pytest.raises(ValueError, match="style weights are needed"):
    cv(None, None)
  with pytest.raises(ValueError, match="without strength control"):
    conditioning.condition_vector(jnp.ones(2), 0.5, num_styles=2, strength_control=False)


def test_training_conditions_are_balanced_and_fixed_by_the_key():
  for step in range(6):
    key = objectives.noise_key(0, step)
    ids = np.asarray(objectives.training_conditions(key, 8, 5))
    counts = np.bincount(ids, minlength=5)
    assert counts.max() - counts.min() <= 1, counts
    np.testing.assert_array_equal(ids, objectives.training_conditions(key, 8, 5))
  starts = {int(objectives.training_conditions(objectives.noise_key(0, s), 4, 5)[0]) for s in range(40)}
  assert starts == set(range(5))


@pytest.fixture(scope="module")
def loss_net():
  return vgg.load_loss_network("vgg16", "hed")


def test_conditional_loss_of_one_style_equals_the_single_style_loss(loss_net):
  """Two identical styles and norm rows: the per-example loss is the batch loss."""
  config = tiny.get_config()
  style = jax.random.uniform(jax.random.key(1), (1, 48, 48, 3))
  targets = objectives.style_targets(loss_net, style, config.loss)
  stacked = jax.tree.map(lambda t: jnp.concatenate([t, t]), targets)
  multi, single = _model(2), _model()
  params = _random_params(single)
  multi_params = jax.tree.map(
      lambda x, m: jnp.broadcast_to(x, m.shape) if m.ndim == 2 and x.ndim == 1 else x,
      params, jax.eval_shape(multi.init, jax.random.key(0), *models.init_inputs(multi))["params"])
  batch = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3))
  total, metrics = objectives.conditional_losses(multi_params, batch, {"grams": stacked["grams"]},
                                            loss_net, objectives.noise_key(0, 3), model=multi,
                                            loss_cfg=config.loss)
  want, want_metrics = objectives.compute_losses(params, batch, targets, loss_net,
                                            model=single, loss_cfg=config.loss)
  np.testing.assert_allclose(total, want, rtol=1e-5)
  for k in ("content_loss", "style_loss", "tv_loss", "style_loss/relu3_3"):
    np.testing.assert_allclose(metrics[k], want_metrics[k], rtol=1e-5, err_msg=k)


def test_identity_examples_are_scored_by_reconstruction(loss_net):
  config = tiny.get_config()
  style = jax.random.uniform(jax.random.key(1), (1, 48, 48, 3))
  targets = objectives.style_targets(loss_net, style, config.loss)
  model = _model(1, True)
  params = _random_params(model)
  batch = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3))
  key = objectives.noise_key(0, 1)
  ids = np.asarray(objectives.training_conditions(key, 4, 2))
  total, metrics = objectives.conditional_losses(params, batch, targets, loss_net, key,
                                            model=model, loss_cfg=config.loss)
  out = np.asarray(model.apply({"params": params}, batch, jax.nn.one_hot(ids, 2)))
  b = np.asarray(batch, np.float64)
  rel = ((out - b) ** 2).sum((1, 2, 3)) / (b ** 2).sum((1, 2, 3))
  np.testing.assert_allclose(metrics["identity_loss"], rel[ids == 1].mean(), rtol=1e-4)
  assert np.isfinite(total)


def test_style_config_errors_name_the_keys():
  config = tiny.get_config()
  config.style.images = ("candy", "mosaic")
  with pytest.raises(ValueError, match=r"config.model.num_styles=1 but the run has 2 "
                     r"style\(s\) \(candy, mosaic\): set --config.model.num_styles=2"):
    train.validate_styles(config, "none")
  config.model.num_styles = 2
  train.validate_styles(config, "none")
  with pytest.raises(ValueError, match="config.style.perturb.mode='bank' is not supported"):
    train.validate_styles(config, "bank")
  config.loss.local_style_weight = 1.0
  with pytest.raises(ValueError, match="local_style_weight"):
    train.validate_styles(config, "none")
  config.loss.local_style_weight = 0.0
  config.loss.color_weight = 1.0
  with pytest.raises(ValueError, match="color_weight > 0 is not supported"):
    train.validate_styles(config, "none")
  config.loss.color_weight = 0.0
  config.model.photo_skip = True
  with pytest.raises(ValueError, match=r"config.model.photo_skip=True needs "
                     r"config.model.strength_control=True"):
    train.validate_styles(config, "none")
  config.model.photo_skip = False
  config.style.images = ("candy", "/elsewhere/candy.jpg")
  with pytest.raises(ValueError, match="names 'candy' twice"):
    train.validate_styles(config, "none")


# ----------------------------------------------------------------------------
# A 2-style, strength-controlled run end to end: train, stylize CLI, Python API.


def test_multistyle_summary_reports_each_style(multistyle_run):
  with open(multistyle_run / "summary.json") as f:
    quality = json.load(f)["quality"]
  per_style = quality["per_style"]
  assert sorted(per_style) == ["candy", "mosaic"]
  mean = np.mean([per_style[s]["style_similarity"] for s in per_style])
  assert quality["final"]["style_similarity"] == pytest.approx(mean, abs=1e-9)
  assert 0 < quality["identity_ssim"] <= 1
  gallery = sorted(os.listdir(multistyle_run / "gallery"))
  assert "amber_candy.png" in gallery and "amber_mosaic.png" in gallery
  assert "blend_candy_mosaic.png" in gallery and "strength_candy.png" in gallery


def test_stylizer_controls(multistyle_run):
  from jaxstyle import Stylizer  # pylint: disable=g-import-not-at-top
  from jaxstyle import colors  # pylint: disable=g-import-not-at-top
  stylizer = Stylizer.from_workdir(multistyle_run)
  assert stylizer.styles == ["candy", "mosaic"] and stylizer.strength_control
  photo = np.random.default_rng(0).uniform(size=(40, 56, 3)).astype(np.float32)
  candy, mosaic = stylizer(photo, style_weights="candy"), stylizer(photo, style_weights="mosaic")
  assert np.abs(candy - mosaic).max() > 1e-4
  half = stylizer(photo, style_weights="candy=1,mosaic=1", strength=0.5)
  assert half.shape == photo.shape
  with pytest.raises(ValueError, match="this model has 2 styles"):
    stylizer(photo)
  with pytest.raises(ValueError, match="unknown style 'udnie'"):
    stylizer(photo, style_weights="udnie")
  with pytest.raises(ValueError, match="strength=2 is outside"):
    stylizer(photo, style_weights="candy", strength=2)
  kept = stylizer(photo, style_weights="candy", preserve_colors=True)
  np.testing.assert_allclose(kept, colors.preserve_colors(candy, photo), atol=1e-6)


def test_stylize_cli_controls(multistyle_run, tmp_path):
  photo = os.path.join(REPO, "jaxstyle", "assets", "content", os.listdir(
      os.path.join(REPO, "jaxstyle", "assets", "content"))[0])
  base = [sys.executable, "-m", "jaxstyle.stylize", "--workdir", str(multistyle_run),
          "--input", photo, "--max_size", "64"]
  ok = subprocess.run(base + ["--output", str(tmp_path / "out"), "--style_weights",
                              "candy=0.7,mosaic=0.3", "--strength", "0.6", "--preserve_colors"],
                      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert len(os.listdir(tmp_path / "out")) == 1
  bad = subprocess.run(base + ["--output", str(tmp_path / "bad"), "--style_weights",
                               "candy=-1"], capture_output=True, text=True, timeout=300,
                       cwd=REPO)
  assert bad.returncode != 0 and "style weight -1 is not allowed" in bad.stderr


def test_table1_worker_runs_one_style_of_a_multi_style_model(multistyle_run, tmp_path):
  """An evaluate row with style_weights='mosaic' stylizes as that style."""
  from jaxstyle import Stylizer  # pylint: disable=g-import-not-at-top
  from jaxstyle.evaluate import worker  # pylint: disable=g-import-not-at-top
  images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  np.savez(tmp_path / "images.npz", images=images, speed_image=images[0])
  spec = {"images": str(tmp_path / "images.npz"), "warmup": 0, "repeats": 1, "kind": "jax",
          "workdir": str(multistyle_run), "style_weights": "mosaic"}
  result, outputs = worker.spawn(str(tmp_path), "multi", spec)
  want = Stylizer.from_workdir(multistyle_run)(list(images), max_size=None,
                                               style_weights="mosaic")
  np.testing.assert_allclose(outputs, np.stack(want), atol=1e-5)
  assert result["num_params"] > 0
