"""Metrics against independent computations on known images."""

import numpy as np
import pytest
from scipy import ndimage

import jaxstyle
from jaxstyle import images as image_io
from jaxstyle import metrics
from jaxstyle.models import vgg


def _ssim_reference(x, y, sigma=1.5, radius=5):
  """Wang et al. 2004 in float64 with scipy's Gaussian filter, per channel."""
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  blur = lambda a: ndimage.gaussian_filter(a, sigma, truncate=radius / sigma)
  values = []
  for ch in range(3):
    a, b = x[..., ch].astype(np.float64), y[..., ch].astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
         / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    # skimage drops the border where the window is incomplete.
    values.append(s[radius:-radius, radius:-radius].mean())
  return float(np.mean(values))


@pytest.fixture(scope="module")
def content():
  image = image_io.load_image(jaxstyle.CONTENT_DIR + "/amber.jpg")
  return image[:96, :128]


def test_ssim_matches_independent_reference(content):
  noisy = np.clip(content + np.random.default_rng(0).normal(0, 0.1, content.shape), 0, 1)
  assert metrics.ssim(noisy, content) == pytest.approx(
      _ssim_reference(noisy, content), abs=1e-6)


def test_identical_images_give_ssim_one_and_infinite_psnr(content):
  assert metrics.ssim(content, content) == pytest.approx(1.0, abs=1e-12)
  assert metrics.psnr(content, content) == float("inf")


def test_psnr_matches_formula_and_degradation_lowers_both(content):
  rng = np.random.default_rng(1)
  light = np.clip(content + rng.normal(0, 0.02, content.shape), 0, 1)
  heavy = np.clip(content + rng.normal(0, 0.2, content.shape), 0, 1)
  mse = np.mean((light.astype(np.float64) - content) ** 2)
  assert metrics.psnr(light, content) == pytest.approx(-10 * np.log10(mse), rel=1e-9)
  assert metrics.psnr(heavy, content) < metrics.psnr(light, content)
  assert metrics.ssim(heavy, content) < metrics.ssim(light, content) < 1.0


def test_mismatched_shapes_are_rejected(content):
  with pytest.raises(ValueError, match="same shape"):
    metrics.ssim(content[:50], content)


def test_gram_cosine_matches_numpy():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(2, 5, 5)), rng.normal(size=(2, 5, 5))
  want = [np.dot(x.ravel(), y.ravel()) / np.linalg.norm(x) / np.linalg.norm(y)
          for x, y in zip(a, b)]
  np.testing.assert_allclose(metrics.gram_cosine(a, b), want, rtol=1e-5)


def test_style_similarity_is_one_for_the_style_and_lower_for_content(content):
  net = vgg.load_loss_network("vgg16", "hed")
  style = image_io.load_image(jaxstyle.STYLES_DIR + "/mosaic.jpg")[:96, :96]
  layers = ["relu1_2", "relu2_2", "relu3_3"]
  assert metrics.style_similarity(net, style, style, layers) == pytest.approx(1.0, abs=1e-5)
  # Gram matrices are per-pixel averages: a differently sized crop of the
  # same texture stays close, the photo is further away.
  other = metrics.style_similarity(net, content, style, layers)
  assert other < metrics.style_similarity(
      net, image_io.load_image(jaxstyle.STYLES_DIR + "/mosaic.jpg")[100:180, 100:200],
      style, layers)
  assert other < 0.99


def _content_distance_reference(net, output, content, layers):
  """Each image through VGG on its own, the relative error in float64 numpy."""
  values = []
  for k in layers:
    a = np.asarray(net.features(output[None], [k])[k], np.float64)
    b = np.asarray(net.features(content[None], [k])[k], np.float64)
    values.append(((a - b) ** 2).sum() / (b ** 2).sum())
  return float(np.mean(values))


def test_content_distance_zero_for_identical_and_grows_with_degradation(content):
  net = vgg.load_loss_network("vgg16", "hed")
  layers = ["relu2_2", "relu4_2"]
  assert metrics.content_distance(net, content, content, layers) == pytest.approx(0.0, abs=1e-9)
  rng = np.random.default_rng(3)
  light = np.clip(content + rng.normal(0, 0.03, content.shape), 0, 1).astype(np.float32)
  heavy = np.clip(content + rng.normal(0, 0.2, content.shape), 0, 1).astype(np.float32)
  blurred = ndimage.gaussian_filter(content, sigma=(3, 3, 0)).astype(np.float32)
  d_light = metrics.content_distance(net, light, content, layers)
  # Float32 VGG against float64 accumulation of separately computed features.
  assert d_light == pytest.approx(_content_distance_reference(net, light, content, layers),
                                  rel=1e-4)
  assert 0 < d_light < metrics.content_distance(net, heavy, content, layers)
  assert 0 < metrics.content_distance(net, blurred, content, layers)


def test_per_layer_similarities_match_numpy_grams_and_average_to_the_mean(content):
  net = vgg.load_loss_network("vgg16", "hed")
  style = image_io.load_image(jaxstyle.STYLES_DIR + "/mosaic.jpg")[:80, :112]
  layers = ["relu2_2", "relu3_3"]
  per_layer = metrics.style_similarities(net, content, style, layers)
  for k in layers:
    grams = []
    for image in (content, style):  # float64 Gram, pixel-averaged, numpy only
      f = np.asarray(net.features(image[None], [k])[k], np.float64)[0]
      f = f.reshape(-1, f.shape[-1])
      grams.append((f.T @ f / len(f)).ravel())
    want = grams[0] @ grams[1] / np.linalg.norm(grams[0]) / np.linalg.norm(grams[1])
    assert per_layer[k] == pytest.approx(want, abs=1e-5)
  assert metrics.style_similarity(net, content, style, layers) == pytest.approx(
      np.mean(list(per_layer.values())), abs=1e-7)
  report = metrics.quality_report(net, content, content, style, layers)
  assert sorted(report) == ["ssim", "style_similarity", "style_similarity/relu2_2",
                            "style_similarity/relu3_3"]
  assert report["ssim"] == pytest.approx(1.0) and report["style_similarity/relu3_3"] == \
      pytest.approx(per_layer["relu3_3"], abs=1e-6)
  # The style's Grams computed once (as the trainer does for every
  # evaluation) give the same report as the style image.
  grams = metrics.gram_matrices(net, style, layers)
  assert metrics.quality_report(net, content, content, None, layers, style_grams=grams) == report
