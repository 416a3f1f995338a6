"""`jaxstyle.Stylizer`: a trained style network as a function, for notebooks and apps.

  stylizer = jaxstyle.Stylizer.from_workdir("runs/quickstart")  # JAX, latest checkpoint
  stylizer = jaxstyle.Stylizer.from_onnx("export/mosaic.onnx")  # onnxruntime; no JAX
  out = stylizer(Image.open("photo.jpg"), max_size=1024)
  out = stylizer("photo.jpg", style_weights="mosaic=0.7,candy=0.3", strength=0.6,
                 preserve_colors=True)   # a multi-style, strength-controlled model

An image is a PIL image, a numpy array (HxWx3, uint8 or float in [0, 1]) or
a path; the result is of the same kind (a PIL image for a path), and a list
of images gives a list. Any size works: the image is reflect-padded to the
network's size multiple and cropped back, as `jaxstyle stylize` does; with
`max_size=None` a photo with a side longer than `from_workdir`'s `tile_size`
runs in tiles with the whole image's norm statistics (`jaxstyle.tiling`). Input
that cannot be used raises `jaxstyle.images.ImageError` (a ValueError) naming
the image and the reason, with the CLI's wording for files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from jaxstyle import colors
from jaxstyle import images
from jaxstyle import style_controls

ImageLike = Image.Image | np.ndarray | str | os.PathLike


class Stylizer:
  """Stylizes images with one trained network.

  `apply_fn` maps one float32 HxWx3 image in [0, 1], sides multiples of
  `size_multiple`, to its stylized image of the same shape and range. For a
  network with several styles or strength control it also takes the keyword
  arguments `style_weights` (a normalised vector over `styles`, or None) and
  `strength` (a float, or None for 1).
  """

  def __init__(self, apply_fn: Callable[..., np.ndarray], size_multiple: int = 1,
               metadata: Mapping[str, Any] | None = None, *,
               styles: Sequence[str] = (), strength_control: bool = False):
    self._apply = apply_fn
    self.size_multiple = int(size_multiple)
    self.metadata = dict(metadata or {})
    self.styles = list(styles)
    self.strength_control = bool(strength_control)

  @classmethod
  def from_workdir(cls, workdir: str | os.PathLike, step: int | None = None,
                   tile_size: int | None = images.DEFAULT_TILE_SIZE) -> Stylizer:
    """The checkpoint at `step` (default: the latest) of a training workdir, run by JAX.

    Images with a side longer than `tile_size` run in tiles with the whole
    image's norm statistics (`jaxstyle.tiling`: the same result in bounded
    memory); 0 or None never tiles.
    """
    # pylint: disable=g-import-not-at-top  (JAX only when asked for)
    import jax
    from jaxstyle import tiling
    from jaxstyle import trained_model
    trained = trained_model.load(os.fspath(workdir), step)
    forward = jax.jit(lambda p, x, c: trained.forward(p, x[None], c)[0])
    metadata = dict(trained.metadata, num_params=trained.num_params)
    run = tiling.tiled_when_large(lambda image, c: np.asarray(forward(trained.params, image, c)),
                                  trained.model, trained.params, tile_size)

    def apply(image, style_weights=None, strength=None):
      return run(image, trained.condition(style_weights, strength))

    return cls(apply, trained.size_multiple, metadata, styles=trained.style_names,
               strength_control=trained.strength_control)

  @classmethod
  def from_onnx(cls, path: str | os.PathLike, threads: int | None = None,
                low_memory: bool = False) -> Stylizer:
    """An ONNX export (`jaxstyle export --formats onnx`), run by onnxruntime on the CPU.

    Imports neither JAX nor TensorFlow. `low_memory` trades ~30% speed for a
    third less peak memory (jaxstyle.onnx_inference).
    """
    from jaxstyle import onnx_inference  # pylint: disable=g-import-not-at-top
    session = onnx_inference.session(os.fspath(path), threads=threads, low_memory=low_memory)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    shape = session.get_inputs()[0].shape
    io = "nchw" if len(shape) == 4 and shape[1] == 3 else "nhwc"
    inputs = {i.name for i in session.get_inputs()}

    def apply(image, style_weights=None, strength=None):
      controls = {}
      if "style_weights" in inputs:
        controls["style_weights"] = np.ones(1, np.float32) if style_weights is None else style_weights
      if "strength" in inputs:
        controls["strength"] = np.array([1.0 if strength is None else strength], np.float32)
      return onnx_inference.run(session, image[None], io, controls)[0]

    styles = [s for s in metadata.get("styles", "").split(",") if s]
    return cls(apply, int(metadata.get("size_multiple", 1)), metadata, styles=styles,
               strength_control="strength" in inputs)

  def __call__(self, image: ImageLike | Sequence[ImageLike],
               max_size: int | None = images.DEFAULT_MAX_SIZE, *,
               style_weights: str | Mapping[str, float] | Sequence[float] | None = None,
               strength: float | None = None, preserve_colors: bool = False) -> Any:
    """Stylizes `image` (or each of a list), shrunk first so its long side is at most
    `max_size` pixels (never enlarged; None: full resolution). The strokes have a
    fixed size in pixels, so a smaller working size gives bolder strokes.

    A multi-style model needs `style_weights`: a style name, 'mosaic=0.7,candy=0.3',
    a mapping or a vector over `self.styles` (normalised). `strength` 0…1 goes
    from the photo to the full style (models trained with strength control).
    `preserve_colors` keeps the photo's colours (`jaxstyle.colors`).
    """
    if max_size is not None and max_size < 1:
      raise ValueError(f"max_size must be >= 1, got {max_size}")
    controls = {}
    if self.styles and (len(self.styles) > 1 or style_weights is not None):
      controls["style_weights"] = style_controls.parse_style_weights(style_weights, self.styles)
    strength = style_controls.check_strength(strength, self.strength_control)
    if strength is not None:
      controls["strength"] = strength
    run = lambda item, name: self._one(item, max_size, name, controls, preserve_colors)
    if isinstance(image, (list, tuple)):
      return [run(item, f"images[{i}]") for i, item in enumerate(image)]
    return run(image, "image")

  def __repr__(self) -> str:
    step = self.metadata.get("step", self.metadata.get("training_step"))
    return f"Stylizer(step={step}, size_multiple={self.size_multiple})"

  def _one(self, image: ImageLike, max_size: int | None, name: str,
           controls: Mapping[str, Any], preserve_colors: bool) -> Any:
    if isinstance(image, (str, os.PathLike)):
      pixels, restore = images.load_image(image, max_size), _to_pil
    else:
      if isinstance(image, Image.Image):
        pixels, restore = _from_pil(image, name), _to_pil
      elif isinstance(image, np.ndarray):
        pixels = _from_array(image, name)
        dtype = image.dtype
        restore = images.to_uint8 if dtype == np.uint8 else lambda out: out.astype(dtype)
      else:
        raise TypeError(f"{name}: expected a PIL image, a numpy array or a path, "
                        f"got {type(image).__name__}")
      if max_size is not None:
        pixels = images.shrink(pixels, max_size)
    padded, (h, w) = images.pad_to_multiple(pixels, self.size_multiple)
    out = np.asarray(self._apply(padded, **controls), np.float32)
    if out.shape != padded.shape:
      raise ValueError(f"{name}: the model returned shape {out.shape} for input of "
                       f"shape {padded.shape}")
    out = np.clip(out[:h, :w], 0.0, 1.0)
    if preserve_colors:
      out = colors.preserve_colors(out, pixels)
    return restore(out)


def _to_pil(pixels: np.ndarray) -> Image.Image:
  return Image.fromarray(images.to_uint8(pixels))


def _from_pil(image: Image.Image, name: str) -> np.ndarray:
  try:
    return images.from_pil(image)
  except Exception as e:  # Pillow raises assorted types for modes it cannot convert
    raise images.ImageError(name, f"could not convert the {image.mode} image "
                            f"({type(e).__name__}: {e})") from None


def _from_array(array: np.ndarray, name: str) -> np.ndarray:
  """uint8 or float HxWx3 → float32 in [0, 1]; anything else is an ImageError."""
  if array.ndim != 3 or array.shape[-1] != 3:
    raise images.ImageError(name, f"expected an HxWx3 RGB array, got shape {array.shape}")
  if array.shape[0] == 0 or array.shape[1] == 0:
    raise images.ImageError(name, f"the image is empty (shape {array.shape})")
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 255.0
  if not np.issubdtype(array.dtype, np.floating):
    raise images.ImageError(name, f"dtype {array.dtype} is not supported: pass uint8 "
                            "(0-255) or float in [0, 1]")
  if not np.isfinite(array).all():
    raise images.ImageError(name, "the image has NaN or infinite values")
  low, high = float(array.min()), float(array.max())
  if low < 0.0 or high > 1.0:
    raise images.ImageError(name, f"float pixels must be in [0, 1], got {low:g}..{high:g} "
                            "(for 0-255 data pass uint8)")
  return array.astype(np.float32)
