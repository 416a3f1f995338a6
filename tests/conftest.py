"""Shared fixtures: a tiny model trained and exported with the `jaxstyle` command.

Both run as a user would after `pip install`: the console script of this
interpreter's environment, from a folder outside the repository, with no
PYTHONPATH.

The session shares one persistent XLA compilation cache (a fresh folder, or
$JAX_COMPILATION_CACHE_DIR if set) with every process it starts: the tests
start dozens of training and export processes that compile the same programs.
A cached executable is the one XLA compiled (bit-identical results); its key
includes the program, the devices and XLA_FLAGS.
"""

import atexit
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import filelock
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLES = os.path.join(REPO, "jaxstyle", "assets", "styles")


def _share_compilation_cache() -> None:
  """Set before this process imports JAX; subprocesses inherit os.environ."""
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    cache = tempfile.mkdtemp(prefix="jaxstyle-tests-xla-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
  # Every program: the small ones are most of a tiny run's entries and ~25% of
  # what the cache saves it. No size limit: with one, each write scans the folder.
  # An entry read while another process is writing it does not load; JAX then
  # warns and compiles.
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


_share_compilation_cache()


class ProgressReader:
  """A training process's stderr, collected in a thread: `wait(timeout)` returns
  once its tqdm bar ("train: ... 5/30") shows `step` of `total` steps done,
  so a test can signal it mid-run; `text()` is what it printed so far."""

  def __init__(self, stream, total: int, step: int = 3):
    self._chunks, self._reached = [], threading.Event()
    raw = getattr(stream, "buffer", stream)  # a text stream's bytes: read1 does not block
    self._thread = threading.Thread(target=self._read, args=(raw, total, step), daemon=True)
    self._thread.start()

  def _read(self, raw, total, step):
    while chunk := raw.read1(1 << 16):
      self._chunks.append(chunk.decode(errors="replace"))
      done = re.findall(rf"(\d+)/{total} ", self.text()[-400:])
      if done and int(done[-1]) >= step:
        self._reached.set()

  def wait(self, timeout: float) -> bool:
    return self._reached.wait(timeout)

  def join(self, timeout: float) -> None:
    self._thread.join(timeout)

  def text(self) -> str:
    return "".join(self._chunks)


def jaxstyle_command() -> str:
  """The installed `jaxstyle` console script (make install puts it in the venv)."""
  path = os.path.join(os.path.dirname(sys.executable), "jaxstyle")
  if not os.path.isfile(path):
    pytest.fail(f"{path} is missing: install the package (make install, or pip install -e .)")
  return path


def user_env() -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
  return env


def run_jaxstyle(*args, cwd, timeout=600) -> subprocess.CompletedProcess:
  return subprocess.run([jaxstyle_command(), *map(str, args)], cwd=cwd, env=user_env(),
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def jaxstyle_cli():
  """run(*args, cwd=...) → CompletedProcess of the `jaxstyle` console script."""
  return run_jaxstyle


def once_per_run(tmp_path_factory, name: str, produce) -> "os.PathLike":
  """A folder that `produce(folder)` fills once for the whole test run.

  Under pytest-xdist (`make test` runs `pytest -n 2`) each worker process has
  its own session, so a session fixture alone would train the tiny model once
  per worker; the first worker to get here produces it, under a file lock in
  the run's shared temporary folder, and the others wait and reuse it. A
  producer that fails leaves no marker: the next worker tries again.
  """
  if os.environ.get("PYTEST_XDIST_WORKER") is None:
    folder = tmp_path_factory.mktemp(name)
    produce(folder)
    return folder
  folder = tmp_path_factory.getbasetemp().parent / name
  with filelock.FileLock(f"{folder}.lock"):
    if not (folder / ".produced").exists():
      shutil.rmtree(folder, ignore_errors=True)
      folder.mkdir()
      produce(folder)
      (folder / ".produced").touch()
  return folder


def _train_tiny(user_dir) -> None:
  proc = run_jaxstyle("train", "--config", os.path.join(REPO, "configs", "tiny.py"),
                      "--workdir", "runs/quickstart", f"--config.data.source=folder:{STYLES}",
                      cwd=user_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = run_jaxstyle("export", "--workdir", "runs/quickstart", "--formats", "onnx",
                      "--onnx_sizes", "64", "--out", "export/", cwd=user_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def user_dir(tmp_path_factory):
  """A working folder outside the repository, like a user's project, holding
  `jaxstyle train` of configs/tiny.py (3 steps) in runs/quickstart and its
  `jaxstyle export` to ONNX (checked at 64²) in export/."""
  return once_per_run(tmp_path_factory, "user", _train_tiny)


@pytest.fixture(scope="session")
def tiny_workdir(user_dir):
  """<user_dir>/runs/quickstart: the tiny model, trained once per test run."""
  return user_dir / "runs" / "quickstart"


@pytest.fixture(scope="session")
def tiny_onnx(user_dir):
  """<user_dir>/export/<style>.onnx, exported and verified at 64²."""
  (report,) = (user_dir / "export").glob("*.export.json")
  with open(report) as f:
    assert json.load(f)["formats"]["onnx"]["verified"]
  return user_dir / "export" / report.name.replace(".export.json", ".onnx")


def _train_multistyle(folder) -> None:
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.train", "--config", os.path.join(REPO, "configs", "tiny.py"),
       "--workdir", str(folder / "run"), f"--config.data.source=folder:{STYLES}",
       "--config.style.images=('candy', 'mosaic')", "--config.model.num_styles=2",
       "--config.model.strength_control=True", "--config.model.photo_skip=True"],
      capture_output=True, text=True, timeout=600, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def multistyle_run(tmp_path_factory):
  """configs/tiny.py with two styles (candy, mosaic), strength control and the
  photo skip, 3 steps."""
  return once_per_run(tmp_path_factory, "multistyle", _train_multistyle) / "run"


def _load_tool(name: str):
  """A script of tools/ as a module."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="session")
def prepare_offline_coco():
  """prepare(data_dir, **kwargs): tools/prepare_offline_coco.py's 12-image coco/2017 there.

  TFDS's builder prepares it (needs TensorFlow); the pipeline reads it without.
  """
  pytest.importorskip("tensorflow", reason="building a TFDS dataset needs TensorFlow")
  tool = _load_tool("prepare_offline_coco")
  return lambda data_dir, **kwargs: tool.prepare_offline_coco(
      data_dir, num_train=12, num_val=2, num_test=1, seed=3, **kwargs)


@pytest.fixture(scope="session")
def offline_coco(tmp_path_factory, prepare_offline_coco):
  """A TFDS data_dir holding the 12-image offline coco/2017, as ArrayRecord."""
  return str(once_per_run(tmp_path_factory, "tfds", prepare_offline_coco))
