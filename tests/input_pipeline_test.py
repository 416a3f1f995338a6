"""Input pipeline tests; COCO is an offline stand-in, read by the builder."""

import importlib.util
import io
import os
import pathlib

import jax
import ml_collections
import numpy as np
from PIL import Image
import pytest

from jaxstyle import input_pipeline

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGE_SIZE = 64
BATCH = 4


def _load_tool():
  path = REPO_ROOT / "tools" / "prepare_offline_coco.py"
  spec = importlib.util.spec_from_file_location("prepare_offline_coco", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="session")
def coco_data_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  _load_tool().main([
      f"--data_dir={data_dir}", "--num_train=12", "--num_val=2",
      "--num_test=1", "--seed=3",
  ])
  return str(data_dir)


def _config(source, data_dir=None, **overrides):
  config = ml_collections.ConfigDict(dict(
      source=source,
      split="train",
      data_dir=data_dir,
      download=False,
      image_size=IMAGE_SIZE,
      shuffle_buffer=16,
      resize_min=80,
      num_parallel_calls=2,
  ))
  config.update(overrides)
  return config


def _take(config, n, seed=0, start_step=0):
  it = input_pipeline.create_train_dataset(
      config, global_batch_size=BATCH, seed=seed, start_step=start_step
  )
  return [next(it) for _ in range(n)]


def test_prepare_tool_is_idempotent(coco_data_dir, capsys):
  _load_tool().main([
      f"--data_dir={coco_data_dir}", "--num_train=12", "--num_val=2",
      "--num_test=1", "--seed=3",
  ])
  assert "already prepared" in capsys.readouterr().out


def test_coco_batches(coco_data_dir):
  # 12 images / batch 4: five steps cross two epoch boundaries.
  batches = _take(_config("coco/2017", coco_data_dir), 5)
  for batch in batches:
    assert batch.shape == (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    assert batch.std() > 0.01  # Real pixels, not padding.


def test_coco_deterministic_and_seeded(coco_data_dir):
  config = _config("coco/2017", coco_data_dir)
  first, again = _take(config, 3), _take(config, 3)
  other = _take(config, 3, seed=1)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_coco_resume_matches_uninterrupted_run(coco_data_dir):
  config = _config("coco/2017", coco_data_dir)
  fresh = _take(config, 5)
  resumed = _take(config, 2, start_step=3)
  np.testing.assert_array_equal(resumed[0], fresh[3])
  np.testing.assert_array_equal(resumed[1], fresh[4])


def _write_folder(root):
  rng = np.random.default_rng(0)
  (root / "sub").mkdir(parents=True)
  for i in range(5):
    pixels = rng.integers(0, 256, (90 + 10 * i, 120, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / f"rgb_{i}.png")
    Image.fromarray(pixels).save(root / "sub" / f"photo_{i}.JPG")
  Image.fromarray(pixels[..., 0]).save(root / "gray.jpeg")  # 1 channel.
  Image.fromarray(pixels[:40, :50]).save(root / "small.bmp")  # < crop size.
  (root / "notes.txt").write_text("not an image")
  (root / "corrupt.jpg").write_bytes(b"definitely not a jpeg")
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="JPEG")
  data = buf.getvalue()
  (root / "truncated.jpg").write_bytes(data[:len(data) // 2])  # Valid header.


def test_coco_augmented_resume(coco_data_dir):
  config = _config("coco/2017", coco_data_dir, augment=dict(
      crop_scale=(0.5, 1.0), hflip=True, rotate_degrees=10.0))
  fresh = _take(config, 5)
  resumed = _take(config, 2, start_step=3)
  np.testing.assert_array_equal(resumed[0], fresh[3])
  np.testing.assert_array_equal(resumed[1], fresh[4])
  plain = _take(_config("coco/2017", coco_data_dir), 5)
  assert not any(np.array_equal(a, b) for a, b in zip(fresh, plain))


def test_folder_source_skips_bad_files(tmp_path):
  _write_folder(tmp_path)
  files = input_pipeline.list_image_files(str(tmp_path))
  assert len(files) == 14 and not any(f.endswith(".txt") for f in files)
  config = _config(f"folder:{tmp_path}")
  batches = _take(config, 6)  # Several epochs, past both bad files.
  for batch in batches:
    assert batch.shape == (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_folder_source_resume(tmp_path):
  _write_folder(tmp_path)
  os.remove(tmp_path / "truncated.jpg")  # Only header-level damage left.
  config = _config(f"folder:{tmp_path}", resize_min=0)
  fresh = _take(config, 6, seed=5)
  resumed = _take(config, 2, seed=5, start_step=4)
  np.testing.assert_array_equal(resumed[0], fresh[4])
  np.testing.assert_array_equal(resumed[1], fresh[5])


def test_empty_folder_error_names_folder(tmp_path):
  (tmp_path / "readme.txt").write_text("no images here")
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    input_pipeline.create_train_dataset(
        _config(f"folder:{tmp_path}"), global_batch_size=BATCH, seed=0
    )


def test_unprepared_tfds_dataset_error(tmp_path):
  with pytest.raises(FileNotFoundError) as excinfo:
    input_pipeline.create_train_dataset(
        _config("coco/2017", str(tmp_path)), global_batch_size=BATCH, seed=0
    )
  message = str(excinfo.value)
  assert "coco/2017" in message and str(tmp_path) in message
  assert "prepare_offline_coco.py" in message
  assert "download=True" in message


def _take_as_process(monkeypatch, config, n, *, process, count, start_step=0):
  """Batches process `process` of `count` gets (only the process id is faked)."""
  monkeypatch.setattr(jax, "process_index", lambda: process)
  monkeypatch.setattr(jax, "process_count", lambda: count)
  return _take(config, n, seed=7, start_step=start_step)


@pytest.mark.parametrize("augment", [None, dict(crop_scale=(0.5, 1.0),
                                                hflip=True, rotate_degrees=10.0)])
def test_folder_global_batches_do_not_depend_on_process_count(
    tmp_path, monkeypatch, augment):
  _write_folder(tmp_path)
  os.remove(tmp_path / "truncated.jpg")  # Decode failures shift one process.
  config = _config(f"folder:{tmp_path}", **({"augment": augment} if augment else {}))
  # 12 readable files, global batch 4: 7 steps cross two epoch boundaries.
  single = _take_as_process(monkeypatch, config, 7, process=0, count=1)
  for count in (2, 4):
    parts = [_take_as_process(monkeypatch, config, 7, process=p, count=count)
             for p in range(count)]
    for step, batch in enumerate(single):
      assert all(part[step].shape[0] == BATCH // count for part in parts)
      np.testing.assert_array_equal(
          np.concatenate([part[step] for part in parts]), batch,
          err_msg=f"{count} processes, step {step}")
  # A run resumed at step 4 on two processes continues the one-process order.
  resumed = [_take_as_process(monkeypatch, config, 3, process=p, count=2,
                              start_step=4) for p in range(2)]
  for step in range(3):
    np.testing.assert_array_equal(
        np.concatenate([part[step] for part in resumed]), single[4 + step])
