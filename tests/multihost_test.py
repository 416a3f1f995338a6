"""Multi-host training: 2 processes on localhost (gloo) equal 1 process, and
stop together on SIGTERM.

Each process is a real `python -m jaxstyle.train` with 2 simulated CPU
devices, joined by `jax.distributed` over a localhost coordinator: the same
code path as 2 hosts of a GPU cluster, at 4 global devices. The folder data
source gives every process its slice of the same global batches, so the runs
must agree with a single-process, single-device run to float tolerance.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np

from conftest import ProgressReader
from jaxstyle import checkpointing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "folder:" + os.path.join(REPO, "jaxstyle", "assets", "styles")
STEPS = 5


def _command(workdir, *flags, steps=STEPS):
  return [sys.executable, "-m", "jaxstyle.train",
          "--config", os.path.join(REPO, "configs", "tiny.py"),
          "--workdir", str(workdir), f"--config.data.source={DATA}",
          f"--config.num_train_steps={steps}", "--config.keep_checkpoints=5",
          # Without the stability term: it divides the difference of two
          # nearby outputs by the perturbation², which magnifies float32
          # reduction-order differences between 1 and 2×2 devices (3.8e-5
          # apart after 5 steps with input noise, 2.9e-4 with the default fp16
          # rounding). train_test checks its noise across 4 devices.
          "--config.loss.stability_weight=0",
          *flags]


def _env(devices):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _run_single(workdir):
  proc = subprocess.run(_command(workdir), cwd=REPO, env=_env(1),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]


def _start_two_processes(workdir, *flags, steps=STEPS):
  address = f"localhost:{_free_port()}"
  return [
      subprocess.Popen(
          _command(workdir, f"--coordinator_address={address}",
                   "--num_processes=2", f"--process_id={i}", *flags, steps=steps),
          cwd=REPO, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
          text=True)
      for i in range(2)
  ]


def _run_two_processes(workdir):
  procs = _start_two_processes(workdir)
  outputs = [p.communicate(timeout=600) for p in procs]
  for i, (p, (_, err)) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"process {i}:\n{err[-4000:]}"
  return outputs


def _params(workdir, step):
  restored_step, state, _ = checkpointing.restore_on_one_device(str(workdir), step)
  assert restored_step == step
  return state["params"]


def _max_abs_diff(a, b):
  import jax  # pylint: disable=g-import-not-at-top
  return max(jax.tree.leaves(jax.tree.map(
      lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)))


def test_two_processes_match_one_and_resume_on_one(tmp_path):
  single, multi = tmp_path / "single", tmp_path / "multi"
  _run_single(single)
  outputs = _run_two_processes(multi)
  assert '"devices": 4' in outputs[0][0]  # process 0 prints the summary

  # 2 processes x 2 devices == 1 process x 1 device, step by step, up to
  # float32 reduction order, whose differences grow with each step and
  # depend on the images and the recipe: 2.4e-5 at step 3 with the default
  # recipe since issue #14 (no perturbation bank, no local style loss);
  # 1.6e-6 at step 3 and 2.6e-5 at step 5 with the previous one on the Grain
  # pipeline's crops (6e-8 and 1.3e-5 on the tf.data pipeline's). A wrong
  # gradient average or data split is off by ~1e-2: the parameters move 4e-2
  # in these steps.
  for step, tolerance in ((3, 1e-4), (STEPS, 5e-4)):
    assert _max_abs_diff(_params(single, step), _params(multi, step)) <= tolerance

  # The 2-process checkpoint of step 3 (with its data state, written by 2
  # processes) resumes in 1 process and continues with the same data: it
  # ends as close to the single run as the 2-process run did (1.4e-4 with the
  # default recipe; the
  # step-3 difference grown), not ~1e-2 away as with other batches.
  for step in range(4, STEPS + 1):
    shutil.rmtree(checkpointing.checkpoint_dir(multi) + f"/{step}")
  _run_single(multi)
  assert _max_abs_diff(_params(single, STEPS), _params(multi, STEPS)) <= 5e-4


def test_sigterm_to_one_process_checkpoints_both_at_the_same_step(tmp_path):
  """Kubernetes may signal one pod, SLURM every task: either way JAX's
  preemption sync makes both processes save the same step, each with its data
  state, and leave; a 1-process rerun resumes from it."""
  steps = 40
  procs = _start_two_processes(tmp_path, "--config.checkpoint_every_steps=1000", steps=steps)
  reader = ProgressReader(procs[0].stderr, steps)  # process 0 shows the progress bar
  assert reader.wait(timeout=400), reader.text()[-3000:]
  procs[1].send_signal(signal.SIGTERM)
  procs[0].wait(timeout=300)
  reader.join(timeout=30)
  _, signalled_stderr = procs[1].communicate(timeout=300)
  assert [p.returncode for p in procs] == [143, 143], signalled_stderr[-3000:]
  last = checkpointing.create_manager(str(tmp_path), read_only=True).latest_step()
  assert 3 <= last < steps
  data = tmp_path / "checkpoints" / str(last) / "data"
  states = [json.loads((data / f"process_{i}-of-2.json").read_text()) for i in range(2)]
  assert states == [{"global_next_index": last * 4}] * 2  # steps x global batch
  assert f"saved the checkpoint of step {last}" in signalled_stderr
  assert f"saved the checkpoint of step {last}" in reader.text()

  proc = subprocess.run(_command(tmp_path, steps=last + 2), cwd=REPO, env=_env(1),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["resumed_from_step"] == last
