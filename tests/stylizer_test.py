"""jaxstyle.Stylizer on the tiny model of conftest: kinds in → kinds out, any size,
the same errors as the CLI, the ONNX export without JAX, and the README example."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import jaxstyle
from jaxstyle import images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def stylizer(tiny_workdir):
  return jaxstyle.Stylizer.from_workdir(tiny_workdir)


@pytest.fixture(scope="module")
def photo():
  rng = np.random.default_rng(1)
  return rng.integers(0, 256, (45, 67, 3), np.uint8)  # sides not multiples of 16


def test_import_jaxstyle_stays_light():
  code = ("import sys, jaxstyle\nassert jaxstyle.Stylizer.__name__ == 'Stylizer'\n"
          "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'tensorflow', "
          "'onnxruntime', 'flax'}))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=60, cwd=REPO)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]"


def test_each_kind_comes_back_as_it_went_in(stylizer, photo, tmp_path):
  out_u8 = stylizer(photo)
  assert out_u8.dtype == np.uint8 and out_u8.shape == photo.shape and out_u8.std() > 0
  out_f32 = stylizer(photo.astype(np.float32) / 255)
  assert out_f32.dtype == np.float32 and out_f32.shape == photo.shape
  assert 0 <= out_f32.min() and out_f32.max() <= 1
  np.testing.assert_array_equal(images.to_uint8(out_f32), out_u8)
  assert stylizer(photo.astype(np.float64) / 255).dtype == np.float64
  pil = stylizer(Image.fromarray(photo))
  assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (67, 45)
  np.testing.assert_array_equal(np.asarray(pil), out_u8)
  Image.fromarray(photo).save(tmp_path / "photo.png")
  from_path = stylizer(tmp_path / "photo.png")
  assert isinstance(from_path, Image.Image)
  np.testing.assert_array_equal(np.asarray(from_path), out_u8)


def test_a_list_gives_a_list_of_any_sizes(stylizer, photo):
  batch = [photo, photo[:20, :33], Image.fromarray(photo).convert("L")]
  outs = stylizer(batch)
  assert isinstance(outs, list) and len(outs) == 3
  assert outs[0].shape == (45, 67, 3) and outs[1].shape == (20, 33, 3)
  assert isinstance(outs[2], Image.Image) and outs[2].size == (67, 45)
  np.testing.assert_array_equal(outs[0], stylizer(photo))


def test_max_size_shrinks_the_long_side(stylizer, photo, tmp_path):
  assert stylizer(photo, max_size=32).shape == (21, 32, 3)
  Image.fromarray(photo).save(tmp_path / "photo.png")
  assert stylizer(str(tmp_path / "photo.png"), max_size=32).size == (32, 21)
  assert stylizer(photo, max_size=500).shape == photo.shape  # never enlarged
  with pytest.raises(ValueError, match="max_size must be >= 1"):
    stylizer(photo, max_size=0)


def test_bad_input_raises_the_clis_errors(stylizer, photo, tmp_path):
  broken = tmp_path / "broken.jpg"
  broken.write_bytes(b"plain text, not an image")
  for path, reason in ((broken, "not a recognised image file"),
                       (tmp_path / "missing.jpg", "no such file"),
                       (tmp_path, "is a directory, not an image file")):
    with pytest.raises(images.ImageError) as err:
      stylizer(path)
    assert err.value.path == str(path) and err.value.reason == reason
  cases = [
      (photo[..., 0], "image: expected an HxWx3 RGB array, got shape (45, 67)"),
      (photo[:0], "image: the image is empty"),
      (photo.astype(np.int32), "image: dtype int32 is not supported"),
      (photo.astype(np.float32), "image: float pixels must be in [0, 1], got 0..255"),
      (np.full((8, 8, 3), np.nan, np.float32), "image: the image has NaN"),
  ]
  for bad, message in cases:
    with pytest.raises(images.ImageError, match=re.escape(message)):
      stylizer(bad)
  with pytest.raises(images.ImageError, match=r"images\[1\]: expected an HxWx3"):
    stylizer([photo, photo[..., :2]])
  with pytest.raises(TypeError, match="expected a PIL image, a numpy array or a path"):
    stylizer(3)


def test_onnx_export_gives_the_same_images_without_jax(stylizer, tiny_onnx, photo, tmp_path):
  np.save(tmp_path / "photo.npy", photo.astype(np.float32) / 255)
  code = (
      "import sys\nimport numpy as np\nimport jaxstyle\n"
      f"s = jaxstyle.Stylizer.from_onnx({str(tiny_onnx)!r}, threads=1)\n"
      f"np.save({str(tmp_path / 'out.npy')!r}, s(np.load({str(tmp_path / 'photo.npy')!r})))\n"
      "print(s.size_multiple, sorted({m.split('.')[0] for m in sys.modules} "
      "& {'jax', 'jaxlib', 'tensorflow', 'flax'}))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=120, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == [str(stylizer.size_multiple), "[]"]
  onnx_out = np.load(tmp_path / "out.npy")
  jax_out = stylizer(photo.astype(np.float32) / 255)
  assert onnx_out.shape == photo.shape
  np.testing.assert_allclose(onnx_out, jax_out, atol=1e-4)


def _readme_block(heading: str) -> str:
  with open(os.path.join(REPO, "README.md")) as f:
    readme = f.read()
  section = readme[readme.index(heading):]
  return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_python_api_example_runs(user_dir, tiny_workdir, tiny_onnx):
  """The README's block, verbatim, in a folder with runs/quickstart, export/ and a photo."""
  shutil.copy(os.path.join(jaxstyle.CONTENT_DIR, "amber.jpg"), user_dir / "photo.jpg")
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  proc = subprocess.run([sys.executable, "-c", _readme_block("### Python API")],
                        cwd=user_dir, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with Image.open(user_dir / "photo.jpg") as im:
    scale = 512 / max(im.size)
    size = tuple(round(s * scale) for s in im.size)
  with Image.open(user_dir / "photo_stylized.png") as out:
    assert out.size == size
  assert proc.stdout.splitlines() == [f"{size} (270, 480, 3) uint8", f"{size}"]
