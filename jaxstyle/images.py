"""Image reading/writing and the batch-stylize loop.

Everything here works on float32 HxWx3 RGB arrays in [0, 1]. Reading is
deliberately forgiving about formats (modes, bit depths, EXIF rotation) and
strict about broken files: any file we cannot use raises `ImageError` with a
message that names the file, so a batch run can report it and move on.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from jaxstyle import atomic_files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


class ImageError(ValueError):
  """An input file that cannot be used as an RGB image.

  `str(err)` is one sentence naming the file and the reason; `err.path` and
  `err.reason` are kept separately so callers can format their own line.
  """

  def __init__(self, path: str, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = path
    self.reason = reason


# --------------------------------------------------------------------------- reading

# Default working size of stylization (long side, px). A trained network paints
# strokes of a fixed size in pixels (set by config.style.size), so the larger
# the photo, the finer its texture looks: at 1024 px a phone photo keeps
# visible strokes and bounded memory (Turi Create stylizes at ≤ 800 px).
# Stylize at full resolution with max_size 0 (CLI) / None (API).
DEFAULT_MAX_SIZE = 1024
# Larger images are stylized in tiles of this side, halo included
# (`jaxstyle.tiling`; README, "Large photos": larger is faster, smaller needs less memory).
DEFAULT_TILE_SIZE = 1024


def load_image(path: str, max_size: int | None = None, *, as_uint8: bool = False) -> np.ndarray:
  """Reads `path` as float32 HxWx3 RGB in [0, 1], upright per its EXIF tag.

  Transparent images are composited over white (the usual "paper" a user
  expects behind a logo or screenshot). High-bit-depth images are scaled by
  their real bit depth, so 16-bit white is 1.0 rather than being clipped.
  If `max_size` is given the image is shrunk so its long side is at most
  that many pixels (never enlarged). `as_uint8` returns 8-bit RGB instead, a
  quarter of the memory (a 48-MP photo: 144 MB, not 576).
  """
  path = os.fspath(path)
  if max_size is not None and max_size < 1:
    raise ValueError(f"max_size must be >= 1, got {max_size}")
  # Check the cheap, common mistakes first so the message is specific.
  if not os.path.exists(path):
    raise ImageError(path, "no such file")
  if os.path.isdir(path):
    raise ImageError(path, "is a directory, not an image file")
  try:
    if os.path.getsize(path) == 0:
      raise ImageError(path, "file is empty")
  except PermissionError:
    raise ImageError(path, "permission denied") from None
  array = _decode(path, path, as_uint8=as_uint8 and max_size is None)
  if max_size is not None:
    array = shrink(array, max_size)
    if as_uint8:
      array = to_uint8(array)
  return array


def decode_image(data: bytes, name: str) -> np.ndarray:
  """Encoded image bytes (a dataset record) as `load_image` returns a file;
  `name` says where they came from in an `ImageError`."""
  if not data:
    raise ImageError(name, "file is empty")
  return _decode(io.BytesIO(data), name)


def _decode(source, name: str, as_uint8: bool = False) -> np.ndarray:
  """Opens and decodes a path or file object; any failure is an ImageError."""
  try:
    with Image.open(source) as img:
      img.load()  # decode now, inside the try, so truncation is caught here
      return from_pil(img, as_uint8=as_uint8)
  except PermissionError:
    raise ImageError(name, "permission denied") from None
  except UnidentifiedImageError:
    raise ImageError(name, "not a recognised image file") from None
  except Image.DecompressionBombError as e:
    raise ImageError(name, f"image is too large to load safely ({e})") from None
  except OSError as e:
    # Pillow reports truncated/corrupt data as OSError ("image file is truncated").
    raise ImageError(name, f"image data is truncated or corrupt ({e})") from None
  except Exception as e:  # Pillow plugins raise assorted types on bad data.
    raise ImageError(name, f"could not decode image ({type(e).__name__}: {e})") from None


def from_pil(img: Image.Image, as_uint8: bool = False) -> np.ndarray:
  """A decoded Pillow image as load_image returns a file: upright, RGB in [0, 1]
  (or uint8: 8-bit images without conversion, others rounded)."""
  rgb = _to_rgb01(ImageOps.exif_transpose(img), as_uint8)
  return to_uint8(rgb) if as_uint8 and rgb.dtype != np.uint8 else rgb


def _to_rgb01(img: Image.Image, keep_uint8: bool = False) -> np.ndarray:
  """Converts any Pillow mode to float32 HxWx3 in [0, 1]; `keep_uint8`: an
  opaque 8-bit image as its uint8 RGB instead."""
  mode = img.mode
  if mode.startswith("I;16"):  # 16-bit grayscale (PNG, TIFF), any byte order
    gray = np.asarray(img).astype(np.float32) / 65535.0
    return _gray_to_rgb(gray)
  if mode == "I":  # 32-bit signed container; the real depth may be smaller
    data = np.asarray(img).astype(np.float64)
    bits = _declared_bits(img) or (16 if data.max(initial=0) <= 65535 else 31)
    gray = data / float(2 ** min(bits, 31) - 1)
    return _gray_to_rgb(np.clip(gray, 0.0, 1.0).astype(np.float32))
  if mode == "F":  # float TIFF: assume [0, 1]; rescale if it clearly isn't
    gray = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(gray.max(initial=0.0))
    if peak > 1.0:
      gray = gray / peak
    return _gray_to_rgb(np.clip(gray, 0.0, 1.0))

  # 8-bit modes (L, LA, P, PA, 1, RGB, RGBA, CMYK, YCbCr, ...): let Pillow convert.
  has_alpha = any(band in ("A", "a") for band in img.getbands())
  if has_alpha or "transparency" in img.info:
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    return (rgb * alpha + (1.0 - alpha)).astype(np.float32)  # over white
  rgb = np.asarray(img.convert("RGB"))
  if keep_uint8:
    return rgb
  rgb = rgb.astype(np.float32)
  rgb /= 255.0  # in place: a 48-MP photo is 576 MB as float32
  return rgb


def _declared_bits(img: Image.Image) -> int | None:
  """Bits per sample a TIFF declares, or None if the file doesn't say."""
  tags = getattr(img, "tag_v2", None)
  bits = tags.get(258) if tags is not None else None  # BitsPerSample
  if isinstance(bits, tuple):
    bits = bits[0] if bits else None
  return int(bits) if bits else None


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
  return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)


