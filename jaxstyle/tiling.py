"""Stylizes images too large for memory in tiles, with the whole image's norm statistics.

Instance norm makes every output pixel depend on statistics of the whole
image, so tiles stylized on their own disagree at the seams. `TiledForward`
first accumulates each norm layer's mean and variance over all tiles, one layer
after the other (a layer's statistics depend on those of the layers before
it), then runs every tile with the whole image's statistics. The result is the
untiled one to float rounding, in memory set by the tile size, not the image.

Tiles overlap by a halo no smaller than the network's receptive radius
(`receptive_radius`, measured on the network itself), so the core each tile
contributes sees everything it would see untiled; tiles at the image's border
keep the image's own border. Each statistics pass runs the network only up to
its layer, so the whole costs about Σ over norm layers of the network up to
that layer plus one full pass, times the overlap (README, "Large photos").
"""

import dataclasses
import math
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxstyle import images
from jaxstyle.models import layers

Path = tuple[str, ...]
# Normalisations that `layers.NORM_STATS` cannot override: a network with one
# of them cannot be tiled exactly, and says so.
_FOREIGN_NORMS = (nn.InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.BatchNorm)


@dataclasses.dataclass(frozen=True)
class Span:
  """A tile along one axis: it reads [start, stop) and writes its core [core_start, core_stop)."""
  start: int
  stop: int
  core_start: int
  core_stop: int


def spans(length: int, tile: int, halo: int) -> list[Span]:
  """Tiles of `tile` pixels covering [0, length), each core ≥ `halo` from an inner tile edge.

  All tiles have the same size (one compiled program), the last one ends at
  the image's edge, and starts are multiples of whatever `tile`, `halo` and
  `length` are multiples of.
  """
  if length <= tile:
    return [Span(0, length, 0, length)]
  stride = tile - 2 * halo
  if stride <= 0:
    raise ValueError(f"tile size {tile} must exceed twice the halo ({halo} px)")
  starts = [min(i * stride, length - tile) for i in range(math.ceil((length - tile) / stride) + 1)]
  return [Span(p, p + tile, 0 if i == 0 else p + halo,
               length if i == len(starts) - 1 else starts[i + 1] + halo)
          for i, p in enumerate(starts)]


def _apply(model, params, stats, images, condition):
  variables = {"params": params}
  if stats:
    variables[layers.NORM_STATS] = stats
  if condition is None:
    return model.apply(variables, images)
  return model.apply(variables, images, condition)


def _nested(per_layer: dict[Path, dict[str, Any]]) -> dict:
  return flax.traverse_util.unflatten_dict(
      {path + (k,): v for path, stat in per_layer.items() for k, v in stat.items()})


def _capturing(target: Path | None, seen: dict):
  """An interceptor that records the input of each InstanceNorm (or only `target`'s)."""
  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "__call__":
      if isinstance(module, layers.InstanceNorm):
        path = tuple(module.path)
        if target is None or path == target:
          seen[path] = args[0]
      elif isinstance(module, _FOREIGN_NORMS):
        seen.setdefault("foreign", []).append(f"{'/'.join(module.path)} ({type(module).__name__})")
    return next_fun(*args, **kwargs)
  return interceptor


def norm_layers(model, params, shape, condition=None) -> dict[Path, int]:
  """{module path: channels} of the network's InstanceNorm layers, in the order they run."""
  seen: dict = {}
  abstract = jax.ShapeDtypeStruct(shape, jnp.float32)
  with nn.intercept_methods(_capturing(None, seen)):
    jax.eval_shape(lambda p, x, c: _apply(model, p, {}, x, c), params, abstract, condition)
  if "foreign" in seen:
    raise ValueError("tiled stylization needs jaxstyle.models.layers.InstanceNorm, whose "
                     "statistics can be set from outside; this network normalises with "
                     + ", ".join(seen["foreign"]))
  return {path: int(x.shape[-1]) for path, x in seen.items()}


