"""Content-image input pipeline on Grain: random S x S crops from TFDS or a folder.

No TensorFlow: TFDS datasets are read from their prepared ArrayRecord files
(`builder_from_directory(...).as_data_source`, random access), folders as a
sorted list of files. Either becomes one global stream of images: the record
order is Grain's index shuffle, reseeded every epoch, and element i of the
stream is decoded and augmented with draws seeded by (seed, i)
(`jaxstyle.augment`), in worker processes.

`GlobalBatches` hands process p rows [p L, (p + 1) L) of each global batch
(L = global batch / process count), so global batch k is the same array, row
for row, at any process count, and its state is just the position in the
global stream: the same on every process and, the stream being random access,
restorable at any step without reading what came before. `train.py` saves that
state with every checkpoint (`checkpointing.save`).
"""

import concurrent.futures
import dataclasses
import os
import threading
import time
from typing import Any

from absl import flags
from absl import logging
import grain
import ml_collections
import numpy as np

from jaxstyle import augment
from jaxstyle import data_config as data_config_lib
from jaxstyle import images as image_io

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Formats of folder images we train on (as named by PIL).
_DECODABLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
FOLDER_PREFIX = "folder:"
# An image that fails to decode is replaced by the next record of the stream;
# this many failures in a row stop the run (the data is broken, not a file).
_MAX_STAND_INS = 16
# The iterator state: the number of global-stream elements consumed (the key
# of grain's ElasticIterator, whose states are alike).
POSITION_KEY = "global_next_index"


# ----------------------------------------------------------------------------
# Sources: random-access sequences of records, a file path or (name, encoded
# image bytes).


def list_image_files(folder: str) -> list[str]:
  """Sorted image files below `folder` (recursive, extension-insensitive)."""
  files = []
  for root, _, names in os.walk(folder, followlinks=True):
    files.extend(
        os.path.join(root, n) for n in names
        if n.lower().endswith(IMAGE_EXTENSIONS)
    )
  return sorted(files)


def _is_decodable(path: str) -> bool:
  """Cheap header check, so bad files are dropped before positions are set."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as img:
      return img.format in _DECODABLE_FORMATS and min(img.size) > 0
  except Exception:  # pylint: disable=broad-except
    return False


@dataclasses.dataclass(frozen=True)
class FolderSource:
  """The readable images under a folder, in sorted order.

  Every process lists and checks the same files, so all agree on the stream.
  Files whose header is not a decodable image are dropped here, with a
  warning, before positions are assigned.
  """
  paths: tuple[str, ...]

  @classmethod
  def from_folder(cls, folder: str) -> "FolderSource":
    folder = os.path.expanduser(folder)
    files = list_image_files(folder)
    if not files:
      raise FileNotFoundError(
          f'No images ({", ".join(IMAGE_EXTENSIONS)}) found under {folder!r}.')
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      good = [f for f, ok in zip(files, pool.map(_is_decodable, files)) if ok]
    for f in sorted(set(files) - set(good)):
      logging.warning("Skipping unreadable image file %s", f)
    if not good:
      raise FileNotFoundError(f"No readable images under {folder!r}.")
    return cls(tuple(good))

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> str:
    return self.paths[index]  # read by `Crop`, which handles a failing file


@dataclasses.dataclass(frozen=True)
class TfdsSource:
  """The encoded `image` feature of a prepared TFDS split (ArrayRecord)."""
  data_source: Any  # tfds ArrayRecordDataSource: random access, picklable
  name: str

  def __len__(self) -> int:
    return len(self.data_source)

  def __getitem__(self, index: int) -> tuple[str, bytes]:
    return f"{self.name}[{index}]", self.data_source[index]["image"]


def _not_prepared_error(name: str, data_dir) -> FileNotFoundError:
  return FileNotFoundError(
      f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} and "
      "download=False. Run `python tools/prepare_offline_coco.py` (offline "
      "COCO stand-in, then pass its data_dir), `tfds build "
      f"{name} --file_format=array_record`, or set --config.data.download=True.")


def prepare_tfds(name: str, data_dir) -> None:
  """Downloads and builds a TFDS dataset as ArrayRecord: needs TensorFlow."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
  except ImportError as e:
    raise ImportError(
        f"Building TFDS dataset {name!r} from its raw files needs TensorFlow "
        f"({e}): pip install 'jaxstyle[tf]', or build it elsewhere with `tfds "
        f"build {name} --file_format=array_record` and copy the data_dir.") from e


