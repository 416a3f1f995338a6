"""Content-image input pipeline: random S x S crops from TFDS or a folder.

Every element's randomness (shuffle order, crop, augmentation) depends only on
the seed and the element's position in the stream. Resuming at step `k`
therefore skips `k` batches of still-encoded images (file paths, for folders)
and continues with exactly the batches an uninterrupted run would have
produced.

Folder sources are also independent of the process count: every process
builds the same global stream and keeps its slice of each global batch, so
global batch `k` holds the same images for 1 or N processes.
"""

import concurrent.futures
import os
from typing import Iterator

from absl import logging
import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from jaxstyle import augment
from jaxstyle.data_config import validate_data_config  # noqa: F401 (re-exported)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Formats `tf.io.decode_image` can read (as named by PIL).
_DECODABLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
FOLDER_PREFIX = "folder:"


def _configure_tensorflow():
  """Keeps TF off the accelerators and from oversubscribing the host CPUs.

  JAX owns the GPUs/TPUs; a TF that sees them would grab their memory.
  """
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices.
    pass
  try:
    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.config.threading.set_intra_op_parallelism_threads(1)
  except RuntimeError:
    pass


def _dataset_options(data_config) -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True  # Needed for exact resume.
  threads = data_config.get("num_threads", 0) or min(os.cpu_count() or 1, 16)
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  return options


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


def _folder_paths(folder: str, seed: int) -> tf.data.Dataset:
  """Paths of all readable images under `folder`, shuffled forever.

  The same stream on every process (each process checks every header, so all
  agree on the list). Files whose header isn't a decodable image are dropped
  here, with a warning, before positions are assigned, so they don't disturb
  resume. Files that pass the header check but fail to decode (e.g. truncated
  JPEGs) are dropped later by `ignore_errors`; each such file seen before a
  resume point shifts that process's resumed stream by one image, which we
  accept over crashing.
  """
  folder = os.path.expanduser(folder)
  files = list_image_files(folder)
  if not files:
    raise FileNotFoundError(
        f'No images ({", ".join(IMAGE_EXTENSIONS)}) found under {folder!r}.'
    )
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    good = [f for f, ok in zip(files, pool.map(_is_decodable, files)) if ok]
  for f in sorted(set(files) - set(good)):
    logging.warning("Skipping unreadable image file %s", f)
  if not good:
    raise FileNotFoundError(f"No readable images under {folder!r}.")
  ds = tf.data.Dataset.from_tensor_slices(good)
  # A full reshuffle each epoch: the list is small and sorted files cluster.
  ds = ds.shuffle(len(good), seed=seed, reshuffle_each_iteration=True)
  return ds.repeat()