def receptive_radius(model, params, channels: dict[Path, int], condition=None,
                     start: int = 1024, limit: int = 16384) -> int:
  """How far (input pixels) an output pixel sees, with the norms' statistics held fixed.

  Measured on a probe of the same network: positive weights, zero biases,
  statistics mean 0 / variance 1 and a small positive input, so no ReLU is
  inactive and the input gradient of the centre pixel is nonzero exactly on
  its receptive field. The probe is a strip (one along each axis, `start`
  pixels long, doubled until the field fits inside).
  """
  flat = flax.traverse_util.flatten_dict(params)
  probe = flax.traverse_util.unflatten_dict({
      k: jnp.zeros_like(v) if k[-1] == "bias" else
      jnp.full_like(v, 1.0 / max(1, v.size // v.shape[-1])) for k, v in flat.items()})
  stats = _nested({p: {"mean": jnp.zeros(c), "var": jnp.ones(c)} for p, c in channels.items()})
  multiple = int(getattr(model, "size_multiple", 1))
  width = 4 * multiple
  radius, length = 0, max(start, 4 * multiple)
  for axis in (0, 1):
    while True:
      shape = [width, width]
      shape[axis] = length
      centre = (0, shape[0] // 2, shape[1] // 2)
      reach = jax.jit(jax.grad(lambda x: _apply(model, probe, stats, x, condition)[centre].sum()))(
          jnp.full((1, *shape, 3), 1e-3, jnp.float32))
      hit = np.nonzero(np.abs(np.asarray(reach[0])).sum(axis=(-1, 1 - axis)))[0]
      if hit.min() > 0 and hit.max() < length - 1:
        radius = max(radius, length // 2 - hit.min(), hit.max() - length // 2)
        break
      if length >= limit:
        raise ValueError(f"the receptive field of this network exceeds {limit} px: "
                         "it cannot be tiled")
      length *= 2
  return int(radius)


def _masked_moments(x, core, tile_hw):
  """Count, mean and sum of squared deviations of x (h, w, C) over the tile's core."""
  h, w = x.shape[:2]
  fh, fw = tile_hw[0] // h, tile_hw[1] // w
  rows = jnp.arange(h)[:, None]
  cols = jnp.arange(w)[None, :]
  inside = ((rows >= core[0] // fh) & (rows < core[1] // fh)
            & (cols >= core[2] // fw) & (cols < core[3] // fw))
  weight = inside[..., None].astype(x.dtype)
  count = jnp.sum(inside)
  mean = jnp.sum(x * weight, axis=(0, 1)) / count
  return count, mean, jnp.sum(jnp.square(x - mean) * weight, axis=(0, 1))


class _Moments:
  """Running count / mean / M2 per channel, merged in float64 (Chan et al.)."""

  def __init__(self, channels: int):
    self.count, self.mean, self.m2 = 0, np.zeros(channels), np.zeros(channels)

  def add(self, count, mean, m2) -> None:
    count, mean, m2 = int(count), np.asarray(mean, np.float64), np.asarray(m2, np.float64)
    total = self.count + count
    delta = mean - self.mean
    self.mean = self.mean + delta * count / total
    self.m2 = self.m2 + m2 + delta ** 2 * self.count * count / total
    self.count = total

  def stats(self) -> dict[str, jax.Array]:
    return {"mean": jnp.asarray(self.mean, jnp.float32),
            "var": jnp.asarray(self.m2 / self.count, jnp.float32)}


class TiledForward:
  """`model` on one image at a time, in tiles, equal to the untiled network.

  `tile_size` is a tile's side in pixels, halo included; it is rounded up to
  the network's size multiple and must exceed twice the halo. Input images
  must have sides that are multiples of the size multiple (as untiled).
  `finish(stylized, content)`, pointwise (e.g. `colors.preserve_colors`), is
  applied to each tile's output.
  """

  def __init__(self, model, params, tile_size: int = images.DEFAULT_TILE_SIZE, progress: bool = False,
               finish: Callable[[jax.Array, jax.Array], jax.Array] | None = None):
    self.model, self.params, self.progress = model, params, progress
    self.multiple = int(getattr(model, "size_multiple", 1))
    # Any positive condition: the layers and their reach do not depend on it.
    k = int(getattr(model, "num_conditions", 1))
    probe = None if k == 1 else jnp.full((1, k), 1.0 / k, jnp.float32)
    probe_shape = (1, 4 * self.multiple, 4 * self.multiple, 3)
    self.channels = norm_layers(model, params, probe_shape, probe)
    self.radius = receptive_radius(model, params, self.channels, probe)
    # One extra multiple: the downsampling grid rounds positions to it.
    self.halo = (self.radius // self.multiple + 2) * self.multiple
    self.tile_size = -(-int(tile_size) // self.multiple) * self.multiple
    if self.tile_size <= 2 * self.halo:
      raise ValueError(f"tile_size={tile_size}: must exceed twice this network's halo "
                       f"of {self.halo} px (receptive radius {self.radius} px)")
    self._moments = {path: jax.jit(self._moments_fn(path)) for path in self.channels}
    finish = finish or (lambda stylized, content: stylized)
    self._final = jax.jit(lambda p, s, x, c: finish(_apply(model, p, s, x, c)[0], x[0]))

  def _moments_fn(self, target: Path):
    def moments(params, stats, tile, condition, core):
      seen: dict = {}
      with nn.intercept_methods(_capturing(target, seen)):
        _apply(self.model, params, stats, tile, condition)  # all but `target`'s input: dead code
      return _masked_moments(seen[target][0], core, tile.shape[1:3])
    return moments

  def tiles(self, height: int, width: int) -> list[tuple[Span, Span]]:
    return [(r, c) for r in spans(height, self.tile_size, self.halo)
            for c in spans(width, self.tile_size, self.halo)]

  def __call__(self, image: np.ndarray, condition=None,
               out: np.ndarray | None = None) -> np.ndarray:
    """image HxWx3 (float in [0, 1] or uint8) → the stylized float32 image, or
    written into `out` (uint8 or float, HxWx3) to keep a large result small.
    `condition`: the network's (1, K) norm-row weights, as untiled."""
    condition = None if condition is None else jnp.asarray(condition, jnp.float32)
    height, width = image.shape[:2]
    if height % self.multiple or width % self.multiple:
      raise ValueError(f"image sides {height}×{width} must be multiples of {self.multiple}")
    tiles = self.tiles(height, width)
    cut = lambda r, c: _to_unit(image[r.start:r.stop, c.start:c.stop])[None]
    known: dict[Path, dict] = {}
    bar = tqdm(total=len(tiles) * (len(self.channels) + 1), desc="tiles", unit="tile",
               disable=not self.progress, leave=False)
    for path, channels in self.channels.items():
      acc = _Moments(channels)
      stats = _nested(known)
      for r, c in tiles:
        core = np.array([r.core_start - r.start, r.core_stop - r.start,
                         c.core_start - c.start, c.core_stop - c.start], np.int32)
        acc.add(*self._moments[path](self.params, stats, cut(r, c), condition, core))
        bar.update()
      known[path] = acc.stats()
    stats = _nested(known)
    if out is None:
      out = np.empty((height, width, 3), np.float32)
    for r, c in tiles:
      result = np.asarray(self._final(self.params, stats, cut(r, c), condition))
      core = result[r.core_start - r.start:r.core_stop - r.start,
                    c.core_start - c.start:c.core_stop - c.start]
      out[r.core_start:r.core_stop, c.core_start:c.core_stop] = (
          images.to_uint8(core) if out.dtype == np.uint8 else core)
      bar.update()
    bar.close()
    return out


def _to_unit(pixels: np.ndarray) -> np.ndarray:
  if pixels.dtype == np.uint8:
    return pixels.astype(np.float32) / 255.0
  return np.asarray(pixels, np.float32)


def tiled_when_large(untiled: Callable[[np.ndarray, Any], np.ndarray], model, params,
                     tile_size: int | None, *, tiled_dtype=np.float32, **tiled_options):
  """`apply(image, condition)`: `untiled(float image, condition)` for an image
  whose sides are at most `tile_size` (0/None: every image), a `TiledForward`
  (built on the first large image: it measures the network once) beyond,
  with its result as `tiled_dtype` (uint8 keeps a large result small)."""
  tiled = []

  def apply(image: np.ndarray, condition=None) -> np.ndarray:
    if not tile_size or max(image.shape[:2]) <= tile_size:
      return untiled(_to_unit(image), condition)
    if not tiled:
      tiled.append(TiledForward(model, params, tile_size=tile_size, **tiled_options))
    return tiled[0](image, condition, out=np.empty(image.shape, tiled_dtype))

  return apply
