r"""Prepares a small, offline stand-in for COCO-2017 with the real TFDS builder.

Training reads `coco/2017` as TFDS prepares it, in the ArrayRecord format that
Grain reads with random access and without TensorFlow, exactly as it would on
a cluster. Where COCO can't be downloaded (CI, air-gapped machines) this tool
writes the five archives that the `coco/2017` builder downloads, with the real
internal layout but built from images that ship with scikit-image, puts them
in TFDS's download cache under the names the builder looks for, and runs the
unmodified builder (which needs TensorFlow: `pip install 'jaxstyle[tf]'`).
Nothing is fetched from the network. A copy of the prepared folder is all a
JAX-only training host needs.

Usage:

  python tools/prepare_offline_coco.py            # into <repo>/.cache/...
  python tools/prepare_offline_coco.py --num_train=200 --force

Then read it like real COCO (what jaxstyle.input_pipeline does):

  tfds.builder_from_directory('<repo>/.cache/tensorflow_datasets/coco/2017/1.1.0'
                              ).as_data_source('train')
"""

import argparse
import datetime
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
import zipfile

import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / ".cache" / "tensorflow_datasets"

DATASET = "coco/2017"
ROOT_URL = "http://images.cocodataset.org/"
# Written next to the prepared dataset so that reruns can tell it is ours.
MARKER_NAME = "jaxstyle_offline_coco.json"
# A real train2017 has 118,287 images; anything this large is never ours.
REAL_COCO_MIN_TRAIN = 10_000
# Short side of every generated image is drawn from this range (COCO-like).
SHORT_SIDE_RANGE = (320, 480)

