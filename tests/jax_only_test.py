"""Training where TensorFlow is not installed (a JAX-only accelerator host).

A `sitecustomize` on PYTHONPATH makes the import system behave as if the
`tensorflow` package were absent (`import tensorflow` raises
ModuleNotFoundError, `importlib.util.find_spec` returns None), in the training
process and in the input pipeline's spawned workers alike. The run reads the
offline COCO (ArrayRecord, through TFDS's read-only builder and Grain),
trains, checkpoints, resumes and writes TensorBoard scalars and images, which
the `tensorboard` package then reads.
"""

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLES = os.path.join(REPO, "jaxstyle", "assets", "styles")

_HIDE_TENSORFLOW = textwrap.dedent('''\
    """Makes `tensorflow` look uninstalled (jaxstyle tests/jax_only_test.py)."""
    import importlib.machinery
    import sys


    class _PathFinderWithoutTensorFlow(importlib.machinery.PathFinder):

      @classmethod
      def find_spec(cls, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
          return None
        return super().find_spec(name, path, target)


    sys.meta_path[:] = [_PathFinderWithoutTensorFlow
                        if f is importlib.machinery.PathFinder else f
                        for f in sys.meta_path]
    ''')


@pytest.fixture(scope="module")
def jax_only_env(tmp_path_factory):
  site = tmp_path_factory.mktemp("no_tensorflow")
  (site / "sitecustomize.py").write_text(_HIDE_TENSORFLOW)
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([str(site), REPO, env.get("PYTHONPATH", "")])
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
  return env


def _run(env, *args, timeout=600):
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout)


def test_tensorflow_is_hidden(jax_only_env):
  """The environment itself: the test below would prove nothing if TF loaded."""
  proc = _run(jax_only_env, "-c", "import importlib.util, tensorflow")
  assert proc.returncode != 0 and "No module named 'tensorflow'" in proc.stderr
  proc = _run(jax_only_env, "-c",
              "import importlib.util; print(importlib.util.find_spec('tensorflow'))")
  assert proc.stdout.strip() == "None", proc.stderr


def _train(env, workdir, data_dir, steps):
  return _run(env, "-m", "jaxstyle.train", "--config", os.path.join(REPO, "configs", "tiny.py"),
              "--workdir", str(workdir), f"--config.data.data_dir={data_dir}",
              f"--config.num_train_steps={steps}", "--config.checkpoint_every_steps=2",
              "--config.image_every_steps=2", "--config.data.num_workers=2")


def test_trains_checkpoints_resumes_and_writes_tensorboard(jax_only_env, offline_coco, tmp_path):
  proc = _train(jax_only_env, tmp_path, offline_coco, steps=4)
  assert proc.returncode == 0, proc.stderr[-4000:]
  proc = _train(jax_only_env, tmp_path, offline_coco, steps=6)  # resumes at 4
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(tmp_path / "summary.json") as f:
    summary = json.load(f)
  assert summary["resumed_from_step"] == 4 and summary["steps"] == 6
  with open(tmp_path / "checkpoints" / "6" / "data" / "process_0-of-1.json") as f:
    assert json.load(f) == {"global_next_index": 6 * 4}  # steps x batch

  # TensorBoard, read by the tensorboard package: scalars as jaxstyle.ablate
  # reads them, and the eval images as the images plugin finds them.
  from tensorboard.backend.event_processing import plugin_event_accumulator
  from tensorboard.util import tensor_util
  from jaxstyle import ablate
  curves = ablate.read_curves(str(tmp_path))
  assert [step for step, _ in curves["loss"]] == list(range(1, 7))
  assert all(np.isfinite(v) for _, v in curves["style_loss"])
  events = plugin_event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  events.Reload()
  assert "train/learning_rate" in events.PluginTagToContent("scalars")
  image_tags = list(events.PluginTagToContent("images"))
  assert image_tags == ["eval/amber"]
  grids = events.Tensors("eval/amber")
  assert [e.step for e in grids] == [2, 4, 6]
  width, height, png = tensor_util.make_ndarray(grids[-1].tensor_proto)
  grid = np.asarray(Image.open(io.BytesIO(png)))
  # content | stylized, each eval.image_size (32) high.
  assert (int(width), int(height)) == (64, 32) and grid.shape == (32, 64, 3)
  assert grid.std() > 0


def test_cyclegan_trains_without_tensorflow(jax_only_env, offline_coco, tmp_path):
  """Both domains through Grain: COCO (A) and a folder of paintings (B)."""
  overrides = [f"--config.{k}={v}" for k, v in (
      ("data.data_dir", offline_coco), ("data.image_size", 32), ("data.resize_min", 48),
      ("data.num_workers", 0), ("data_b.source", f"folder:{STYLES}"),
      ("data_b.resize_min", 48), ("model.ngf", 8), ("model.num_blocks", 2),
      ("discriminator.ndf", 8), ("pool_size", 2), ("style.size", 64), ("batch_size", 2),
      ("num_train_steps", 2), ("checkpoint_every_steps", 2), ("image_every_steps", 2),
      ("eval.image_size", 32))]
  proc = _run(jax_only_env, "-m", "jaxstyle.train", "--config",
              os.path.join(REPO, "configs", "cyclegan_quick.py"), "--workdir", str(tmp_path),
              *overrides)
  assert proc.returncode == 0, proc.stderr[-4000:]
  step = tmp_path / "checkpoints" / "2"
  assert {"data", "data_b", "meta", "state"} <= set(os.listdir(step))
  for item in ("data", "data_b"):
    with open(step / item / "process_0-of-1.json") as f:
      assert json.load(f) == {"global_next_index": 2 * 2}, item
  assert any((tmp_path / "tensorboard").iterdir())


def test_training_modules_do_not_import_tensorflow_where_it_is_installed(offline_coco):
  """Where TF is installed (this venv), the trainers, the pipeline and the
  TensorBoard writer still leave it unimported: no start-up seconds or memory
  spent on it."""
  pytest.importorskip("tensorflow")
  code = textwrap.dedent(f"""
      import sys, tempfile
      import ml_collections
      from jaxstyle import cyclegan, input_pipeline, summary_writer, train
      config = ml_collections.ConfigDict(dict(
          source="coco/2017", split="train", data_dir={offline_coco!r}, download=False,
          image_size=32, resize_min=48, num_workers=0))
      it = input_pipeline.create_train_dataset(config, global_batch_size=2, seed=0)
      next(it)
      it.close()
      writer = summary_writer.SummaryWriter(tempfile.mkdtemp())
      writer.scalar("x", 1.0, 0)
      writer.close()
      print(sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")))
      """)
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "[]"
