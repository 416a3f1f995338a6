"""jaxstyle.tiling: tiles with the whole image's norm statistics equal the untiled network."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import images
from jaxstyle import tiling
from jaxstyle.models import conditioning
from jaxstyle.models import cyclegan
from jaxstyle.models import layers
from jaxstyle.models import unet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _network(**fields):
  """A small U-Net with perturbed parameters (non-trivial norms and biases)."""
  model = unet.UNet(features=(8, 16), num_res_blocks=1, patch_size=2,
                    conv_before_upsample=True, **fields)
  k = model.num_conditions
  args = (jnp.zeros((1, 16, 16, 3)),) + ((jnp.ones((1, k)) / k,) if k > 1 else ())
  params = model.init(jax.random.key(0), *args)["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  leaves = [v + 0.2 * jax.random.normal(key, v.shape) for v, key in zip(leaves, keys)]
  return model, jax.tree.unflatten(tree, leaves)


def _untiled(model, params, image, condition=None):
  x = jnp.asarray(image, jnp.float32)[None]
  if condition is None:
    return np.asarray(jax.jit(model.apply)({"params": params}, x))[0]
  return np.asarray(jax.jit(model.apply)({"params": params}, x, jnp.asarray(condition)))[0]


@pytest.fixture(scope="module")
def small():
  model, params = _network()
  return model, params, tiling.TiledForward(model, params, tile_size=72)


@pytest.fixture(scope="module")
def photo():
  # A smooth picture plus noise: statistics that differ from tile to tile.
  yy, xx = np.mgrid[0:96, 0:136] / 64.0
  base = np.stack([np.sin(3 * xx), np.cos(2 * yy), np.sin(xx + yy)], -1) * 0.4 + 0.5
  noise = np.random.default_rng(0).normal(0, 0.05, base.shape)
  return np.clip(base + noise, 0, 1).astype(np.float32)


@pytest.mark.parametrize("length,tile,halo", [(96, 72, 32), (136, 72, 32), (1000, 400, 48),
                                               (64, 72, 32), (512, 200, 16)])
def test_spans_cover_once_with_cores_away_from_inner_edges(length, tile, halo):
  spans = tiling.spans(length, tile, halo)
  covered = np.zeros(length, int)
  for i, s in enumerate(spans):
    assert s.stop - s.start == min(tile, length)
    assert s.start <= s.core_start < s.core_stop <= s.stop
    if i > 0:
      assert s.core_start - s.start >= halo
    if i < len(spans) - 1:
      assert s.stop - s.core_stop >= halo
    covered[s.core_start:s.core_stop] += 1
  assert (covered == 1).all()
  assert spans[0].start == 0 and spans[-1].stop == length


def test_tiled_equals_untiled_and_naive_tiles_do_not(photo, small):
  model, params, forward = small
  assert len(forward.tiles(*photo.shape[:2])) > 4
  expected = _untiled(model, params, photo)
  np.testing.assert_allclose(forward(photo), expected, atol=1e-4)
  # uint8 in and out: the same pixels, rounded.
  out = forward(images.to_uint8(photo), out=np.empty(photo.shape, np.uint8))
  reference = _untiled(model, params, images.to_uint8(photo) / np.float32(255))
  assert np.abs(out.astype(int) - images.to_uint8(reference).astype(int)).max() <= 1
  # Each tile with its own statistics (what tiling without the first passes
  # gives) is visibly different: the statistics passes are what make it exact.
  naive = np.empty_like(expected)
  for r, c in forward.tiles(*photo.shape[:2]):
    own = _untiled(model, params, photo[r.start:r.stop, c.start:c.stop])
    naive[r.core_start:r.core_stop, c.core_start:c.core_stop] = own[
        r.core_start - r.start:r.core_stop - r.start, c.core_start - c.start:c.core_stop - c.start]
  assert np.abs(naive - expected).max() > 1e-2


def test_conditions_blends_and_strength_tile_exactly(photo):
  # With the photo skip (configs/multistyle.py): its gate is per condition.
  model, params = _network(num_styles=3, strength_control=True, photo_skip=True)
  forward = tiling.TiledForward(model, params, tile_size=80)
  for weights, strength in (([0, 1, 0], 1.0), ([0.5, 0.2, 0.3], 1.0), ([1, 0, 0], 0.4)):
    condition = np.asarray(conditioning.condition_vector(
        np.asarray(weights, np.float32), strength, num_styles=3, strength_control=True))
    np.testing.assert_allclose(forward(photo, condition),
                               _untiled(model, params, photo, condition), atol=1e-4)


def test_receptive_radius_is_the_reach_of_one_pixel(small):
  """Checked the other way round: with the statistics fixed, changing a pixel
  further than the radius from the centre leaves the centre's output as it
  was, and one at the radius changes it."""
  model, params, forward = small
  channels, radius = forward.channels, forward.radius
  size = 4 * radius
  stats = tiling._nested({p: {"mean": jnp.full(c, 0.1), "var": jnp.full(c, 2.0)}
                          for p, c in channels.items()})
  apply = jax.jit(lambda x: model.apply({"params": params, layers.NORM_STATS: stats}, x))
  image = np.random.default_rng(2).random((1, size, size, 3)).astype(np.float32)
  centre = size // 2
  base = np.asarray(apply(image))[0, centre, centre]

  def moved(dy, dx):
    changed = image.copy()
    changed[0, centre + dy, centre + dx] += 0.5
    return np.abs(np.asarray(apply(changed))[0, centre, centre] - base).max()

  assert all(moved(dy, dx) == 0 for dy, dx in [(radius + 1, 0), (-radius - 1, 0),
                                               (0, radius + 1), (0, -radius - 1)])
  assert max(moved(dy, dx) for dy, dx in [(radius, 0), (-radius, 0), (0, radius),
                                          (0, -radius)]) > 0


def test_networks_it_cannot_tile_exactly_say_why(small):
  model = cyclegan.ResnetGenerator(ngf=4, num_blocks=1)
  params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
  with pytest.raises(ValueError, match="InstanceNorm"):
    tiling.TiledForward(model, params, tile_size=64)
  model, params, forward = small
  with pytest.raises(ValueError, match=r"tile_size=40: must exceed twice .* halo of 32 px"):
    tiling.TiledForward(model, params, tile_size=40)
  with pytest.raises(ValueError, match="multiples of 4"):
    forward(np.zeros((30, 40, 3), np.float32))


def test_stylizer_tiles_large_images_to_the_same_result(tiny_workdir):
  pixels = np.random.default_rng(3).random((150, 203, 3)).astype(np.float32)  # not multiples of 4
  tiled = jaxstyle.Stylizer.from_workdir(tiny_workdir, tile_size=96)(pixels, max_size=None)
  untiled = jaxstyle.Stylizer.from_workdir(tiny_workdir, tile_size=0)(pixels, max_size=None)
  assert tiled.shape == pixels.shape
  np.testing.assert_allclose(tiled, untiled, atol=1e-4)


def test_large_photo_tool_runs_the_cli_both_ways(tiny_workdir):
  """tools/large_photo.py: the CLI's --max_size=0 --tile_size on a photo larger
  than a tile, against --tile_size=0, in processes of their own."""
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "large_photo.py"), "--workdir", tiny_workdir,
       "--megapixels", "0.03", "--untiled_up_to", "1", "--tile_size", "96"],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines()[2:]]
  assert [r[1].strip() for r in rows] == ["untiled", "tiles of 96"]
  assert all(float(r[2].replace(",", "")) > 50 for r in rows)  # peak MB of a JAX process
  assert int(rows[1][4]) <= 1  # the PNGs agree to 8-bit rounding