def find_tfds_builder(name: str, data_dir):
  """The prepared TFDS dataset `name` ('coco/2017', 'mnist:3.0.1') or None.

  Built from the prepared files (`dataset_info.json`, `features.json`), never
  from the dataset's generation code, which would import TensorFlow.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import read_only_builder
  # pylint: enable=g-import-not-at-top
  try:
    return read_only_builder.builder_from_files(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    return None


def tfds_source(data_config: ml_collections.ConfigDict) -> TfdsSource:
  """The prepared split of `data_config.source`, read without TensorFlow."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name, data_dir = data_config.source, data_config.get("data_dir")
  builder = find_tfds_builder(name, data_dir)
  if builder is None:
    if not data_config.get("download", False):
      raise _not_prepared_error(name, data_dir)
    prepare_tfds(name, data_dir)
    builder = find_tfds_builder(name, data_dir)
  file_format = builder.info.file_format
  if file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise ValueError(
        f"TFDS dataset {name!r} in {builder.data_dir} is stored as "
        f"{getattr(file_format, 'value', file_format)}; Grain needs random access "
        "(ArrayRecord). Convert it with `tfds convert_format --dataset_version_dir="
        f"{builder.data_dir} --out_file_format=array_record`, rebuild it with "
        f"`tfds build {name} --file_format=array_record` (both need TensorFlow), "
        "or, for the offline stand-in, rerun `python tools/prepare_offline_coco.py`.")
  if "image" not in builder.info.features:
    raise ValueError(f"TFDS dataset {name!r} has no 'image' feature "
                     f"(features: {list(builder.info.features)})")
  data_source = builder.as_data_source(
      data_config.split, decoders={"image": tfds.decode.SkipDecoding()})
  return TfdsSource(data_source, f"{name}:{data_config.split}")


def image_source(data_config: ml_collections.ConfigDict) -> FolderSource | TfdsSource:
  source = data_config.source
  if source.startswith(FOLDER_PREFIX):
    return FolderSource.from_folder(source[len(FOLDER_PREFIX):])
  return tfds_source(data_config)


# ----------------------------------------------------------------------------
# The stream.


def decode_record(record: str | tuple[str, bytes]) -> np.ndarray:
  """The RGB float image of a record of `image_source`: a file path or (name, bytes)."""
  if isinstance(record, str):
    return image_io.load_image(record)
  return image_io.decode_image(record[1], record[0])


@dataclasses.dataclass(frozen=True)
class Crop:
  """Element `index` of the stream: its record decoded, cropped, augmented.

  A record that fails to decode (e.g. a truncated JPEG) is replaced by the
  next record of the stream, with a warning; the element keeps its position
  and its draws, so the stream and resuming stay exact.
  """
  records: grain.MapDataset  # the shuffled stream, to find stand-ins
  seed: int
  image_size: int
  resize_min: int
  cfg: data_config_lib.AugmentConfig

  def __call__(self, index: int, record: str | tuple[str, bytes]) -> np.ndarray:
    for offset in range(1, _MAX_STAND_INS + 1):
      try:
        image = decode_record(record)
        break
      except image_io.ImageError as e:
        logging.warning("Skipping undecodable image (%s); using the next record", e)
        error, record = e, self.records[index + offset]
    else:
      raise RuntimeError(f"{_MAX_STAND_INS} records in a row failed to decode; the "
                         f"last: {error}")
    return augment.augment(image, index, seed=self.seed, image_size=self.image_size,
                           resize_min=self.resize_min, cfg=self.cfg)


def crops(data_config: ml_collections.ConfigDict, seed: int) -> grain.MapDataset:
  """The global stream of training crops (one float32 S x S x 3 image each)."""
  data_config_lib.validate_data_config(data_config)
  records = (grain.MapDataset.source(image_source(data_config))
             .shuffle(seed=seed % 2**32)
             .repeat())  # reshuffled each epoch
  return records.map_with_index(Crop(
      records, seed=seed, image_size=data_config.image_size,
      resize_min=data_config.get("resize_min") or 0,
      cfg=data_config_lib.parse_augment_config(data_config.get("augment"))))


