"""A multi-style, strength-controlled model exported with its controls as inputs.

ONNX (`image`, `style_weights` [N], `strength` [1]), Core ML (ImageType plus two
MultiArrays) and SavedModel, each verified against JAX at every style, a blend
and half strength; the ONNX stylizer equals the JAX one.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ["candy", "mosaic", "blend", "candy@0.5"]


@pytest.fixture(scope="module")
def exported(multistyle_run, tmp_path_factory):
  out = tmp_path_factory.mktemp("multistyle_export")
  formats = "onnx,coreml" + (",savedmodel" if _has_tf() else "")
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.export", "--workdir", str(multistyle_run),
       "--out", str(out), "--formats", formats, "--onnx_sizes", "64,128x96",
       "--coreml_sizes", "64,128x96", "--savedmodel_sizes", "64", "--name", "two"],
      cwd=REPO, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out / "two.export.json") as f:
    return out, json.load(f)


def _has_tf():
  import importlib.util  # pylint: disable=g-import-not-at-top
  return importlib.util.find_spec("tensorflow") is not None


def test_every_format_is_verified_at_every_setting(exported):
  _, report = exported
  for fmt, info in report["formats"].items():
    labels = [c["controls"] for c in info["verified"]]
    sizes = {"onnx": 2, "coreml": 2, "savedmodel": 1}[fmt]
    assert labels == [s for s in SETTINGS for _ in range(sizes)], (fmt, labels)
    assert all(c["max_abs_error"] <= info["tolerance"] for c in info["verified"])
    if fmt == "coreml":  # fp16 package
      assert max(c["max_abs_error"] for c in info["verified"]) < 1e-2


def test_onnx_inputs_and_the_onnx_stylizer_equal_jax(exported, multistyle_run):
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  from jaxstyle import Stylizer  # pylint: disable=g-import-not-at-top
  out, _ = exported
  session = ort.InferenceSession(str(out / "two.onnx"), providers=["CPUExecutionProvider"])
  inputs = {i.name: i.shape for i in session.get_inputs()}
  assert inputs["style_weights"] == [2] and inputs["strength"] == [1]
  onnx_stylizer = Stylizer.from_onnx(out / "two.onnx")
  jax_stylizer = Stylizer.from_workdir(multistyle_run)
  assert onnx_stylizer.styles == ["candy", "mosaic"] and onnx_stylizer.strength_control
  photo = np.random.default_rng(0).uniform(size=(48, 40, 3)).astype(np.float32)
  for kwargs in ({"style_weights": "mosaic"}, {"style_weights": "candy=3,mosaic=1"},
                 {"style_weights": "candy", "strength": 0.3},
                 {"style_weights": "mosaic", "preserve_colors": True}):
    np.testing.assert_allclose(onnx_stylizer(photo, **kwargs), jax_stylizer(photo, **kwargs),
                               atol=1e-4, err_msg=str(kwargs))
  with pytest.raises(ValueError, match="has 3 values; this model has 2 styles"):
    onnx_stylizer(photo, style_weights=[1, 0, 0])
  # The graph itself checks the vector's length, naming the input.
  with pytest.raises(Exception, match="style_weights"):
    session.run(None, {"image": np.zeros((1, 3, 64, 64), np.float32),
                       "style_weights": np.ones(3, np.float32),
                       "strength": np.ones(1, np.float32)})


def test_coreml_package_takes_style_weights_and_strength(exported):
  import coremltools as ct  # pylint: disable=g-import-not-at-top
  out, _ = exported
  spec = ct.models.MLModel(str(out / "two.mlpackage"), skip_model_load=True).get_spec()
  inputs = {i.name: i for i in spec.description.input}
  assert list(inputs) == ["image", "style_weights", "strength"]
  assert inputs["image"].type.WhichOneof("Type") == "imageType"
  assert list(inputs["style_weights"].type.multiArrayType.shape) == [2]
  assert list(inputs["strength"].type.multiArrayType.shape) == [1]
  assert "candy,mosaic" in inputs["style_weights"].shortDescription
  meta = spec.description.metadata.userDefined
  assert meta["styles"] == "candy,mosaic" and meta["strength_control"] == "true"
  # The golden files carry the inputs a Mac replays (tools/verify_coreml_macos.py).
  golden = sorted(os.listdir(out / "two.golden"))
  assert "64x64_candy@0.5.npz" in golden and len(golden) == 2 * len(SETTINGS)
  data = np.load(out / "two.golden" / "64x64_blend.npz")
  np.testing.assert_allclose(data["style_weights"], [0.5, 0.5])
  assert data["strength"].tolist() == [1.0]
