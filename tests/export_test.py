"""Export to ONNX, Core ML and TF SavedModel, each checked against JAX.

The CLI exports conftest's tiny model (`tiny_workdir`, trained once per
session) to all three formats and verifies the saved artifacts (Core ML through
the numpy MIL interpreter, up to 2048×2048). Other tests prove the checks can
fail and that a failed export leaves nothing in place of the artifact.
"""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = "64,128x192,256"


def _env():
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


@pytest.fixture(scope="module")
def workdir(tiny_workdir):
  """configs/tiny.py, 3 steps on the shipped styles (conftest: `jaxstyle train`)."""
  return tiny_workdir


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
  """The CLI, all formats; Core ML fp16 verified at 64², 128×192 and 2048²."""
  out = tmp_path_factory.mktemp("export")
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.export", "--workdir", str(workdir), "--out", str(out),
       "--formats", "coreml,onnx,savedmodel", "--onnx_sizes", SMALL,
       "--savedmodel_sizes", SMALL, "--coreml_sizes", "64,128x192,2048", "--name", "tiny"],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out / "tiny.export.json") as f:
    return out, json.load(f)


@pytest.fixture(scope="module")
def model(workdir):
  from jaxstyle.export import model as model_lib
  return model_lib.load(str(workdir))


def test_every_format_verified_within_tolerance(exported):
  out, report = exported
  # fp16: max and 99.9th percentile (exporter.TOLERANCE, P999_TOLERANCE).
  tolerances = {"onnx": (1e-4, 1e-4), "savedmodel": (1e-4, 1e-4), "coreml": (3e-2, 1e-2)}
  for fmt, (tol, p999_tol) in tolerances.items():
    info = report["formats"][fmt]
    assert os.path.exists(info["path"]), fmt
    assert len(info["verified"]) == 3, fmt
    for check in info["verified"]:
      assert 0 <= check["max_abs_error"] <= tol, (fmt, check)
      assert check["p999_abs_error"] <= p999_tol, (fmt, check)
      assert 0 <= check["mean_abs_error"] <= check["p999_abs_error"] <= check["max_abs_error"]
  assert [c["size"] for c in report["formats"]["coreml"]["verified"]][-1] == [2048, 2048]
  assert report["formats"]["onnx"]["verified"][0]["batch"] == 2
  # Leftovers of write-then-rename would be hidden staging folders.
  assert not [p for p in os.listdir(out) if p.startswith(".")]


def test_onnx_graph_is_dynamic_nchw_with_native_ops(exported):
  import onnx
  out, report = exported
  proto = onnx.load(str(out / "tiny.onnx"))
  dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
          for v in (proto.graph.input[0], proto.graph.output[0])]
  assert dims == [["batch", "height", "width", 3]] * 2
  ops = report["formats"]["onnx"]["ops"]
  # The CLI's default onnx_norms='auto' keeps InstanceNormalization when it
  # passes the check, as it does for this model.
  assert ops["Pad"] == 8 and ops["InstanceNormalization"] == 7 and ops["Resize"] == 1
  assert report["formats"]["onnx"]["norms"] == "fast" and "LayerNormalization" not in ops
  assert ops["Transpose"] == 2  # NHWC in and out; NCHW everywhere between
  assert not {"Range", "Slice", "Gather", "Expand", "Reshape", "Shape"} & set(ops)


def test_low_memory_onnx_session_gives_the_same_pixels(exported):
  """jaxstyle.onnx_inference: the serving helper, with and without low_memory."""
  out, _ = exported
  code = f"""
import sys, numpy as np
sys.path.insert(0, {REPO!r})
from jaxstyle import onnx_inference
x = np.random.default_rng(0).random((2, 64, 96, 3), np.float32)
plain = onnx_inference.run(onnx_inference.session({str(out / "tiny.onnx")!r}, 2), x)
assert onnx_inference.map_large_allocations_directly()  # glibc (Linux)
low = onnx_inference.run(onnx_inference.session({str(out / "tiny.onnx")!r}, 2, low_memory=True), x)
assert plain.shape == x.shape and np.array_equal(plain, low), np.abs(plain - low).max()
print("jax" in sys.modules, "jaxstyle.export" in sys.modules)
"""
  # A fresh process: the allocator setting is process-wide, and the helper
  # must not pull in JAX or the exporter.
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split() == ["False", "False"]