# The 80 COCO categories with their real (non-contiguous) ids.
COCO_CATEGORIES = [
    (1, "person", "person"), (2, "bicycle", "vehicle"),
    (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"),
    (7, "train", "vehicle"), (8, "truck", "vehicle"), (9, "boat", "vehicle"),
    (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"),
    (15, "bench", "outdoor"), (16, "bird", "animal"), (17, "cat", "animal"),
    (18, "dog", "animal"), (19, "horse", "animal"), (20, "sheep", "animal"),
    (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"),
    (27, "backpack", "accessory"), (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"),
    (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"),
    (41, "skateboard", "sports"), (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"),
    (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"),
    (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"),
    (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"),
    (61, "cake", "food"), (62, "chair", "furniture"),
    (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"),
    (70, "toilet", "furniture"), (72, "tv", "electronic"),
    (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"),
    (77, "cell phone", "electronic"), (78, "microwave", "appliance"),
    (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"),
    (84, "book", "indoor"), (85, "clock", "indoor"), (86, "vase", "indoor"),
    (87, "scissors", "indoor"), (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
]

# scikit-image sample images: (file, category id of the main box, keep gray).
# Grayscale sources stay grayscale JPEGs, as ~1% of real COCO images are, so
# that readers have to handle 1-channel images.
SOURCES = [
    ("astronaut.png", 1, False),
    ("chelsea.png", 17, False),
    ("coffee.png", 47, False),
    ("rocket.jpg", 5, False),
    ("hubble_deep_field.jpg", 72, False),
    ("ihc.png", 51, False),
    ("retina.jpg", 53, False),
    ("motorcycle_left.png", 4, False),
    ("motorcycle_right.png", 4, False),
    ("color.png", 86, False),
    ("logo.png", 84, False),
    ("horse.png", 19, False),
    ("camera.png", 1, True),
    ("coins.png", 85, True),
    ("brick.png", 62, True),
    ("grass.png", 64, True),
]

SPLITS = ("train", "val", "test")
# Random access for Grain (TFDS's default, tfrecord, is sequential only).
FILE_FORMAT = "array_record"


def _skimage_data_dir():
  import skimage  # pylint: disable=g-import-not-at-top
  return pathlib.Path(skimage.__file__).parent / "data"


def _load_source(fname, keep_gray):
  """Loads a sample image as RGB (alpha flattened on white) or as L."""
  img = Image.open(_skimage_data_dir() / fname)
  img.load()
  if img.mode in ("RGBA", "LA", "P"):
    img = img.convert("RGBA")
    background = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(background, img)
  return img.convert("L" if keep_gray else "RGB")


def _derive_image(src, rng):
  """A random crop, flip, rescale and colour change of `src` (short >= 320)."""
  w, h = src.size
  area = rng.uniform(0.4, 1.0)
  aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
  cw = int(min(w, round(w * np.sqrt(area * aspect))))
  ch = int(min(h, round(h * np.sqrt(area / aspect))))
  x0 = int(rng.integers(0, w - cw + 1))
  y0 = int(rng.integers(0, h - ch + 1))
  img = src.crop((x0, y0, x0 + cw, y0 + ch))
  if rng.random() < 0.5:
    img = ImageOps.mirror(img)
  short = int(rng.integers(SHORT_SIDE_RANGE[0], SHORT_SIDE_RANGE[1] + 1))
  scale = short / min(img.size)
  size = tuple(max(short, round(s * scale)) for s in img.size)
  img = img.resize(size, Image.Resampling.BICUBIC)
  img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
  if img.mode == "RGB":
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
  return img


def _boxes(width, height, category_id, rng):
  """One box around most of the image plus up to two smaller ones."""
  boxes = []
  x, y = rng.uniform(0.0, 0.12) * width, rng.uniform(0.0, 0.12) * height
  bw = width * rng.uniform(0.75, 0.98) - x
  bh = height * rng.uniform(0.75, 0.98) - y
  boxes.append((category_id, [x, y, bw, bh]))
  for _ in range(int(rng.integers(0, 3))):
    bw, bh = width * rng.uniform(0.1, 0.4), height * rng.uniform(0.1, 0.4)
    x, y = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
    other = COCO_CATEGORIES[int(rng.integers(len(COCO_CATEGORIES)))][0]
    boxes.append((other, [x, y, bw, bh]))
  return [(c, [round(float(v), 2) for v in b]) for c, b in boxes]


def _json_header(split_name):
  return {
      "info": {
          "description": (
              f"Offline stand-in for COCO {split_name}, generated by "
              "jaxstyle tools/prepare_offline_coco.py from scikit-image "
              "sample images."
          ),
          "version": "1.0",
          "year": 2017,
          "date_created": datetime.date.today().isoformat(),
      },
      "licenses": [{
          "id": 1,
          "name": "BSD-3-Clause (scikit-image sample data)",
          "url": "https://scikit-image.org/docs/stable/license.html",
      }],
  }


def build_release(counts, seed):
  """Returns {archive name: {member path: bytes}} for a COCO-2017 release.

  Args:
    counts: number of images per split, {'train': .., 'val': .., 'test': ..}.
    seed: makes the release (pixels, ids, boxes) fully reproducible.
  """
  rng = np.random.default_rng(seed)
  sources = [(_load_source(f, gray), cat) for f, cat, gray in SOURCES]
  total = sum(counts[s] for s in SPLITS)
  # COCO ids are sparse 6-digit numbers; file names are the zero-padded id.
  ids = rng.choice(np.arange(1, 600_000), size=total, replace=False)
  order = rng.permutation(total) % len(sources)  # every split sees variety

  categories = [
      {"supercategory": sup, "id": cid, "name": name}
      for cid, name, sup in COCO_CATEGORIES
  ]
  archives = {}
  annotations_zip = {}
  next_image, next_ann_id = 0, 1
  for split in SPLITS:
    split_name = f"{split}2017"
    members, images, annotations = {}, [], []
    for _ in range(counts[split]):
      src, category_id = sources[order[next_image]]
      image_id = int(ids[next_image])
      next_image += 1
      img = _derive_image(src, rng)
      buf = io.BytesIO()
      img.save(buf, format="JPEG", quality=90)
      file_name = f"{image_id:012d}.jpg"
      members[f"{split_name}/{file_name}"] = buf.getvalue()
      width, height = img.size
      images.append({
          "license": 1,
          "file_name": file_name,
          "coco_url": f"{ROOT_URL}{split_name}/{file_name}",
          "height": height,
          "width": width,
          "date_captured": "2013-11-14 11:18:45",
          "id": image_id,
      })
      if split == "test":
        continue  # The test split has no annotations.
      for cat, (x, y, bw, bh) in _boxes(width, height, category_id, rng):
        annotations.append({
            "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]],
            "area": round(bw * bh, 2),
            "iscrowd": 0,
            "image_id": image_id,
            "bbox": [x, y, bw, bh],
            "category_id": cat,
            "id": next_ann_id,
        })
        next_ann_id += 1
    archives[f"zips/{split_name}.zip"] = members
    meta = dict(_json_header(split_name), images=images, categories=categories)
    if split == "test":
      archives["annotations/image_info_test2017.zip"] = {
          "annotations/image_info_test2017.json": json.dumps(meta).encode()
      }
    else:
      meta["annotations"] = annotations
      annotations_zip[f"annotations/instances_{split_name}.json"] = (
          json.dumps(meta).encode()
      )
  archives["annotations/annotations_trainval2017.zip"] = annotations_zip
  return archives


def _atomic_write(path, write_fn):
  """Writes via a temporary file in the same folder, then renames."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    with os.fdopen(fd, "wb") as f:
      write_fn(f)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def _write_zip(path, members):
  def write(f):
    with zipfile.ZipFile(f, "w") as zf:
      for name, data in sorted(members.items()):
        # JPEGs are already compressed; COCO's own zips store them too.
        method = zipfile.ZIP_STORED if name.endswith(".jpg") else (
            zipfile.ZIP_DEFLATED)
        zf.writestr(name, data, compress_type=method)
  _atomic_write(path, write)


def seed_download_cache(builder, archives, download_dir):
  """Puts `archives` where the builder's DownloadManager looks for them.

  The manager accepts a cached download at
  `download_dir/<dataset>/get_dl_fname(url, registered_sha256)` when an
  `.INFO` file sits beside it, and then trusts the registered size/checksum
  instead of re-hashing the file. We register nothing new: the names come
  from the builder's own `url_infos`.
  """
  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.download import resource as resource_lib
  url_infos = builder.url_infos
  for rel_url, members in archives.items():
    url = ROOT_URL + rel_url
    if url not in url_infos:
      raise RuntimeError(f"{url} is not a registered {DATASET} download.")
    info = url_infos[url]
    path = (
        download_dir / builder.name
        / resource_lib.get_dl_fname(url, info.checksum)
    )
    _write_zip(path, members)
    resource_lib.write_info_file(
        url=url,
        path=path,
        dataset_name=builder.name,
        original_fname=pathlib.PurePosixPath(rel_url).name,  # zip => unzip
        url_info=info,
    )


def _read_marker(builder):
  path = pathlib.Path(builder.data_dir) / MARKER_NAME
  return json.loads(path.read_text()) if path.exists() else None


def prepare_offline_coco(
    data_dir=DEFAULT_DATA_DIR,
    num_train=48,
    num_val=8,
    num_test=4,
    seed=0,
    force=False,
    file_format=FILE_FORMAT,
):
  """Builds the offline release and prepares `coco/2017` in `data_dir`.

  `file_format` is TFDS's; jaxstyle reads only array_record (tests write
  tfrecord, what earlier versions of this tool wrote, to check the upgrade).

  Returns:
    The prepared dataset's directory (`<data_dir>/coco/2017/<version>`).
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tensorflow_datasets as tfds
  try:
    tf.config.set_visible_devices([], "GPU")  # Preparing needs no accelerator.
  except RuntimeError:  # TF's devices are already initialised.
    pass
  tfds.disable_progress_bar()

  start = time.time()
  data_dir = pathlib.Path(data_dir).expanduser().resolve()
  counts = {"train": num_train, "val": num_val, "test": num_test}
  if min(counts.values()) < 1:
    raise ValueError(f"Every split needs at least one image, got {counts}.")
  # A release prepared by an older version of this tool (tfrecord, no
  # file_format in its marker) does not match, so it is rebuilt.
  wanted = {"counts": counts, "seed": seed, "file_format": file_format}

  # Opened in the format it was prepared in (asking for another one raises).
  builder = tfds.builder(DATASET, data_dir=os.fspath(data_dir))
  if builder.is_prepared():
    marker = _read_marker(builder)
    num_prepared = builder.info.splits["train"].num_examples
    if marker is None and (num_prepared >= REAL_COCO_MIN_TRAIN or not force):
      raise SystemExit(
          f"{builder.data_dir} holds a {DATASET} ({num_prepared} train "
          "images) that this tool did not write; refusing to replace it. "
          "Pass a different --data_dir"
          + ("." if num_prepared >= REAL_COCO_MIN_TRAIN else ", or --force.")
      )
    if marker is not None and not force and all(
        marker.get(k) == v for k, v in wanted.items()
    ):
      print(f"Offline {DATASET} already prepared in {builder.data_dir} "
            f"({counts}); nothing to do. Use --force to rebuild.")
      return pathlib.Path(builder.data_dir)
    shutil.rmtree(builder.data_dir)
  builder = tfds.builder(DATASET, data_dir=os.fspath(data_dir), file_format=file_format)

  # Our own download folder, so a real COCO download cache is never touched
  # and stale extractions (which TFDS reuses) never leak into a rebuild.
  download_dir = data_dir / "downloads" / "jaxstyle_offline_coco"
  shutil.rmtree(download_dir, ignore_errors=True)

  archives = build_release(counts, seed)
  seed_download_cache(builder, archives, download_dir)
  t_release = time.time() - start

  builder.download_and_prepare(
      download_dir=os.fspath(download_dir),
      download_config=tfds.download.DownloadConfig(try_download_gcs=False),
  )
  for split, tfds_split in zip(SPLITS, ("train", "validation", "test")):
    got = builder.info.splits[tfds_split].num_examples
    if got != counts[split]:
      raise RuntimeError(f"{tfds_split}: prepared {got}, expected {counts}.")

  marker = dict(
      wanted,
      created=datetime.datetime.now().isoformat(timespec="seconds"),
      note="Offline stand-in for COCO-2017; not the real dataset.",
  )
  _atomic_write(
      pathlib.Path(builder.data_dir) / MARKER_NAME,
      lambda f: f.write(json.dumps(marker, indent=2).encode()),
  )
  shutil.rmtree(download_dir / "extracted", ignore_errors=True)

  if file_format == FILE_FORMAT:
    # Read it back as training will: random access, no TensorFlow.
    source = tfds.builder_from_directory(builder.data_dir).as_data_source("train")
    shape = source[0]["image"].shape
  else:
    shape = next(iter(builder.as_dataset(split="train").take(1)))["image"].shape
  print(
      f"Prepared offline {DATASET} in {builder.data_dir}: {counts} images "
      f"(release built in {t_release:.1f}s, total {time.time() - start:.1f}s; "
      f"first train image {tuple(shape)})."
  )
  return pathlib.Path(builder.data_dir)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.fspath(DEFAULT_DATA_DIR),
                      help="TFDS data_dir to prepare coco/2017 in.")
  parser.add_argument("--num_train", type=int, default=48)
  parser.add_argument("--num_val", type=int, default=8)
  parser.add_argument("--num_test", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--force", action="store_true",
                      help="Rebuild even if already prepared.")
  args = parser.parse_args(argv)
  return prepare_offline_coco(
      data_dir=args.data_dir,
      num_train=args.num_train,
      num_val=args.num_val,
      num_test=args.num_test,
      seed=args.seed,
      force=args.force,
  )


if __name__ == "__main__":
  main(sys.argv[1:])
