"""Image-quality and style metrics for comparing stylized outputs.

- `ssim`, `psnr`: of the output against its *content* image, on RGB in [0, 1]
  (data_range 1). SSIM is Wang et al. 2004 as scikit-image computes it with
  the paper's settings (11×11 Gaussian window, σ = 1.5, population covariance),
  averaged over pixels and the three channels. They measure how much of the
  content's structure survives; a stronger stylization scores lower.
- `style_similarity`: mean over VGG style layers of the cosine similarity
  between the Gram matrices of output and style image; 1.0 means identical
  style statistics. It is computed with the loss network given, so with the
  training loss network it is not independent of the training objective.
- `content_distance`: mean over VGG content layers of the relative squared
  feature error ‖φ(output) − φ(content)‖² / ‖φ(content)‖²; 0 means identical
  features, ≈1 an unrelated image (the same relative form as the training
  content loss, so it reads the same for every layer and VGG source).
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from skimage import metrics as skmetrics

from jaxstyle import losses


def _check_pair(output: np.ndarray, reference: np.ndarray) -> None:
  if output.shape != reference.shape or output.ndim != 3 or output.shape[-1] != 3:
    raise ValueError(f"expected two (H, W, 3) images of the same shape, got "
                     f"{output.shape} and {reference.shape}")


def ssim(output: np.ndarray, reference: np.ndarray) -> float:
  """Structural similarity of two (H, W, 3) images in [0, 1]; 1 = identical."""
  _check_pair(output, reference)
  return float(skmetrics.structural_similarity(
      np.asarray(reference, np.float64), np.asarray(output, np.float64),
      data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False))


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
  """Peak signal-to-noise ratio in dB (peak 1.0); `inf` for identical images."""
  _check_pair(output, reference)
  mse = float(np.mean(np.square(np.asarray(output, np.float64)
                                - np.asarray(reference, np.float64))))
  return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def gram_cosine(a: jax.Array, b: jax.Array) -> jax.Array:
  """Cosine similarity of two Gram matrices (..., C, C), flattened."""
  a = a.reshape(a.shape[:-2] + (-1,))
  b = b.reshape(b.shape[:-2] + (-1,))
  dot = jnp.sum(a * b, axis=-1)
  return dot / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1) + 1e-12)


@functools.partial(jax.jit, static_argnames="layers")
def _gram_matrices(loss_net, image: jax.Array, layers: tuple[str, ...]) -> dict[str, jax.Array]:
  return {k: losses.gram_matrix(v) for k, v in loss_net.features(image[None], layers).items()}


def gram_matrices(loss_net, image: np.ndarray, layers: Sequence[str]) -> dict[str, jax.Array]:
  """{layer: (1, C, C) Gram matrix} of one (H, W, 3) image: what the style side
  of `style_similarities` needs, computed once when many outputs are compared
  with the same style. One compiled program per image size: eager VGG costs a
  compilation per operation, most of a short run's evaluation."""
  return _gram_matrices(loss_net, jnp.asarray(image, jnp.float32), tuple(layers))


def style_similarities(loss_net, output: np.ndarray, style_image: np.ndarray | None,
                       layers: Sequence[str], style_grams: dict | None = None
                       ) -> dict[str, float]:
  """{layer: Gram cosine between output and style image} for each of `layers`.

  The images may differ in size: Gram matrices are averaged over pixels. The
  deep layers (relu3_3, relu4_3) measure texture; the shallow ones are nearly
  saturated by matching colours alone, so report them apart, not only the mean.
  `style_grams` (from `gram_matrices`, at least `layers`) replaces `style_image`.
  """
  layers = tuple(layers)
  if style_grams is None:
    style_grams = gram_matrices(loss_net, style_image, layers)
  out = gram_matrices(loss_net, output, layers)
  return {k: float(gram_cosine(out[k], style_grams[k])[0]) for k in layers}


def style_similarity(loss_net, output: np.ndarray, style_image: np.ndarray,
                     layers: Sequence[str]) -> float:
  """Mean over `layers` of the Gram cosine between output and style image."""
  return float(np.mean(list(style_similarities(loss_net, output, style_image,
                                               layers).values())))


def content_distance(loss_net, output: np.ndarray, content: np.ndarray,
                     layers: Sequence[str]) -> float:
  """Mean over `layers` of ‖φ(output) − φ(content)‖² / ‖φ(content)‖²; 0 = identical."""
  _check_pair(output, content)
  layers = list(layers)
  feats = loss_net.features(jnp.stack([jnp.asarray(output, jnp.float32),
                                       jnp.asarray(content, jnp.float32)]), layers)
  values = []
  for k in layers:
    f = np.asarray(feats[k], np.float64)
    values.append(np.sum(np.square(f[0] - f[1])) / np.sum(np.square(f[1])))
  return float(np.mean(values))


# The protocol every quality number of jaxstyle's docs uses: style image at a
# 256 px short side, the four VGG16 style layers of the training loss.
STYLE_SIZE = 256
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def quality_report(loss_net, output: np.ndarray, content: np.ndarray,
                   style_image: np.ndarray | None, layers: Sequence[str] = STYLE_LAYERS,
                   style_grams: dict | None = None) -> dict[str, float]:
  """Style similarity (mean and per layer) to `style_image` and SSIM to `content`.

  {'style_similarity': mean, 'style_similarity/<layer>': ..., 'ssim': ...}:
  the keys of summary.json, the ablation and Table 1. `style_grams`: as in
  `style_similarities`.
  """
  per_layer = style_similarities(loss_net, output, style_image, layers, style_grams)
  report = {"style_similarity": float(np.mean(list(per_layer.values())))}
  report.update({f"style_similarity/{k}": v for k, v in per_layer.items()})
  report["ssim"] = ssim(output, content)
  return report