def test_coreml_package_image_io_flexible_size_metadata(exported):
  import coremltools as ct
  out, report = exported
  spec = ct.models.MLModel(str(out / "tiny.mlpackage"), skip_model_load=True).get_spec()
  assert spec.specificationVersion == 6  # iOS 15 / macOS 12
  image_in, image_out = spec.description.input[0], spec.description.output[0]
  assert (image_in.name, image_out.name) == ("image", "stylized")
  assert image_in.type.WhichOneof("Type") == image_out.type.WhichOneof("Type") == "imageType"
  size_range = image_in.type.imageType.imageSizeRange
  assert (size_range.heightRange.lowerBound, size_range.heightRange.upperBound) == (64, 2048)
  assert (size_range.widthRange.lowerBound, size_range.widthRange.upperBound) == (64, 2048)
  meta = spec.description.metadata.userDefined
  assert meta["style"] == "mosaic" and meta["training_step"] == "3"
  assert json.loads(meta["config"])["model"]["features"] == [8, 16]
  assert spec.description.metadata.license and spec.description.metadata.shortDescription
  ops = report["formats"]["coreml"]["ops"]
  assert ops["conv"] == 14 and ops["pad"] == 8 and ops["upsample_nearest_neighbor"] == 1
  assert ops["reduce_mean"] == 2 * 7 + 1  # mean-based norms + the centred input
  assert not {"slice_by_index", "gather", "instance_norm", "tile"} & set(ops)
  # fp16: weights stored as fp16, casts only at the fp32 image boundary.
  assert ops["cast"] == 2


def test_golden_files_and_macos_tool(exported):
  out, _ = exported
  golden = sorted(os.listdir(out / "tiny.golden"))
  assert golden == ["128x192.npz", "64x64.npz"]  # 2048² is not written (size)
  data = np.load(out / "tiny.golden" / "64x64.npz")
  assert data["image"].dtype == np.uint8 and data["image"].shape == (64, 64, 3)
  assert np.max(np.abs(data["interpreter"] - data["expected"])) <= float(data["tolerance"])
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "verify_coreml_macos.py"),
                         str(out / "tiny.mlpackage")], capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2 and "needs macOS" in proc.stderr


def test_coreml_fp32_build_matches_jax_to_1e4(model, tmp_path):
  from jaxstyle.export import exporter
  path = str(tmp_path / "fp32.mlpackage")
  info = exporter.build_coreml(model, path, precision="fp32")
  assert "cast" not in info["ops"]
  checks = exporter.verify_coreml(path, model, ((64, 64), (96, 128), (2048, 2048)), "fp32")
  assert all(c.max_abs_error <= 1e-4 for c in checks), checks


def _perturbed(model):
  """Same model, one weight of the last convolution changed by 0.5."""
  params = jax.tree.map(np.array, model.params)
  params["head"]["conv"]["kernel"][1, 1, 0, 0] += 0.5
  return dataclasses.replace(model, params=params, reference_params=model.params)