def _tfds_images(data_config, seed: int) -> tf.data.Dataset:
  """Encoded images of this process's part of a TFDS split, shuffled forever.

  Split by `tfds.split_for_jax_process`, so which images a global batch holds
  depends on the process count (unlike folder sources).
  """
  name, data_dir = data_config.source, data_config.get("data_dir")
  download = data_config.get("download", False)
  builder = tfds.builder(name, data_dir=data_dir)
  if not download and not builder.is_prepared():
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared in {builder.data_dir} "
        f"(data_dir={data_dir!r}) and download=False. Run "
        "`python tools/prepare_offline_coco.py` (offline COCO stand-in, "
        "then pass its data_dir), or set --config.data.download=True."
    )
  ds = tfds.load(
      name,
      split=tfds.split_for_jax_process(data_config.split, drop_remainder=True),
      data_dir=data_dir,
      download=download,
      shuffle_files=True,
      read_config=tfds.ReadConfig(
          shuffle_seed=seed,
          options=_dataset_options(data_config),
          try_autocache=False,
      ),
      # Parse only the image and leave it encoded: skipping on resume is
      # then cheap, and we decode (to RGB) ourselves.
      decoders=tfds.decode.PartialDecoding(
          {"image": True}, decoders={"image": tfds.decode.SkipDecoding()}
      ),
  )
  ds = ds.map(lambda x: x["image"], num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.repeat()
  return ds.shuffle(data_config.shuffle_buffer, seed=seed)


def _decode_and_crop(encoded, index, *, seed, image_size, resize_min,
                     augment_cfg: augment.AugmentConfig):
  """Decodes to RGB, resizes the short side, takes a seeded random crop.

  With `augment_cfg` off this is the plain random crop; crop_scale (1, 1) and
  rotate_degrees 0 keep exactly that crop (and its draw), so only hflip is
  added on top.
  """
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  short = tf.minimum(height, width)
  target = tf.maximum(resize_min if resize_min > 0 else short, image_size)
  scale = tf.cast(target, tf.float32) / tf.cast(short, tf.float32)
  hw = tf.cast(tf.stack([height, width]), tf.float32)
  new_size = tf.maximum(tf.cast(tf.math.ceil(hw * scale), tf.int32), image_size)
  image = tf.cast(image, tf.float32)
  image = tf.cond(
      tf.equal(target, short),
      lambda: image,
      lambda: tf.image.resize(image, new_size, antialias=True),
  )
  if augment_cfg.plain_crop:
    crop_seed = tf.stack([tf.constant(seed, tf.int64), index])
    image = tf.image.stateless_random_crop(
        image, [image_size, image_size, 3], seed=crop_seed
    )
  else:
    transform = augment.sample_transform(
        tf.shape(image)[:2], index, seed=seed, image_size=image_size,
        cfg=augment_cfg,
    )
    image = augment.rotated_crop(image, transform, image_size)
  if augment_cfg.hflip:
    image = augment.random_flip(image, index, seed=seed)
  return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def create_train_dataset(
    data_config: ml_collections.ConfigDict,
    *,
    global_batch_size: int,
    seed: int,
    start_step: int = 0,
) -> Iterator[np.ndarray]:
  """Infinite iterator of this process's batches of content images.

  Args:
    data_config: `source` ('coco/2017' or 'folder:/dir'), `split`, `data_dir`,
      `download`, `image_size`, `shuffle_buffer`, `resize_min`, optionally
      `augment` (crop_scale, hflip, rotate_degrees), `num_parallel_calls` and
      `num_threads`.
    global_batch_size: batch size summed over all processes.
    seed: fixes shuffle order, crops and augmentation.
    start_step: first step to produce; resuming at `k` yields the batches that
      steps k, k+1, ... of an uninterrupted run would get.

  Returns:
    Iterator of float32 arrays (global_batch_size // process_count, S, S, 3)
    with RGB values in [0, 1], S = data_config.image_size. For folder sources,
    process p's batch is rows [p * local, (p + 1) * local) of the global batch
    a single process would produce.
  """
  validate_data_config(data_config)
  augment_cfg = augment.parse_config(data_config.get("augment"))
  _configure_tensorflow()
  process, num_processes = jax.process_index(), jax.process_count()
  if global_batch_size % num_processes:
    raise ValueError(
        f"global_batch_size={global_batch_size} is not divisible by "
        f"jax.process_count()={num_processes}."
    )
  local_batch = global_batch_size // num_processes

  source = data_config.source
  # Positions are fixed here, before any reading/decoding, so skipping is cheap.
  if source.startswith(FOLDER_PREFIX):
    ds = _folder_paths(source[len(FOLDER_PREFIX):], seed)
    # Global positions; keep this process's slice of each global batch.
    ds = ds.enumerate().skip(start_step * global_batch_size)
    ds = ds.filter(
        lambda i, _: (i % global_batch_size) // local_batch == process)
    read = lambda index, path: (index, tf.io.read_file(path))
  else:
    ds = _tfds_images(data_config, seed)
    ds = ds.enumerate().skip(start_step * local_batch)
    read = lambda index, encoded: (index, encoded)

  def decode(index, encoded_or_path):
    index, encoded = read(index, encoded_or_path)
    return _decode_and_crop(
        encoded, index,
        seed=seed,
        image_size=data_config.image_size,
        resize_min=data_config.get("resize_min") or 0,
        augment_cfg=augment_cfg,
    )

  parallel = data_config.get("num_parallel_calls") or tf.data.AUTOTUNE
  ds = ds.map(decode, num_parallel_calls=parallel)
  if source.startswith(FOLDER_PREFIX):
    ds = ds.ignore_errors(log_warning=True)  # See `_folder_paths`.
  ds = ds.batch(local_batch, drop_remainder=True)
  ds = ds.prefetch(tf.data.AUTOTUNE)
  ds = ds.with_options(_dataset_options(data_config))
  return iter(tfds.as_numpy(ds))
