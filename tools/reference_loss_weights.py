r"""pytorch/examples' fast-neural-style loss, restated as jaxstyle loss weights.

  python tools/reference_loss_weights.py [--styles mosaic,candy,udnie,rain-princess] \
      [--content jaxstyle/assets/eval_content/amber.jpg] [--vgg_source hed]

pytorch/examples (neural_style.py) trains with
  1e5 · mean((φ₂₂(out) − φ₂₂(photo))²) + 1e10 · Σ_l mean((G'_l(out) − G'_l(style))²),
with G' = FᵀF / (c·h·w) of torchvision-normalised VGG16 features. jaxstyle's
terms are relative errors r = ‖x − t‖² / ‖t‖² with G = FᵀF / (h·w) (losses.py),
so the reference's terms are weights times jaxstyle's:
  style layer l: 1e10 · ‖G_l(style)‖² / c_l⁴ · r_l,  content: 1e5 · ‖φ₂₂(photo)‖² / (h·w·c) · r.
This prints those weights for each style (the style image at --style_size, as
jaxstyle trains it; the content photo's centre crop of --content_size²), and
the same normalised to relu4_3. With --vgg_source hed (offline) the Caffe-scale
input is divided by 57.7 (1 / the ImageNet std, in pixels) to approximate
torchvision's feature scale; --vgg_source torchvision is exact.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
import jax.numpy as jnp

from jaxstyle import images as image_io
from jaxstyle import losses
from jaxstyle import metrics
from jaxstyle import run_lib
from jaxstyle.models import vgg

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LAYERS = metrics.STYLE_LAYERS
_CONTENT_LAYER = "relu2_2"
_HED_TO_TORCHVISION = 1 / (255 * 0.226)  # Caffe pixels → ImageNet-std units (≈ 1 / 57.7)


def features(net, image01: np.ndarray) -> dict[str, np.ndarray]:
  x = net.preprocess(jnp.asarray(image01)[None])
  if net.source != "torchvision":
    x = x * _HED_TO_TORCHVISION
  out = vgg.VGG(net.arch).apply({"params": net.params}, x, _LAYERS)
  return {k: np.asarray(v[0], np.float64) for k, v in out.items()}


def reference_weights(net, style01: np.ndarray, content01: np.ndarray) -> dict[str, float]:
  """{'content': w, layer: w, ...}: the reference's terms as multiples of jaxstyle's."""
  weights = {}
  for name, f in features(net, style01).items():
    gram = np.asarray(losses.gram_matrix(f[None]), np.float64)
    weights[name] = 1e10 * float(np.sum(gram ** 2)) / f.shape[-1] ** 4
  weights["content"] = 1e5 * float(np.mean(features(net, content01)[_CONTENT_LAYER] ** 2))
  return weights


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--styles", default="mosaic,candy,udnie,rain-princess")
  parser.add_argument("--content", default=os.path.join(
      _REPO, "jaxstyle", "assets", "eval_content", "amber.jpg"))
  parser.add_argument("--style_size", type=int, default=256)
  parser.add_argument("--content_size", type=int, default=256)
  parser.add_argument("--vgg_source", default="hed", choices=("hed", "torchvision"))
  args = parser.parse_args()

  net = vgg.load_loss_network("vgg16", args.vgg_source)
  photo = run_lib.resize_short_side(image_io.load_image(args.content), args.content_size)
  top = (photo.shape[0] - args.content_size) // 2
  left = (photo.shape[1] - args.content_size) // 2
  photo = photo[top:top + args.content_size, left:left + args.content_size]

  columns = (*_LAYERS, "content")
  print(f"VGG16 {args.vgg_source}" + ("" if args.vgg_source == "torchvision" else
                                      " (input ÷ 57.7 ≈ torchvision's scale)")
        + f"; style at {args.style_size} px, content {args.content_size}² of "
        f"{os.path.basename(args.content)}\n")
  print("| style | weights as | " + " | ".join(columns) + " |")
  print("|---|---|" + "---:|" * len(columns))
  for style in args.styles.split(","):
    path = run_lib.resolve_style_path(style)
    style01 = run_lib.resize_short_side(image_io.load_image(path), args.style_size)
    weights = reference_weights(net, style01, photo)
    print(f"| {style} | jaxstyle terms | " + " | ".join(f"{weights[k]:.3g}" for k in columns) + " |")
    print(f"| {style} | relu4_3 = 1 | " + " | ".join(
        f"{weights[k] / weights['relu4_3']:.3g}" for k in columns) + " |")


if __name__ == "__main__":
  main()