@pytest.mark.parametrize("fmt", ["onnx", "coreml", "savedmodel"])
def test_one_changed_weight_fails_verification_and_keeps_old_artifact(model, tmp_path, fmt):
  from jaxstyle.export import exporter
  from jaxstyle.export.errors import ExportError
  sizes = {"onnx": ((64, 64),), "savedmodel": ((64, 64),), "coreml": ((64, 64),)}
  good = exporter.export(None, str(tmp_path), (fmt,), model=model, sizes=sizes, name="m",
                         log=lambda _: None)
  path = good["formats"][fmt]["path"]
  before = _fingerprint(path)
  with pytest.raises(ExportError, match=r"64x64 .*max abs error .* > "):
    exporter.export(None, str(tmp_path), (fmt,), model=_perturbed(model), sizes=sizes,
                    name="m", log=lambda _: None)
  assert _fingerprint(path) == before
  assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_auto_norms_fall_back_to_exact_when_fast_misses_the_check(model, tmp_path):
  """onnx_norms='auto' ships InstanceNormalization when it passes the check,
  else the exact rewrite; the tolerance is set between the two graphs' real
  errors on this model."""
  from jaxstyle.export import exporter
  size = ((1024, 1024),)
  errors = {}
  for norms in ("fast", "exact"):
    path = str(tmp_path / f"{norms}.onnx")
    exporter.build_onnx(model, path, norms=norms)
    errors[norms] = exporter.verify_onnx(path, model, size, tolerance=1.0)[0].max_abs_error
  assert errors["fast"] > 1.2 * errors["exact"], errors  # else nothing to choose between
  between = float(np.sqrt(errors["fast"] * errors["exact"]))
  for tolerance, want in ((1e-4, "fast"), (between, "exact")):
    report = exporter.export(None, str(tmp_path / want), ("onnx",), model=model,
                             sizes={"onnx": size}, name="m", log=lambda _: None,
                             tolerances={"onnx": tolerance})
    info = report["formats"]["onnx"]
    assert info["norms"] == want, (tolerance, errors)
    assert ("InstanceNormalization" in info["ops"]) == (want == "fast")
    assert ("norms_fallback_reason" in info) == (want == "exact")
  unverified = exporter.export(None, str(tmp_path / "noverify"), ("onnx",), model=model,
                               name="m", log=lambda _: None, verify=False)
  assert unverified["formats"]["onnx"]["norms"] == "exact"


def _fingerprint(path):
  if os.path.isfile(path):
    with open(path, "rb") as f:
      return f.read()
  return sorted((os.path.relpath(os.path.join(d, n), path), os.path.getsize(os.path.join(d, n)))
                for d, _, names in os.walk(path) for n in names)


def test_cli_fails_with_one_line_naming_the_size(workdir, tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.export", "--workdir", str(workdir), "--out",
       str(tmp_path), "--formats", "coreml", "--coreml_sizes", "64,66x65"],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert "FAILED: coreml: verification size 66x65" in proc.stderr
  assert os.listdir(tmp_path) == []


def test_cli_fp16_tolerance_is_applied_and_the_failure_says_what_to_do(workdir, tmp_path):
  """A tolerance below the tiny model's fp16 error fails, naming both ways out."""
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.export", "--workdir", str(workdir), "--out",
       str(tmp_path), "--formats", "coreml", "--coreml_sizes", "64", "--nogolden",
       "--coreml_fp16_tolerance", "1e-6"],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-2000:]
  line = proc.stderr.strip().splitlines()[-1]
  assert line.startswith("jaxstyle.export: FAILED: coreml-fp16: at 64x64"), line
  assert "> 1e-06 (99.9th percentile" in line and "--coreml_precision fp32" in line, line
  assert os.listdir(tmp_path) == []


def test_fp16_error_sources_tool_prints_its_table(workdir):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "fp16_error_sources.py"), "--workdir",
       str(workdir), "--size", "64x96"], cwd=REPO, env=_env(), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = {line.split(" | ")[0].strip("| "): [float(v) for v in line.strip(" |").split(" | ")[1:]]
          for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line
          and "max" not in line}
  assert len(rows) == 11, proc.stdout
  package, emulated = rows["the fp16 package"], rows["fp32 program, every op and weight rounded"]
  assert 0 < package[0] < 0.05 and 0 < emulated[0] < 0.05
  for mx, p999, mean in rows.values():
    assert 0 <= mean <= p999 <= mx


def test_fp16_check_bounds_the_99_9th_percentile_as_well_as_the_max():
  """A max within tolerance does not pass an error spread over 1% of the pixels."""
  from jaxstyle.export import exporter
  from jaxstyle.export.errors import ExportError
  want = np.full((100, 100, 3), 0.5)
  isolated = want.copy()
  isolated[0, 0, 0] += 0.025                      # one value: max 0.025, p99.9 0
  exporter._compare("coreml-fp16", 3e-2, (100, 100), isolated, want)
  spread = want.copy()
  spread[:10, :10] += 0.02                        # 1% of values: p99.9 0.02
  with pytest.raises(ExportError, match=r"99.9th percentile abs error vs JAX is 0.02 > 0.01"):
    exporter._compare("coreml-fp16", 3e-2, (100, 100), spread, want)
  exporter._compare("onnx", 3e-2, (100, 100), spread, want)  # fp32 formats: the max only