class GlobalBatches(grain.DatasetIterator):
  """This process's rows of each global batch of a stream; state: the position.

  grain.experimental.ElasticIterator with contiguous rows: there process p
  takes elements p, p + P, ..., so a global batch's rows come in another order
  at each process count; here they are the one-process rows, in order.
  Nothing before the position is read: the stream is
  sliced there, batched, and this process's batches decoded in `mp_prefetch`'s
  worker processes.
  """

  def __init__(self, stream: grain.MapDataset, global_batch_size: int,
               shard: grain.sharding.ShardOptions, read_options: grain.ReadOptions,
               multiprocessing_options: grain.MultiprocessingOptions):
    super().__init__()
    self._batches = None  # started on the first `next`; set first for close()
    if global_batch_size % shard.shard_count:
      raise ValueError(
          f"global_batch_size={global_batch_size} is not divisible by "
          f"jax.process_count()={shard.shard_count}.")
    self._stream = stream
    self._global_batch_size = global_batch_size
    self._shard = shard
    self._read_options = read_options
    self._multiprocessing_options = multiprocessing_options
    self._position = 0

  def _start(self) -> grain.DatasetIterator:
    local = self._global_batch_size // self._shard.shard_count
    batches = (self._stream[self._position:]
               .batch(local, drop_remainder=True)
               [self._shard.shard_index::self._shard.shard_count])
    return iter(batches.to_iter_dataset(self._read_options)
                .mp_prefetch(self._multiprocessing_options,
                             worker_init_fn=exit_with_the_trainer))

  def start_prefetch(self) -> None:
    """Starts the workers now, so that they start up while the caller does
    something else (restores, compiles); idempotent."""
    if self._batches is None:
      self._batches = self._start()
      self._batches.start_prefetch()

  def __next__(self) -> np.ndarray:
    self.start_prefetch()
    batch = next(self._batches)
    self._position += self._global_batch_size
    return batch

  def get_state(self) -> dict[str, int]:
    return {POSITION_KEY: self._position}

  def set_state(self, state: dict[str, int]) -> None:
    self.close()
    self._position = int(state[POSITION_KEY])

  def close(self) -> None:
    if self._batches is not None:
      self._batches.close()
      self._batches = None


def num_workers(data_config) -> int:
  """Decoding processes: `data_config.num_workers`, -1 for one per CPU (≤ 16)."""
  workers = data_config.get("num_workers", -1)
  return min(os.cpu_count() or 1, 16) if workers < 0 else workers


def create_train_dataset(
    data_config: ml_collections.ConfigDict,
    *,
    global_batch_size: int,
    seed: int,
    start_step: int = 0,
) -> GlobalBatches:
  """Infinite iterator of this process's batches of content images.

  Args:
    data_config: `source` ('coco/2017', any TFDS image dataset, or
      'folder:/dir'), `split`, `data_dir`, `download`, `image_size`,
      `resize_min`, optionally `augment` (crop_scale, hflip, rotate_degrees),
      `num_workers` (decoding processes; 0: threads of this process; -1: one
      per CPU, at most 16) and `prefetch` (batches each worker keeps ready).
    global_batch_size: batch size summed over all processes.
    seed: fixes shuffle order, crops and augmentation.
    start_step: first step to produce; resuming at `k` yields the batches that
      steps k, k+1, ... of an uninterrupted run would get, reading nothing
      before them. A checkpointed iterator state (`get_state`, restored with
      `set_state`) does the same.

  Returns:
    A `GlobalBatches` iterator of float32 arrays (L, S, S, 3), L =
    global_batch_size // process_count, S = data_config.image_size, RGB values
    in [0, 1]: process p's batch k is rows [p L, (p + 1) L) of global batch k,
    the elements k B + p L, ... of the global stream (B = global_batch_size).
  """
  if not flags.FLAGS.is_parsed():
    # Grain reads its absl flags (defaults here) when it starts workers;
    # callers other than our CLIs (tests, notebooks) never parsed any.
    flags.FLAGS.mark_as_parsed()
  workers = num_workers(data_config)
  prefetch = data_config.get("prefetch", 2)
  # Each worker computes whole batches, one at a time; in-process (0 workers)
  # threads share the batches.
  read = grain.ReadOptions(num_threads=1 if workers else min(os.cpu_count() or 1, 16),
                           prefetch_buffer_size=prefetch)
  iterator = GlobalBatches(
      crops(data_config, seed), global_batch_size,
      grain.sharding.ShardByJaxProcess(drop_remainder=True), read,
      grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch))
  iterator.set_state({POSITION_KEY: start_step * global_batch_size})
  return iterator


def exit_with_the_trainer(worker_index: int, worker_count: int) -> None:
  """Runs in each decoding process as it starts: a thread that ends the process
  once the process that started it is gone. A closed iterator stops its
  workers, but a trainer killed by SIGKILL or the OOM killer closes nothing,
  and orphaned workers would go on holding memory and CPU."""
  del worker_index, worker_count
  trainer = os.getppid()

  def watch():
    while os.getppid() == trainer:
      time.sleep(0.5)
    os._exit(0)  # pylint: disable=protected-access

  threading.Thread(target=watch, name="exit-with-the-trainer", daemon=True).start()


def position(iterator: GlobalBatches) -> int:
  """Global-stream elements an iterator from `create_train_dataset` has consumed."""
  return iterator.get_state()[POSITION_KEY]
