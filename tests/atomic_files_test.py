"""Write-then-rename: a failed write leaves the old file and no temporary file."""

import json
import os

import pytest

from jaxstyle import atomic_files


def test_writes_replace_the_target(tmp_path):
  path = tmp_path / "out.json"
  atomic_files.write_json(path, {"b": 1, "a": [1, 2]})
  assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
  assert path.read_text().startswith('{\n  "a"')  # indent 2, sorted keys
  atomic_files.write_text(path, "∞\n")
  assert path.read_text(encoding="utf-8") == "∞\n"
  atomic_files.write_bytes(path, b"\x00\x01")
  assert path.read_bytes() == b"\x00\x01"
  assert os.listdir(tmp_path) == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "table.md"
  path.write_text("old")
  with pytest.raises(RuntimeError, match="disk full"):
    with atomic_files.replacing(path) as f:
      f.write("half of the new")
      raise RuntimeError("disk full")
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["table.md"]
  with pytest.raises(TypeError):
    atomic_files.write_json(path, {"x": object()})
  assert path.read_text() == "old" and os.listdir(tmp_path) == ["table.md"]


def test_new_files_honour_the_umask(tmp_path):
  old = os.umask(0o022)
  try:
    atomic_files.write_text(tmp_path / "a.txt", "x")
  finally:
    os.umask(old)
  assert (os.stat(tmp_path / "a.txt").st_mode & 0o777) == 0o644