def test_tolerances_must_name_a_check():
  from jaxstyle.export import exporter
  from jaxstyle.export.errors import ExportError
  with pytest.raises(ExportError, match="tolerance coreml-fp61=0.02: keys are"):
    exporter.export(None, "/nonexistent", ("coreml",), model=object(),
                    tolerances={"coreml-fp61": 0.02})


def test_unsupported_onnx_op_is_named():
  import onnx
  from onnx import helper, TensorProto
  from jaxstyle.export import coreml_export
  from jaxstyle.export.errors import ExportError
  graph = helper.make_graph(
      [helper.make_node("Erf", ["image"], ["stylized"], name="the_erf")], "g",
      [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
      [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, "h", "w"])])
  proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
  onnx.checker.check_model(proto)
  with pytest.raises(ExportError, match="ONNX op Erf \\(node the_erf\\)"):
    coreml_export.to_mil(proto)


def _mil_program(build, dtype="fp16"):
  import coremltools as ct
  from coremltools.converters.mil.mil import Builder as mb
  from coremltools.converters.mil.mil import types
  t = types.fp16 if dtype == "fp16" else types.fp32

  @mb.program(input_specs=[mb.TensorSpec((4,), dtype=t)], opset_version=ct.target.iOS16)
  def prog(x):
    return build(mb, x, np.float16 if dtype == "fp16" else np.float32)
  return prog


def test_interpreter_rounds_to_fp16_after_every_op():
  from jaxstyle.export import mil_interpreter
  # (x + 1) - x at x = 2048: 2049 is not an fp16 number, so fp16 gives 0.
  build = lambda mb, x, dt: mb.sub(x=mb.add(x=x, y=dt(1)), y=x)
  x = np.full(4, 2048, np.float16)
  out16, _ = mil_interpreter.run(_mil_program(build), {"x": x})
  out32, _ = mil_interpreter.run(_mil_program(build, "fp32"), {"x": x.astype(np.float32)})
  (y16,), (y32,) = out16.values(), out32.values()
  assert y16.dtype == np.float16 and np.all(y16 == 0)
  assert np.all(y32 == 1)


def test_interpreter_rounds_chosen_ops_of_an_fp32_program_to_fp16():
  """run(round_fp16=...): the emulation tools/fp16_error_sources.py uses."""
  from jaxstyle.export import mil_interpreter
  build = lambda mb, x, dt: mb.sub(x=mb.add(x=x, y=dt(1), name="plus_one"), y=x, name="minus_x")
  prog = _mil_program(build, "fp32")
  x = {"x": np.full(4, 2048, np.float32)}
  rounded = lambda names: (lambda op: op.name in names)
  assert np.all(mil_interpreter.run(prog, x, round_fp16=rounded(set()))[0]["minus_x"] == 1)
  assert np.all(mil_interpreter.run(prog, x, round_fp16=rounded({"plus_one"}))[0]["minus_x"] == 0)
  assert np.all(mil_interpreter.run(prog, x, round_fp16=rounded({"minus_x"}))[0]["minus_x"] == 1)


