"""Input pipeline tests: Grain over the offline COCO (ArrayRecord) and folders."""

import io
import json
import os
import shutil

import jax
import ml_collections
import numpy as np
from PIL import Image
import pytest

from jaxstyle import input_pipeline

IMAGE_SIZE = 64
BATCH = 4
AUGMENT = dict(crop_scale=(0.5, 1.0), hflip=True, rotate_degrees=10.0)


def _config(source, data_dir=None, **overrides):
  config = ml_collections.ConfigDict(dict(
      source=source,
      split="train",
      data_dir=data_dir,
      download=False,
      image_size=IMAGE_SIZE,
      resize_min=80,
      num_workers=0,
  ))
  config.update(overrides)
  return config


def _take(config, n, seed=0, start_step=0, batch=BATCH):
  it = input_pipeline.create_train_dataset(
      config, global_batch_size=batch, seed=seed, start_step=start_step)
  try:
    return [next(it) for _ in range(n)]
  finally:
    it.close()


def test_prepare_tool_writes_array_record_and_is_idempotent(offline_coco, prepare_offline_coco,
                                                            capsys):
  version_dir = os.path.join(offline_coco, "coco", "2017", "1.1.0")
  assert any(".array_record-" in f for f in os.listdir(version_dir))
  prepare_offline_coco(offline_coco)
  assert "already prepared" in capsys.readouterr().out


