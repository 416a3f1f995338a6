"""Tests for jaxstyle.images: every test image is generated here in tmp_path."""

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from jaxstyle import images
from jaxstyle.images import (
    ImageError,
    find_images,
    load_image,
    output_path_for,
    pad_to_multiple,
    save_png,
    stylize_files,
)


def _quadrants(h=64, w=96):
  """Four flat colour blocks: survive JPEG and make rotations easy to see."""
  a = np.zeros((h, w, 3), np.uint8)
  a[: h // 2, : w // 2] = (255, 0, 0)
  a[: h // 2, w // 2 :] = (0, 255, 0)
  a[h // 2 :, : w // 2] = (0, 0, 255)
  a[h // 2 :, w // 2 :] = (255, 255, 0)
  return a


def _sha(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------- load_image


@pytest.mark.parametrize("ext,tol", [("png", 0.0), ("jpg", 0.05)])
def test_rgb_round_trip(tmp_path, ext, tol):
  src = _quadrants()
  path = tmp_path / f"x.{ext}"
  Image.fromarray(src).save(path, quality=95) if ext == "jpg" else Image.fromarray(src).save(path)
  img = load_image(str(path))
  assert img.dtype == np.float32 and img.shape == (64, 96, 3)
  # Compare away from block edges, where JPEG rings.
  inner = (slice(4, 28), slice(4, 44))
  np.testing.assert_allclose(img[inner], src[inner] / 255.0, atol=tol + 1e-6)


def test_grayscale_gives_three_equal_channels(tmp_path):
  gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
  Image.fromarray(gray).save(tmp_path / "g.png")
  img = load_image(str(tmp_path / "g.png"))
  assert img.shape == (16, 16, 3)
  np.testing.assert_array_equal(img[..., 0], img[..., 1])
  np.testing.assert_array_equal(img[..., 0], img[..., 2])
  np.testing.assert_allclose(img[..., 0], gray / 255.0, atol=1e-6)


def test_rgba_composited_over_white(tmp_path):
  a = np.zeros((2, 2, 4), np.uint8)
  a[0, 0] = (10, 20, 30, 0)  # fully transparent -> white
  a[0, 1] = (0, 0, 255, 255)  # opaque -> unchanged
  a[1, 0] = (0, 0, 0, 128)  # half black over white -> ~0.5 grey
  Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
  img = load_image(str(tmp_path / "t.png"))
  np.testing.assert_allclose(img[0, 0], 1.0)
  np.testing.assert_allclose(img[0, 1], (0, 0, 1))
  np.testing.assert_allclose(img[1, 0], 1 - 128 / 255, atol=1e-6)


def test_palette_with_transparency(tmp_path):
  p = Image.new("P", (2, 1))
  p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
  p.putpixel((0, 0), 0)
  p.putpixel((1, 0), 1)
  p.save(tmp_path / "p.png", transparency=1)
  img = load_image(str(tmp_path / "p.png"))
  np.testing.assert_allclose(img[0, 0], (1, 0, 0))
  np.testing.assert_allclose(img[0, 1], (1, 1, 1))  # transparent index -> white


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
  a = np.array([[65535, 32768, 0, 255]], np.uint16)
  Image.fromarray(a).save(tmp_path / "deep.png")
  img = load_image(str(tmp_path / "deep.png"))
  np.testing.assert_allclose(img[0, :, 0], [1.0, 32768 / 65535, 0.0, 255 / 65535], atol=1e-6)


@pytest.mark.parametrize(
    "make,name,expected",
    [
        (lambda: Image.new("CMYK", (3, 2), (0, 0, 0, 0)), "c.jpg", 1.0),
        (lambda: Image.new("1", (3, 2), 1), "b.png", 1.0),
        (lambda: Image.new("LA", (3, 2), (0, 0)), "la.png", 1.0),
        (lambda: Image.fromarray(np.full((2, 3), 0.25, np.float32)), "f.tif", 0.25),
    ],
)
def test_other_modes(tmp_path, make, name, expected):
  make().save(tmp_path / name)
  img = load_image(str(tmp_path / name))
  assert img.shape == (2, 3, 3) and img.dtype == np.float32
  np.testing.assert_allclose(img, expected, atol=0.02)


@pytest.mark.parametrize("make,name", [
    (lambda rng: Image.fromarray(rng.integers(0, 256, (5, 7, 3), np.uint8)), "rgb.png"),
    (lambda rng: Image.fromarray(rng.integers(0, 256, (5, 7), np.uint8)), "l.png"),
    (lambda rng: Image.fromarray(rng.integers(0, 256, (5, 7, 4), np.uint8)), "rgba.png"),
    (lambda rng: Image.fromarray(rng.integers(0, 256, (5, 7, 3), np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=8), "p.png"),
    (lambda rng: Image.fromarray(rng.integers(0, 65536, (5, 7), np.uint16)), "deep.png"),
    (lambda rng: Image.new("CMYK", (7, 5), (10, 200, 30, 0)), "c.jpg"),
])
def test_as_uint8_is_the_float_image_rounded(tmp_path, make, name):
  make(np.random.default_rng(0)).save(tmp_path / name)
  as_float = load_image(str(tmp_path / name))
  as_bytes = load_image(str(tmp_path / name), as_uint8=True)
  assert as_bytes.dtype == np.uint8 and as_bytes.shape == as_float.shape
  np.testing.assert_array_equal(as_bytes, images.to_uint8(as_float))
  shrunk = load_image(str(tmp_path / name), max_size=4, as_uint8=True)
  np.testing.assert_array_equal(shrunk, images.to_uint8(load_image(str(tmp_path / name),
                                                                   max_size=4)))


@pytest.mark.parametrize("orientation,k", [(6, -1), (8, 1)])  # 6: rotate CW, 8: CCW
def test_exif_orientation_applied(tmp_path, orientation, k):
  src = _quadrants(64, 96)
  exif = Image.Exif()
  exif[0x0112] = orientation
  Image.fromarray(src).save(tmp_path / "r.jpg", exif=exif, quality=95)
  img = load_image(str(tmp_path / "r.jpg"))
  assert img.shape == (96, 64, 3)
  expected = np.rot90(src, k=k) / 255.0
  inner = (slice(4, 44), slice(4, 28))
  np.testing.assert_allclose(img[inner], expected[inner], atol=0.05)


def test_max_size_shrinks_long_side(tmp_path):
  Image.fromarray(_quadrants(100, 200)).save(tmp_path / "big.png")
  assert load_image(str(tmp_path / "big.png"), max_size=50).shape == (25, 50, 3)
  assert load_image(str(tmp_path / "big.png"), max_size=500).shape == (100, 200, 3)


def _truncated_jpeg(path):
  Image.fromarray(_quadrants()).save(path.with_suffix(".full.jpg"))
  data = path.with_suffix(".full.jpg").read_bytes()
  path.write_bytes(data[: len(data) // 2])
  path.with_suffix(".full.jpg").unlink()


def test_bad_files_raise_image_error_naming_the_file(tmp_path):
  _truncated_jpeg(tmp_path / "half.jpg")
  (tmp_path / "x.jpg").write_text("this is not a picture\n")
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "adir.png").mkdir()
  cases = {
      "half.jpg": "truncated",
      "x.jpg": "not a recognised image",
      "empty.png": "empty",
      "missing.png": "no such file",
      "adir.png": "directory",
  }
  for name, words in cases.items():
    path = str(tmp_path / name)
    with pytest.raises(ImageError) as info:
      load_image(path)
    assert path in str(info.value) and words in str(info.value)
    assert info.value.path == path and "\n" not in str(info.value)


# ----------------------------------------------------------------- save_png


def test_save_png_is_atomic_and_valid(tmp_path):
  src = np.linspace(-0.5, 1.5, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
  out = tmp_path / "o.png"
  save_png(src, str(out))
  assert os.listdir(tmp_path) == ["o.png"]  # no temp files left behind
  with Image.open(out) as im:
    assert im.format == "PNG" and im.mode == "RGB"
    back = np.asarray(im)
  np.testing.assert_array_equal(back, np.round(np.clip(src, 0, 1) * 255).astype(np.uint8))


def test_save_png_failure_leaves_no_partial_file(tmp_path, monkeypatch):
  out = tmp_path / "o.png"
  save_png(np.zeros((2, 2, 3)), str(out))
  before = _sha(out)

  def failing_save(self, fp, *args, **kwargs):
    fp.write(b"\x89PNG\r\n\x1a\n half a file")
    raise OSError("No space left on device")

  monkeypatch.setattr(Image.Image, "save", failing_save)
  with pytest.raises(OSError, match="No space"):
    save_png(np.ones((2, 2, 3)), str(out))
  with pytest.raises(OSError):
    save_png(np.ones((2, 2, 3)), str(tmp_path / "new.png"))
  assert os.listdir(tmp_path) == ["o.png"]  # old file intact, no temp, no new.png
  assert _sha(out) == before


# ----------------------------------------------------------------- batch helpers


@pytest.mark.parametrize("shape,multiple", [((7, 10, 3), 4), ((3, 5, 3), 8), ((8, 16, 3), 8), ((5, 6, 3), 1)])
def test_pad_to_multiple_round_trip(shape, multiple):
  image = np.random.default_rng(0).random(shape, dtype=np.float32)
  padded, (h, w) = pad_to_multiple(image, multiple)
  assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
  assert padded.shape[0] - h < multiple and padded.shape[1] - w < multiple
  np.testing.assert_array_equal(padded[:h, :w], image)


def test_find_images(tmp_path):
  for name in ["b.PNG", "a.jpg", "notes.txt", ".hidden.jpg"]:
    (tmp_path / name).write_bytes(b"x")
  (tmp_path / "sub.png").mkdir()
  loose = tmp_path / "loose.dat"
  loose.write_bytes(b"x")
  found = find_images([str(tmp_path), str(loose), str(tmp_path / "gone.jpg")])
  names = [os.path.basename(p) for p in found]
  assert names == ["a.jpg", "b.PNG", "loose.dat", "gone.jpg"]


def test_output_path_never_equals_input(tmp_path):
  src = tmp_path / "x_stylized.png"
  Image.fromarray(_quadrants()).save(src)
  for suffix in ["_stylized", ""]:
    out = output_path_for(str(src), str(tmp_path), suffix)
    assert os.path.realpath(out) != os.path.realpath(src)
  assert output_path_for(str(src), str(tmp_path)) == str(tmp_path / "x_stylized_stylized.png")
  # Via a different spelling of the same directory.
  out = output_path_for(str(src), str(tmp_path / "." / ""), "")
  assert os.path.realpath(out) != os.path.realpath(src)


def test_output_paths_for_shared_stems_are_distinct(tmp_path):
  taken = set()
  outs = []
  for name in ["a.jpg", "a.png", "a.png"]:
    out = output_path_for(str(tmp_path / name), str(tmp_path / "o"), taken=taken)
    taken.add(images._key(out))
    outs.append(os.path.basename(out))
  assert outs == ["a_stylized.png", "a_png_stylized.png", "a_stylized-2.png"]


def test_stylize_files_continues_past_bad_files(tmp_path, capsys):
  folder = tmp_path / "in"
  folder.mkdir()
  Image.fromarray(_quadrants(30, 41)).save(folder / "a.png")
  Image.fromarray(_quadrants(17, 9)).save(folder / "a.jpg")  # same stem as a.png
  _truncated_jpeg(folder / "corrupt.jpg")
  (folder / "note.png").write_text("not an image")
  hashes = {p: _sha(p) for p in folder.iterdir()}

  seen_shapes = []

  def invert(x):
    seen_shapes.append(x.shape)
    return 1.0 - x

  # Write next to the inputs: the hardest case for "never overwrite an input".
  written, failures = stylize_files([str(folder)], str(folder), invert, multiple=8, progress=False)

  assert len(written) == 2 and len(failures) == 2
  assert {os.path.basename(p) for p, _ in failures} == {"corrupt.jpg", "note.png"}
  assert all(s[0] % 8 == 0 and s[1] % 8 == 0 for s in seen_shapes)
  err_lines = capsys.readouterr().err.strip().splitlines()
  assert len(err_lines) == 2
  assert all(line.startswith("jaxstyle: skipped ") for line in err_lines)
  assert {p: _sha(p) for p in hashes} == hashes  # inputs byte-identical
  # Sorted order: a.jpg claims a_stylized.png, so a.png gets the disambiguated name.
  assert [os.path.basename(p) for p in written] == ["a_stylized.png", "a_png_stylized.png"]
  src = load_image(str(folder / "a.png"))
  np.testing.assert_allclose(load_image(written[1]), 1.0 - src, atol=1 / 255)


def test_stylize_files_survives_apply_fn_errors_and_missing_files(tmp_path, capsys):
  Image.fromarray(_quadrants(8, 8)).save(tmp_path / "big.png")
  Image.fromarray(_quadrants(4, 4)).save(tmp_path / "small.png")

  def oom_on_big(x):
    if x.shape[0] > 4:
      raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory\nwith a long XLA dump")
    return x

  written, failures = stylize_files(
      [str(tmp_path / "big.png"), str(tmp_path / "missing.jpg"), str(tmp_path / "small.png")],
      str(tmp_path / "out" / "nested"),
      oom_on_big,
      progress=False,
  )
  assert [os.path.basename(p) for p in written] == ["small_stylized.png"]
  assert [r for _, r in failures] == [
      "RuntimeError: RESOURCE_EXHAUSTED: Out of memory",
      "no such file",
  ]
  assert len(capsys.readouterr().err.strip().splitlines()) == 2