def test_interpreter_names_the_op_that_overflows_fp16():
  from jaxstyle.export import mil_interpreter
  build = lambda mb, x, dt: mb.relu(x=mb.mul(x=x, y=x, name="square"))
  _, bad = mil_interpreter.run(_mil_program(build), {"x": np.array([1, 2, 300, 3], np.float16)})
  assert (bad.op_name, bad.op_type, bad.count) == ("square", "mul", 1)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_interpreter_block_rearrangements_match_onnxruntime(mode):
  """SpaceToDepth/DepthToSpace lowered to MIL and run by the interpreter equal
  onnxruntime's own kernels (an independent reading of the channel order)."""
  import onnxruntime as ort
  from onnx import TensorProto, helper
  from jaxstyle.export import coreml_export, mil_interpreter
  nodes = [helper.make_node("SpaceToDepth", ["x"], ["s"], blocksize=2),
           helper.make_node("Relu", ["s"], ["r"]),  # keeps the pair from cancelling
           helper.make_node("DepthToSpace", ["r"], ["y"], blocksize=2, mode=mode)]
  vi = lambda n, c, h, w: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, h, w])
  graph = helper.make_graph(nodes, "blocks", [vi("x", 3, 4, 6)], [vi("y", 3, 4, 6)],
                            value_info=[vi("s", 12, 2, 3)])
  proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
  x = np.random.default_rng(0).normal(size=(1, 3, 4, 6)).astype(np.float32)
  want = ort.InferenceSession(proto.SerializeToString(),
                              providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
  if mode == "DCR":  # SpaceToDepth then DCR DepthToSpace is the identity on relu(x)
    np.testing.assert_array_equal(want, np.maximum(x, 0))
  from coremltools.converters.mil.mil import Builder as mb
  from coremltools.converters.mil.mil import types
  import coremltools as ct

  @mb.program(input_specs=[mb.TensorSpec((1, 3, 4, 6), dtype=types.fp32)],
              opset_version=ct.target.iOS15)
  def prog(x):
    values = {"x": x}
    get = values.__getitem__
    for node in nodes:
      values[node.output[0]] = coreml_export._LOWERINGS[node.op_type](mb, node, get, {})
    return values["y"]
  outputs, bad = mil_interpreter.run(prog, {"x": x})
  assert bad is None
  (got,) = outputs.values()
  np.testing.assert_array_equal(got, want)


def test_interpreter_refuses_ops_it_does_not_know():
  from jaxstyle.export import mil_interpreter
  build = lambda mb, x, dt: mb.gelu(x=x)
  with pytest.raises(mil_interpreter.UnsupportedOp, match="gelu"):
    mil_interpreter.run(_mil_program(build, "fp32"), {"x": np.ones(4, np.float32)})


@pytest.mark.parametrize("config_name", ["default", "fullres"])
def test_unet_exports_small_package_with_native_ops(config_name, tmp_path):
  """Random parameters for the default (2×2-patch) and the full-resolution
  architectures: graph shape, package size, numerics."""
  import importlib
  from jaxstyle import models
  from jaxstyle.export import exporter
  from jaxstyle.export import model as model_lib
  config = importlib.import_module(f"configs.{config_name}").get_config().model
  params = models.create_model(config).init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  model = model_lib.from_params(config.to_dict(), params["params"])
  patches = config_name == "default"
  assert (model.num_params, model.multiple) == ((242_275, 16) if patches else (240_979, 8))
  onnx_path = str(tmp_path / "default.onnx")
  ops = exporter.build_onnx(model, onnx_path)["ops"]
  assert ops["Conv"] == 46 and ops["LayerNormalization"] == 23 and ops["Transpose"] == 2
  assert ops.get("SpaceToDepth") == ops.get("DepthToSpace") == (1 if patches else None)
  assert "Reshape" not in ops
  checks = exporter.verify_onnx(onnx_path, model, ((64, 64), (128, 64), (256, 256)))
  assert max(c.max_abs_error for c in checks) <= 1e-4
  fast_path = str(tmp_path / "fast.onnx")
  fast_ops = exporter.build_onnx(model, fast_path, norms="fast")["ops"]
  assert fast_ops["InstanceNormalization"] == 23 and "LayerNormalization" not in fast_ops
  checks = exporter.verify_onnx(fast_path, model, ((64, 64), (128, 64)))
  assert max(c.max_abs_error for c in checks) <= 1e-4
  path = str(tmp_path / "default.mlpackage")
  info = exporter.build_coreml(model, path, "fp16")
  size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
  assert size <= 1_000_000, size
  assert info["ops"]["conv"] == 46 and info["ops"]["pad"] == 24
  assert info["ops"]["upsample_nearest_neighbor"] == 3 and info["ops"]["concat"] == 3
  assert info["ops"].get("space_to_depth") == info["ops"].get("depth_to_space") == (
      1 if patches else None)
  assert "reshape" not in info["ops"] and "transpose" not in info["ops"]
  # The translation of the full architecture is exact in fp32 (random weights
  # say nothing about fp16 error, which the trained tiny model checks above).
  path32 = str(tmp_path / "default32.mlpackage")
  exporter.build_coreml(model, path32, "fp32")
  checks = exporter.verify_coreml(path32, model, ((64, 64), (128, 192)), "fp32")
  assert max(c.max_abs_error for c in checks) <= 1e-4


def test_exact_instance_norm_rewrite_matches_float64_on_a_1024_plane():
  """onnx_graph.exact_instance_norms: the same function as InstanceNormalization
  (scale, bias, epsilon), with statistics good to float32 rounding at 1024²
  (onnxruntime's own InstanceNormalization is ~1e-4 off there)."""
  import onnx
  from onnx import helper, TensorProto
  from jaxstyle import onnx_inference
  from jaxstyle.export import onnx_graph
  c = 4
  scale, bias = np.linspace(0.5, 1.5, c, dtype=np.float32), np.linspace(-1, 1, c, dtype=np.float32)
  graph = helper.make_graph(
      [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)], "g",
      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", c, "h", "w"])],
      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", c, "h", "w"])],
      [onnx.numpy_helper.from_array(scale, "s"), onnx.numpy_helper.from_array(bias, "b")])
  g = onnx_graph.Graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
  assert onnx_graph.exact_instance_norms(g) == 1
  model = g.to_model()
  assert [n.op_type for n in model.graph.node] == ["LayerNormalization", "Mul", "Add"]
  sess = onnx_inference.session(model.SerializeToString(), 2)
  rng = np.random.default_rng(0)
  x = (rng.standard_normal((2, c, 1024, 1024)) * 0.3 + np.arange(c).reshape(1, c, 1, 1))
  x = x.astype(np.float32)
  got = sess.run(None, {"x": x})[0]
  x64 = x.astype(np.float64)
  mean = x64.mean((2, 3), keepdims=True)
  var = ((x64 - mean) ** 2).mean((2, 3), keepdims=True)
  want = (x64 - mean) / np.sqrt(var + 1e-3) * scale.reshape(1, c, 1, 1) + bias.reshape(1, c, 1, 1)
  assert np.abs(got - want).max() <= 3e-6


