"""Style weights, strength and colour preservation: parsing, errors, the maths."""

import numpy as np
import pytest
from skimage import color

from jaxstyle import colors
from jaxstyle import style_controls

NAMES = ["candy", "mosaic", "udnie"]


@pytest.mark.parametrize("spec, want", [
    ("mosaic=0.7,candy=0.3", [0.3, 0.7, 0.0]),
    ("udnie", [0, 0, 1]),
    (" candy = 2 , udnie=2 ", [0.5, 0, 0.5]),
    ({"mosaic": 1.0}, [0, 1, 0]),
    ([1, 1, 2], [0.25, 0.25, 0.5]),
])
def test_style_weights_are_normalised_over_the_model_styles(spec, want):
  np.testing.assert_allclose(style_controls.parse_style_weights(spec, NAMES), want, atol=1e-7)


@pytest.mark.parametrize("spec, message", [
    ("starry=1", "unknown style 'starry'"),
    ("mosaic=-0.5,candy=1", "style weight -0.5"),
    ("mosaic=0,candy=0", "all zero"),
    ([1, 0], "has 2 values; this model has 3 styles"),
    ("mosaic=lots", "'mosaic=lots' is not name=number"),
    (None, "this model has 3 styles (candy, mosaic, udnie)"),
    ([1, float("nan"), 0], "style weight nan"),
])
def test_bad_style_weights_name_the_value(spec, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    style_controls.parse_style_weights(spec, NAMES)


def test_one_style_needs_no_weights():
  assert style_controls.parse_style_weights(None, ["mosaic"]) is None


def test_strength_range_and_control():
  assert style_controls.check_strength(None, False) is None
  assert style_controls.check_strength(1.0, False) is None
  assert style_controls.check_strength(0.25, True) == 0.25
  with pytest.raises(ValueError, match="strength=1.5 is outside"):
    style_controls.check_strength(1.5, True)
  with pytest.raises(ValueError, match="strength=-0.1 is outside"):
    style_controls.check_strength(-0.1, True)
  with pytest.raises(ValueError, match="strength=0.5 needs a model trained with "
                     "config.model.strength_control"):
    style_controls.check_strength(0.5, False)


def test_style_sources_and_names():
  assert style_controls.style_sources({"image": "mosaic", "images": ()}) == ["mosaic"]
  assert style_controls.style_sources({"image": "x", "images": ("a", "/p/b.jpg")}) == [
      "a", "/p/b.jpg"]
  assert style_controls.style_name("/data/styles/rain-princess.jpg") == "rain-princess"


def test_preserve_colors_keeps_the_chroma_and_takes_the_luminance():
  rng = np.random.default_rng(0)
  # Mid-range pixels: no clipping, so the identity holds to rounding.
  content = rng.uniform(0.3, 0.7, (16, 24, 3)).astype(np.float32)
  stylized = rng.uniform(0.35, 0.65, (16, 24, 3)).astype(np.float32)
  out = colors.preserve_colors(stylized, content)
  # Independent reference: skimage's YIQ (float64).
  out_yiq, content_yiq, stylized_yiq = map(color.rgb2yiq, (out, content, stylized))
  np.testing.assert_allclose(out_yiq[..., 1:], content_yiq[..., 1:], atol=1e-6)
  np.testing.assert_allclose(out_yiq[..., 0], stylized_yiq[..., 0], atol=1e-6)


def test_preserve_colors_stays_in_range_and_works_on_jax_arrays():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  content, stylized = rng.uniform(size=(2, 8, 8, 3)).astype(np.float32)
  out = colors.preserve_colors(stylized, content)
  assert out.min() >= 0 and out.max() <= 1
  np.testing.assert_allclose(np.asarray(colors.preserve_colors(jnp.asarray(stylized),
                                                               jnp.asarray(content))),
                             out, atol=1e-6)
