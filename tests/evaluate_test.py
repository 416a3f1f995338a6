"""Table-1 evaluator: metrics on known images, an end-to-end run, ratings."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage
from scipy import stats
from skimage import metrics as skmetrics

import jaxstyle
from configs import eval as eval_config
from jaxstyle import images as image_io
from jaxstyle import metrics
from jaxstyle.evaluate import ratings
from jaxstyle.evaluate import runner
from jaxstyle.evaluate import tables
from jaxstyle.models import vgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@pytest.fixture(scope="module")
def net():
  return vgg.load_loss_network("vgg16", "hed")


@pytest.fixture(scope="module")
def content():
  return image_io.load_image(jaxstyle.CONTENT_DIR + "/amber.jpg")[200:264, 300:364]


def _gram_cosine_reference(net, a, b, layer):
  """Gram matrices in float64 numpy from the VGG features, then their cosine."""
  def gram(x):
    f = np.asarray(net.features(x[None], [layer])[layer], np.float64)[0]
    f = f.reshape(-1, f.shape[-1])
    return f.T @ f / f.shape[0]
  ga, gb = gram(a), gram(b)
  return float(np.sum(ga * gb) / np.linalg.norm(ga) / np.linalg.norm(gb))


def test_metrics_on_identical_and_degraded_images(net, content):
  rng = np.random.default_rng(0)
  noisy = np.clip(content + rng.normal(0, 0.1, content.shape), 0, 1).astype(np.float32)
  blurred = ndimage.gaussian_filter(content, sigma=(2, 2, 0)).astype(np.float32)
  # Identical: SSIM 1, PSNR ∞, style similarity 1, content distance 0.
  assert metrics.ssim(content, content) == 1.0
  assert metrics.psnr(content, content) == math.inf
  assert metrics.style_similarity(net, content, content, LAYERS) == pytest.approx(1, abs=1e-5)
  assert metrics.content_distance(net, content, content, LAYERS) == 0.0
  for degraded in (noisy, blurred):
    # skimage with the same settings, and PSNR from its definition in float64.
    assert metrics.ssim(degraded, content) == pytest.approx(skmetrics.structural_similarity(
        content.astype(np.float64), degraded.astype(np.float64), data_range=1.0,
        channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False),
        abs=1e-9)
    mse = np.mean((degraded.astype(np.float64) - content) ** 2)
    assert metrics.psnr(degraded, content) == pytest.approx(10 * np.log10(1 / mse), rel=1e-9)
    want = np.mean([_gram_cosine_reference(net, degraded, content, k) for k in LAYERS])
    got = metrics.style_similarity(net, degraded, content, LAYERS)
    assert got == pytest.approx(want, abs=1e-5)
    # Each metric moves the right way.
    assert metrics.ssim(degraded, content) < 1
    assert math.isfinite(metrics.psnr(degraded, content))
    assert got < 1 - 1e-4
    assert metrics.content_distance(net, degraded, content, LAYERS) > 0.01
  # A stronger degradation of either kind moves every metric further.
  worse_noise = np.clip(content + rng.normal(0, 0.3, content.shape), 0, 1).astype(np.float32)
  worse_blur = ndimage.gaussian_filter(content, sigma=(5, 5, 0)).astype(np.float32)
  for light, heavy in ((noisy, worse_noise), (blurred, worse_blur)):
    assert metrics.ssim(heavy, content) < metrics.ssim(light, content)
    assert metrics.psnr(heavy, content) < metrics.psnr(light, content)
    assert (metrics.style_similarity(net, heavy, content, LAYERS)
            < metrics.style_similarity(net, light, content, LAYERS))
    assert (metrics.content_distance(net, heavy, content, LAYERS)
            > metrics.content_distance(net, light, content, LAYERS))


def test_infinite_psnr_in_every_table_format(tmp_path):
  row = dict(key="x", label="identity", kind="checkpoint", status="ok", reason="",
             psnr_mean=math.inf, psnr_std=math.nan, ssim_mean=1.0, ssim_std=0.0)
  report = {"conditions": {"summary": "s", "style_layers": [], "content_layers": [],
                           "image_size": 8, "speed_repeats": 1, "speed_warmup": 0},
            "rows": [row], "paper_reference": {}}
  tables.write_tables(str(tmp_path), report)
  md = (tmp_path / "table1.md").read_text()
  assert "| identity | ok | — | — | — | — | 1.000 ± 0.000 | ∞ |" in md
  assert "not available to us offline" in md  # no invented paper numbers
  with open(tmp_path / "table1.csv") as f:
    assert float(next(csv.DictReader(f))["psnr_mean"]) == math.inf
  data = json.loads((tmp_path / "table1.json").read_text())  # strict JSON
  assert data["rows"][0]["psnr_mean"] == "inf" and data["rows"][0]["psnr_std"] is None


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  """A tiny U-Net trained by --train_missing and exported to ONNX by
  --export_missing, Gatys, a missing row, an unreadable image."""
  root = tmp_path_factory.mktemp("evaluate")
  content_dir = root / "content"
  content_dir.mkdir()
  shutil.copy(jaxstyle.CONTENT_DIR + "/amber.jpg", content_dir / "amber.jpg")
  (content_dir / "broken.jpg").write_bytes(b"not a jpeg")
  out = root / "out"
  data = "folder:" + os.path.join(REPO, "jaxstyle", "assets", "styles")
  command = [
      sys.executable, "-m", "jaxstyle.evaluate", "--config",
      os.path.join(REPO, "configs", "eval.py"), "--train_missing", "--export_missing",
      f"--config.out_dir={out}", f"--config.content_dir={content_dir}",
      "--config.image_size=32", "--config.style_size=64",
      "--config.speed.warmup=1", "--config.speed.repeats=2",
      "--config.rows=('unet','johnson','gatys')",
      f"--config.models.unet.workdir={root / 'unet'}",
      "--config.models.unet.train_config=configs/tiny.py",
      f"--config.models.unet.train_overrides=('--config.data.source={data}',)",
      f"--config.models.johnson.workdir={root / 'no_such_run'}",
      "--config.models.johnson.train_config=",
      "--config.models.gatys.nst.num_steps=2",
  ]
  proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=REPO))
  assert proc.returncode == 0, proc.stderr[-4000:]
  return root, out, proc


def test_end_to_end_table_gallery_and_marked_rows(evaluated):
  root, out, proc = evaluated
  for name in ("table1.md", "table1.csv", "table1.json", "gallery.html", "rating.html",
               "rating_key.json", "images/amber__unet.png", "images/amber__gatys.png",
               "images/content_amber.png", "images/style.png"):
    assert (out / name).exists(), name
  report = json.loads((out / "table1.json").read_text())
  rows = {r["key"]: r for r in report["rows"]}
  assert [r["key"] for r in report["rows"]] == ["unet", "johnson", "gatys"]
  unet, johnson, gatys = rows["unet"], rows["johnson"], rows["gatys"]
  assert johnson["status"] == "missing" and "no_such_run" in johnson["reason"]
  assert unet["status"] == "ok" and unet["steps"] == 3
  # Training minutes: the run's own steps × steady step time, not the wall clock.
  summary = json.loads((root / "unet" / "summary.json").read_text())
  assert unet["train_min"] == pytest.approx(summary["step_time_s"] * 3 / 60)
  assert "train_min" not in gatys
  assert gatys["status"] == "ok" and gatys["steps"] == 2
  assert [s["path"].endswith("broken.jpg") for s in report["skipped_images"]] == [True]
  assert report["conditions"]["content_images"] == ["amber"]
  # The metrics in the table are those of the written outputs (8-bit PNGs:
  # SSIM/PSNR to within the rounding).
  content = image_io.load_image(str(out / "images" / "content_amber.png"))
  for row in (unet, gatys):
    output = image_io.load_image(str(out / row["per_image"]["amber"]["image"]))
    assert output.shape == (32, 32, 3)
    assert row["ssim_mean"] == pytest.approx(metrics.ssim(output, content), abs=0.02)
    assert 0 < row["style_similarity_mean"] <= 1 and row["content_distance_mean"] >= 0
    assert row["images_per_s_jax"] > 0
    assert row["peak_rss_mb_jax"] >= row["baseline_rss_mb_jax"] > 50
  assert unet["onnx"].endswith(".onnx") and unet["images_per_s_onnx"] > 0
  assert "onnxruntime" in unet["backend_onnx"] and unet["peak_rss_mb_onnx"] > 0
  assert "images_per_s_onnx" not in gatys
  assert unet["params"] > 0 and unet["param_mb"] == pytest.approx(unet["params"] * 4 / 2**20)
  md = (out / "table1.md").read_text()
  assert "missing: no checkpoint" in md and "broken.jpg" in md
  assert "Paper's reported numbers" in md
  gallery = (out / "gallery.html").read_text()
  assert 'src="images/amber__unet.png"' in gallery and "missing" in gallery
  assert "http" not in gallery.replace("http-equiv", "")  # no external assets
  key = json.loads((out / "rating_key.json").read_text())["codes"]
  assert sorted(key.values()) == ["Gatys NST", "U-Net (ours)"]
  assert "skipped" in proc.stderr and "broken.jpg" in proc.stderr


def test_empty_content_folder_still_measures_speed(evaluated, tmp_path):
  root, _, _ = evaluated
  config = eval_config.get_config()
  empty = tmp_path / "empty"
  empty.mkdir()
  config.out_dir = str(tmp_path / "out")
  config.content_dir = str(empty)
  config.image_size = 32
  config.speed.warmup, config.speed.repeats = 1, 2
  config.rows = ("unet",)
  config.models.unet.workdir = str(root / "unet")
  report = runner.evaluate(config)
  (row,) = report["rows"]
  assert row["status"] == "ok" and row["images_per_s_jax"] > 0
  assert "ssim_mean" not in row and report["content_images"] == []
  assert "No content images" in (tmp_path / "out" / "gallery.html").read_text()


# ---------------------------------------------------------------------------- ratings


def _write_sheet(path, rows, header=ratings.COLUMNS):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def test_ratings_aggregate_matches_hand_computation(tmp_path):
  key = tmp_path / "rating_key.json"
  key.write_text(json.dumps({"codes": {"A": "U-Net (ours)", "B": "Gatys NST"}}))
  rng = np.random.default_rng(0)
  scores = rng.integers(1, 6, size=(3, 4, 2))  # rater × image × model, 'style' only
  paths = []
  for r in range(3):
    path = tmp_path / f"r{r}.csv"
    _write_sheet(path, [[f"rater{r}", f"img{i}", code, "style", scores[r, i, m]]
                        for i in range(4) for m, code in enumerate("AB")])
    paths.append(str(path))
  block = ratings.load_and_aggregate(paths, str(key))
  for m, label in enumerate(["U-Net (ours)", "Gatys NST"]):
    rater_means = scores[:, :, m].mean(axis=1)
    mean, sd = rater_means.mean(), rater_means.std(ddof=1)
    half = stats.t.ppf(0.975, 2) * sd / np.sqrt(3)
    got = block["models"][label]["style"]
    assert got["mean"] == pytest.approx(mean, abs=1e-12)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((mean - half, mean + half), abs=1e-9)
    assert got["raters"] == 3 and got["scores"] == 12
  one = ratings.load_and_aggregate(paths[:1], str(key))["models"]["Gatys NST"]["style"]
  assert math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])


@pytest.mark.parametrize("rows,header,message", [
    ([["a", "img", "A", "style", "3"]], ("rater", "image", "model_code", "score"),
     r"bad\.csv:1: missing column\(s\) \['criterion'\]"),
    ([["a", "img", "A", "style", "3"], ["a", "img", "A", "quality", "7"]], ratings.COLUMNS,
     r"bad\.csv:3: score 7 is outside 1–5"),
    ([["a", "img", "A", "style", "x"]], ratings.COLUMNS, r"bad\.csv:2: score 'x'"),
    ([["a", "img", "Z", "style", "2"]], ratings.COLUMNS, r"bad\.csv:2: model_code 'Z'"),
    ([["a", "img", "A", "colour", "2"]], ratings.COLUMNS, r"bad\.csv:2: criterion 'colour'"),
])
def test_bad_rating_sheets_name_file_and_line(tmp_path, rows, header, message):
  path = tmp_path / "bad.csv"
  _write_sheet(path, rows, header)
  with pytest.raises(ratings.RatingsError, match=message):
    ratings.read_sheet(str(path), {"A": "U-Net (ours)"})


def test_ratings_cli_reports_bad_file_clearly(tmp_path):
  (tmp_path / "rating_key.json").write_text(json.dumps({"codes": {"A": "m"}}))
  _write_sheet(tmp_path / "bad.csv", [["a", "img", "A", "style", "0"]])
  proc = subprocess.run([sys.executable, "-m", "jaxstyle.evaluate", "--ratings",
                         str(tmp_path / "bad.csv"), "--out", str(tmp_path)], cwd=REPO,
                        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO),
                        timeout=300)
  assert proc.returncode == 1
  assert "bad.csv:2: score 0 is outside 1–5" in proc.stderr