def test_transformer_net_exports_to_every_format(tmp_path):
  """The other registered network (biased convs, 9×9 kernels, no skips)."""
  from jaxstyle.export import exporter
  from jaxstyle.export import model as model_lib
  from jaxstyle.models.transformer_net import TransformerNet
  config = dict(name="transformer_net", features=(32, 64, 128), num_res_blocks=5)
  params = TransformerNet().init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))["params"]
  model = model_lib.from_params(config, params)
  report = exporter.export(None, str(tmp_path), model=model, name="tn", log=lambda _: None,
                           coreml_precision="fp32", golden=False,
                           sizes={"onnx": ((64, 64), (128, 96)), "savedmodel": ((64, 64),),
                                  "coreml": ((64, 64), (128, 96))})
  onnx_info = report["formats"]["onnx"]  # onnx_norms='auto': either graph, if verified
  norm_op = {"fast": "InstanceNormalization", "exact": "LayerNormalization"}[onnx_info["norms"]]
  assert onnx_info["ops"][norm_op] == 15
  assert report["formats"]["coreml"]["ops"]["conv"] == 16
  for fmt in ("onnx", "coreml", "savedmodel"):
    assert max(c["max_abs_error"] for c in report["formats"][fmt]["verified"]) <= 1e-4


def test_cyclegan_workdir_is_refused_with_a_clear_error(tmp_path):
  from configs import cyclegan_quick
  from jaxstyle import checkpointing
  from jaxstyle.export import model as model_lib
  from jaxstyle.export.errors import ExportError
  checkpointing.save_config(str(tmp_path), cyclegan_quick.get_config())
  with pytest.raises(ExportError, match="is a cyclegan run"):
    model_lib.load(str(tmp_path))