def shrink(array: np.ndarray, max_size: int) -> np.ndarray:
  """LANCZOS-downsizes so the long side is <= max_size, in float to keep precision."""
  h, w = array.shape[:2]
  scale = max_size / max(h, w)
  if scale >= 1.0:
    return array
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  channels = [
      np.asarray(
          Image.fromarray(np.ascontiguousarray(array[..., c])).resize(
              size, Image.Resampling.LANCZOS
          )
      )
      for c in range(3)
  ]
  # LANCZOS overshoots slightly at sharp edges.
  return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- writing


def to_uint8(array01: np.ndarray) -> np.ndarray:
  """Float pixels in [0, 1] (clipped; NaN → 0) as 8-bit, rounded to nearest."""
  array = np.nan_to_num(np.asarray(array01, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
  return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_png(array01: np.ndarray, path: str) -> None:
  """Writes an HxWx3 float image in [0, 1] (clipped), or uint8, as an 8-bit PNG.

  The PNG is written to a hidden temp file in the destination directory and
  then renamed over `path`, so an interrupted run never leaves a half-written
  file under the final name.
  """
  path = os.fspath(path)
  array = np.asarray(array01)
  if array.ndim != 3 or array.shape[-1] != 3:
    raise ValueError(f"expected an HxWx3 image, got shape {array.shape}")
  pixels = array if array.dtype == np.uint8 else to_uint8(array)

  with atomic_files.replacing(path, binary=True) as f:
    Image.fromarray(pixels).save(f, format="PNG")


# --------------------------------------------------------------------------- batch helpers


def find_images(inputs: Sequence[str]) -> list[str]:
  """Expands CLI arguments into a list of files to stylize.

  Files are kept whatever their extension (load_image will say if they are
  not images) and missing paths are kept so the caller reports them as
  failures instead of silently doing nothing. Directories expand to their
  image files, sorted, non-recursive; hidden files (e.g. macOS "._x.jpg")
  are skipped. A file named twice is only processed once.
  """
  found: list[str] = []
  for arg in inputs:
    arg = os.fspath(arg)
    if os.path.isdir(arg):
      for name in sorted(os.listdir(arg)):
        full = os.path.join(arg, name)
        if (
            not name.startswith(".")
            and name.lower().endswith(IMAGE_EXTENSIONS)
            and os.path.isfile(full)
        ):
          found.append(full)
    else:
      found.append(arg)
  seen: set[str] = set()
  unique = []
  for path in found:
    key = _key(path)
    if key not in seen:
      seen.add(key)
      unique.append(path)
  return unique


def pad_to_multiple(image: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
  """Pads bottom/right so H and W are multiples of `multiple`.

  Networks with strided downsampling need this; reflection avoids the dark
  seams zero padding would produce. Edge padding is used instead when the
  image is too small to reflect. Returns (padded, (h, w)) so callers can
  crop back with `out[:h, :w]`.
  """
  if multiple < 1:
    raise ValueError(f"multiple must be >= 1, got {multiple}")
  h, w = image.shape[:2]
  pad_h, pad_w = -h % multiple, -w % multiple
  if pad_h == 0 and pad_w == 0:
    return image, (h, w)
  mode = "reflect" if pad_h < h and pad_w < w else "edge"
  widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
  return np.pad(image, widths, mode=mode), (h, w)


def _key(path: str) -> str:
  """A comparable identity for a path (symlinks resolved, case-folded where the OS does)."""
  return os.path.normcase(os.path.realpath(path))


def _same_file(a: str, b: str) -> bool:
  if _key(a) == _key(b):
    return True
  try:
    return os.path.samefile(a, b)  # catches hard links and case-insensitive disks
  except OSError:
    return False


def output_path_for(
    input_path: str,
    output_dir: str,
    suffix: str = "_stylized",
    *,
    taken: set[str] | None = None,
) -> str:
  """Returns `<output_dir>/<stem><suffix>.png`, never the input file itself.

  `taken` holds `_key()`s of paths already claimed (other inputs, earlier
  outputs of this run). On a clash the source extension is added to the name
  (a.jpg -> a_jpg_stylized.png), then a counter; since inputs are processed
  in a fixed order the chosen names are deterministic.
  """
  taken = taken if taken is not None else set()
  stem, ext = os.path.splitext(os.path.basename(os.fspath(input_path)))
  candidates = [f"{stem}{suffix}.png"]
  if ext:
    candidates.append(f"{stem}_{ext.lstrip('.').lower()}{suffix}.png")
  n = 2
  while True:
    for name in candidates:
      out = os.path.join(output_dir, name)
      if _key(out) not in taken and not _same_file(out, input_path):
        return out
    candidates = [f"{stem}{suffix}-{n}.png"]
    n += 1


def stylize_files(
    inputs: Sequence[str],
    output_dir: str,
    apply_fn: Callable[[np.ndarray], np.ndarray],
    *,
    multiple: int = 1,
    max_size: int | None = None,
    progress: bool = True,
    as_uint8: bool = False,
) -> tuple[list[str], list[tuple[str, str]]]:
  """Stylizes every image in `inputs`, writing PNGs into `output_dir`.

  `as_uint8`: `apply_fn` gets 8-bit images (`load_image(as_uint8=True)`).

  A failure in one file (unreadable image, or `apply_fn` raising, e.g. out
  of memory) is reported as one `jaxstyle: skipped <path>: <reason>` line on
  stderr and the batch carries on. Inputs are never overwritten.
  Returns (written_paths, [(input_path, reason), ...]).
  """
  files = find_images(inputs)
  os.makedirs(output_dir, exist_ok=True)
  taken = {_key(p) for p in files}  # no output may land on any input
  written: list[str] = []
  failures: list[tuple[str, str]] = []
  for path in tqdm(files, desc="stylize", unit="img", disable=not progress, file=sys.stderr):
    # Claim the name before trying, so names don't depend on which files fail.
    out = output_path_for(path, output_dir, taken=taken)
    taken.add(_key(out))
    try:
      image = load_image(path, max_size=max_size, as_uint8=as_uint8)
      padded, (h, w) = pad_to_multiple(image, multiple)
      result = np.asarray(apply_fn(padded))  # float in [0, 1], or uint8 (large images)
      if result.shape[:2] != padded.shape[:2] or result.shape[-1:] != (3,):
        raise ValueError(
            f"model returned shape {result.shape} for input of shape {padded.shape}"
        )
      save_png(result[:h, :w], out)
    except Exception as e:
      reason = _one_line_reason(e)
      failures.append((path, reason))
      tqdm.write(f"jaxstyle: skipped {path}: {reason}", file=sys.stderr)
      continue
    written.append(out)
  return written, failures


def _one_line_reason(err: Exception) -> str:
  """First line of an error, short enough for a log line (XLA OOM messages are huge)."""
  text = err.reason if isinstance(err, ImageError) else f"{type(err).__name__}: {err}"
  text = (text.strip().splitlines() or [type(err).__name__])[0]
  return text if len(text) <= 300 else text[:297] + "..."
