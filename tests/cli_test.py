"""The `jaxstyle` console script: help, version, and real runs from outside the repo.

The tiny model itself is trained (`jaxstyle train`) and exported (`jaxstyle
export`) by the conftest fixtures, from a folder outside the repository.
"""

import importlib.metadata
import os
import subprocess
import sys

import numpy as np
from PIL import Image

import jaxstyle
from jaxstyle import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_every_command_on_one_line_each(jaxstyle_cli, tmp_path):
  proc = jaxstyle_cli("--help", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  for name, command in cli.COMMANDS.items():
    (line,) = [l for l in proc.stdout.splitlines() if l.split()[:1] == [name]]
    assert command.summary in line


def test_help_and_version_import_neither_jax_nor_tensorflow():
  code = ("import sys\nfrom jaxstyle import cli\n"
          "for args in (['--help'], ['--version']):\n  cli.main(args)\n"
          "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'tensorflow', 'absl', "
          "'numpy', 'flax'}))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=60, cwd=REPO)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_version_is_the_package_metadata(jaxstyle_cli, tmp_path):
  proc = jaxstyle_cli("--version", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == f"jaxstyle {importlib.metadata.version('jaxstyle')}"
  assert importlib.metadata.version("jaxstyle") == jaxstyle.__version__


def test_unknown_command_and_no_command_exit_2(jaxstyle_cli, tmp_path):
  proc = jaxstyle_cli("styleize", cwd=tmp_path)
  assert proc.returncode == 2
  assert "unknown command 'styleize'" in proc.stderr and "stylize" in proc.stderr
  assert jaxstyle_cli(cwd=tmp_path).returncode == 2


def test_subcommand_help_is_its_modules_flags(jaxstyle_cli, tmp_path):
  # absl exits 1 after printing --help, under `python -m` too.
  proc = jaxstyle_cli("train", "--help", cwd=tmp_path)
  assert proc.returncode == 1 and not proc.stderr, proc.stderr[-2000:]
  assert "  jaxstyle train --config" in proc.stdout  # the module's usage, as this command
  for flag in ("--config:", "--workdir:", "multihost:"):  # multihost: from jaxstyle.distributed
    assert flag in proc.stdout, flag
  proc = jaxstyle_cli("stylize", "--help", cwd=tmp_path)
  assert proc.returncode == 1 and not proc.stderr, proc.stderr[-2000:]
  for flag in ("--input:", "--max_size:", "--output:", "--step:", "--workdir:"):
    assert flag in proc.stdout, flag


def test_missing_required_flag_is_a_usage_error(jaxstyle_cli, tmp_path):
  proc = jaxstyle_cli("stylize", "--workdir", "nowhere", cwd=tmp_path)
  assert proc.returncode == 1
  assert "--input" in proc.stderr and "--output" in proc.stderr


def test_stylize_from_another_directory_matches_the_api(jaxstyle_cli, tiny_workdir, tmp_path):
  """Relative paths resolve against the caller's folder; any size and mode is
  stylized at its own size; a bad file (text, a JPEG cut after its header) is
  one line, and the others are still written."""
  assert not str(tmp_path).startswith(REPO)
  inputs = tmp_path / "in"
  inputs.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (37, 53, 3), np.uint8)).save(inputs / "odd.png")
  Image.fromarray(rng.integers(0, 255, (40, 24), np.uint8)).save(inputs / "gray.png")
  Image.fromarray(rng.integers(0, 255, (40, 40), np.uint8)).save(inputs / "square.jpg")
  (inputs / "broken.jpg").write_bytes(b"plain text, not an image")
  (inputs / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  workdir = os.path.relpath(tiny_workdir, tmp_path)
  proc = jaxstyle_cli("stylize", "--workdir", workdir, "--input", "in", "--output", "out",
                      cwd=tmp_path)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "jaxstyle: wrote 3 image(s) to out, 2 failed" in proc.stdout
  skipped = sorted(l for l in proc.stderr.splitlines() if l.startswith("jaxstyle: skipped"))
  assert len(skipped) == 2, proc.stderr[-3000:]
  assert skipped[0] == f"jaxstyle: skipped {os.path.join('in', 'broken.jpg')}: not a recognised image file"
  assert skipped[1].startswith(f"jaxstyle: skipped {os.path.join('in', 'cut.jpg')}: ")

  stylizer = jaxstyle.Stylizer.from_workdir(tiny_workdir)
  for name, shape in (("odd.png", (37, 53, 3)), ("gray.png", (40, 24, 3)),
                      ("square.jpg", (40, 40, 3))):
    stem = os.path.splitext(name)[0]
    cli_out = np.asarray(Image.open(tmp_path / "out" / f"{stem}_stylized.png"), np.int16)
    api_out = np.asarray(stylizer(inputs / name), np.int16)
    assert cli_out.shape == shape and cli_out.std() > 0
    assert np.abs(cli_out - api_out).max() <= 1  # the same network, padding and rounding


def test_export_from_another_directory(tiny_onnx):
  """`jaxstyle export --formats onnx` (conftest) wrote a verified model where it was asked."""
  assert tiny_onnx.name == "mosaic.onnx" and tiny_onnx.stat().st_size > 10_000
  assert not str(tiny_onnx).startswith(REPO)


def test_readme_shows_the_current_help():
  with open(os.path.join(REPO, "README.md")) as f:
    readme = f.read()
  assert f"```\n$ jaxstyle --help\n{cli.usage()}\n```" in readme