def test_coco_batches(offline_coco):
  # 12 images / batch 4: five steps cross two epoch boundaries.
  batches = _take(_config("coco/2017", offline_coco), 5)
  for batch in batches:
    assert batch.shape == (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    assert batch.std() > 0.01  # Real pixels, not padding.
  # Each epoch is one pass over the 12 images: no image twice in batches 0-2.
  epoch = np.concatenate(batches[:3])
  means = np.round(epoch.mean(axis=(1, 2, 3)), 6)
  assert len(set(means)) == 12


def test_coco_deterministic_and_seeded(offline_coco):
  config = _config("coco/2017", offline_coco)
  first, again = _take(config, 3), _take(config, 3)
  other = _take(config, 3, seed=1)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("augment", [None, AUGMENT])
def test_coco_resume_matches_uninterrupted_run(offline_coco, augment):
  config = _config("coco/2017", offline_coco, **({"augment": augment} if augment else {}))
  fresh = _take(config, 5)
  resumed = _take(config, 2, start_step=3)
  np.testing.assert_array_equal(resumed[0], fresh[3])
  np.testing.assert_array_equal(resumed[1], fresh[4])
  if augment:
    plain = _take(_config("coco/2017", offline_coco), 5)
    assert not any(np.array_equal(a, b) for a, b in zip(fresh, plain))


def test_worker_processes_give_the_same_batches_and_state(offline_coco):
  """Decoding in 2 worker processes is the in-process stream, and an iterator
  restored from a worker-backed iterator's state continues it."""
  config = _config("coco/2017", offline_coco, augment=AUGMENT)
  in_process = _take(config, 5)
  workers = input_pipeline.create_train_dataset(
      _config("coco/2017", offline_coco, augment=AUGMENT, num_workers=2, prefetch=1),
      global_batch_size=BATCH, seed=0)
  try:
    for batch in in_process[:3]:
      np.testing.assert_array_equal(next(workers), batch)
    state = workers.get_state()
  finally:
    workers.close()
  assert state == {input_pipeline.POSITION_KEY: 3 * BATCH}
  restored = input_pipeline.create_train_dataset(config, global_batch_size=BATCH, seed=0)
  restored.set_state(json.loads(json.dumps(state)))  # As a checkpoint stores it.
  np.testing.assert_array_equal(next(restored), in_process[3])
  restored.close()


def test_tfrecord_dataset_is_refused_with_the_conversion(offline_coco, tmp_path):
  """A dataset prepared in TFDS's default format (sequential tfrecord) names
  how to get ArrayRecord."""
  shutil.copytree(offline_coco, tmp_path / "tfds")
  info_path = tmp_path / "tfds" / "coco" / "2017" / "1.1.0" / "dataset_info.json"
  info = json.loads(info_path.read_text())
  assert info["fileFormat"] == "array_record"
  info_path.write_text(json.dumps(dict(info, fileFormat="tfrecord")))
  with pytest.raises(ValueError, match="tfrecord.*tfds convert_format.*array_record"):
    input_pipeline.create_train_dataset(
        _config("coco/2017", str(tmp_path / "tfds")), global_batch_size=BATCH, seed=0)


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


def test_folder_source_skips_bad_files(tmp_path):
  _write_folder(tmp_path)
  files = input_pipeline.list_image_files(str(tmp_path))
  assert len(files) == 14 and not any(f.endswith(".txt") for f in files)
  source = input_pipeline.FolderSource.from_folder(str(tmp_path))
  assert len(source) == 13 and not any(p.endswith("corrupt.jpg") for p in source.paths)
  batches = _take(_config(f"folder:{tmp_path}"), 6)  # Several epochs, past both bad files.
  for batch in batches:
    assert batch.shape == (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_folder_source_resume_past_an_undecodable_file(tmp_path):
  # truncated.jpg passes the header check and fails to decode: its element is
  # the next record instead, so positions, and resuming, stay exact.
  _write_folder(tmp_path)
  config = _config(f"folder:{tmp_path}", resize_min=0, augment=AUGMENT)
  fresh = _take(config, 8, seed=5)
  resumed = _take(config, 3, seed=5, start_step=5)
  for step in range(3):
    np.testing.assert_array_equal(resumed[step], fresh[5 + step])


def test_empty_folder_error_names_folder(tmp_path):
  (tmp_path / "readme.txt").write_text("no images here")
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    input_pipeline.create_train_dataset(
        _config(f"folder:{tmp_path}"), global_batch_size=BATCH, seed=0)


def test_unprepared_tfds_dataset_error(tmp_path):
  with pytest.raises(FileNotFoundError) as excinfo:
    input_pipeline.create_train_dataset(
        _config("coco/2017", str(tmp_path)), global_batch_size=BATCH, seed=0)
  message = str(excinfo.value)
  assert "coco/2017" in message and str(tmp_path) in message
  assert "prepare_offline_coco.py" in message and "array_record" in message
  assert "download=True" in message


def _take_as_process(monkeypatch, config, n, *, process, count, start_step=0):
  """Batches process `process` of `count` gets (only the process id is faked)."""
  monkeypatch.setattr(jax, "process_index", lambda: process)
  monkeypatch.setattr(jax, "process_count", lambda: count)
  return _take(config, n, seed=7, start_step=start_step)


def _global(parts):
  """The global batch: each process holds a contiguous block of its rows."""
  return np.concatenate(parts)


@pytest.mark.parametrize("source", ["folder", "coco"])
def test_global_batches_do_not_depend_on_process_count(tmp_path, monkeypatch, source,
                                                       offline_coco):
  if source == "folder":
    _write_folder(tmp_path)
    config = _config(f"folder:{tmp_path}", augment=AUGMENT)
  else:
    config = _config("coco/2017", offline_coco, augment=AUGMENT)
  # Global batch 4 over 12-13 images: 7 steps cross two epoch boundaries.
  single = _take_as_process(monkeypatch, config, 7, process=0, count=1)
  for count in (2, 4):
    parts = [_take_as_process(monkeypatch, config, 7, process=p, count=count)
             for p in range(count)]
    for step, batch in enumerate(single):
      assert all(part[step].shape[0] == BATCH // count for part in parts)
      np.testing.assert_array_equal(_global([part[step] for part in parts]), batch,
                                    err_msg=f"{count} processes, step {step}")
  # A run resumed at step 4 on two processes continues the one-process order.
  resumed = [_take_as_process(monkeypatch, config, 3, process=p, count=2,
                              start_step=4) for p in range(2)]
  for step in range(3):
    np.testing.assert_array_equal(_global([part[step] for part in resumed]), single[4 + step])


def test_indivisible_batch_names_the_process_count(monkeypatch, tmp_path):
  _write_folder(tmp_path)
  monkeypatch.setattr(jax, "process_count", lambda: 3)
  with pytest.raises(ValueError, match="process_count"):
    input_pipeline.create_train_dataset(_config(f"folder:{tmp_path}"),
                                        global_batch_size=BATCH, seed=0)


def test_prepare_tool_rebuilds_its_older_tfrecord_release(prepare_offline_coco, tmp_path,
                                                          capsys):
  """What `make data` finds where an earlier version of the tool ran: its own
  release in TFDS's default format, tfrecord, whose marker has no
  file_format. It is rebuilt as ArrayRecord, and the pipeline reads it."""
  prepare_offline_coco(tmp_path, file_format="tfrecord")
  version_dir = tmp_path / "coco" / "2017" / "1.1.0"
  marker = version_dir / "jaxstyle_offline_coco.json"
  marker.write_text(json.dumps({k: v for k, v in json.loads(marker.read_text()).items()
                                if k != "file_format"}))
  assert any(".tfrecord-" in f for f in os.listdir(version_dir))
  with pytest.raises(ValueError, match="tfrecord"):
    input_pipeline.create_train_dataset(_config("coco/2017", str(tmp_path)),
                                        global_batch_size=BATCH, seed=0)
  capsys.readouterr()
  prepare_offline_coco(tmp_path)
  assert "Prepared offline" in capsys.readouterr().out
  assert json.loads(marker.read_text())["file_format"] == "array_record"
  assert not any(".tfrecord-" in f for f in os.listdir(version_dir))
  assert len(_take(_config("coco/2017", str(tmp_path)), 1)) == 1
