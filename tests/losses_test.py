"""Losses against straightforward numpy/float64 implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import losses


def _np_gram(f):
  b, h, w, c = f.shape
  flat = f.reshape(b, h * w, c).astype(np.float64)
  return np.stack([m.T @ m for m in flat]) / (h * w)


def test_gram_matrix_matches_numpy():
  f = np.random.default_rng(0).normal(size=(3, 5, 6, 4)).astype(np.float32)
  np.testing.assert_allclose(losses.gram_matrix(jnp.asarray(f)), _np_gram(f),
                             rtol=1e-5, atol=1e-6)


def test_style_loss_matches_numpy_with_layer_weights():
  rng = np.random.default_rng(1)
  feats = {"a": rng.normal(size=(2, 4, 4, 3)), "b": rng.normal(size=(2, 2, 2, 5))}
  style = {"a": rng.normal(size=(1, 4, 4, 3)), "b": rng.normal(size=(1, 2, 2, 5))}
  weights = {"a": 0.3, "b": 2.0}
  grams = {k: _np_gram(v) for k, v in style.items()}
  got = losses.style_loss({k: jnp.asarray(v, jnp.float32) for k, v in feats.items()},
                          {k: jnp.asarray(v, jnp.float32) for k, v in grams.items()},
                          weights)
  for name, w in weights.items():
    g = _np_gram(feats[name])
    rel = [np.sum((g[i] - grams[name][0]) ** 2) / np.sum(grams[name][0] ** 2)
           for i in range(2)]
    np.testing.assert_allclose(got[name], w * np.mean(rel), rtol=1e-4)
  # Doubling one layer's weight doubles only that term.
  doubled = losses.style_loss(
      {k: jnp.asarray(v, jnp.float32) for k, v in feats.items()},
      {k: jnp.asarray(v, jnp.float32) for k, v in grams.items()},
      {"a": 0.6, "b": 2.0})
  np.testing.assert_allclose(doubled["a"], 2 * got["a"], rtol=1e-6)
  np.testing.assert_allclose(doubled["b"], got["b"], rtol=1e-6)


def test_style_loss_zero_for_identical_statistics():
  f = np.random.default_rng(2).normal(size=(1, 8, 8, 4)).astype(np.float32)
  g = losses.gram_matrix(jnp.asarray(f))
  out = losses.style_loss({"x": jnp.asarray(f)}, {"x": g}, {"x": 1.0})
  assert float(out["x"]) < 1e-10


def test_content_loss_matches_numpy():
  rng = np.random.default_rng(3)
  f = rng.normal(size=(2, 3, 3, 4))
  t = rng.normal(size=(2, 3, 3, 4))
  got = losses.content_loss({"c": jnp.asarray(f, jnp.float32)},
                            {"c": jnp.asarray(t, jnp.float32)}, {"c": 0.5})
  rel = [np.sum((f[i] - t[i]) ** 2) / np.sum(t[i] ** 2) for i in range(2)]
  np.testing.assert_allclose(got, 0.5 * np.mean(rel), rtol=1e-5)


def test_total_variation_matches_numpy():
  x = np.random.default_rng(4).uniform(size=(2, 5, 7, 3))
  want = (np.mean((x[:, 1:] - x[:, :-1]) ** 2) + np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2))
  np.testing.assert_allclose(losses.total_variation(jnp.asarray(x, jnp.float32)), want,
                             rtol=1e-5)
  assert float(losses.total_variation(jnp.ones((1, 4, 4, 3)))) == 0.0


# ----------------------------------------------------------------------------
# Local (patch) style loss.


def _np_local_style(f, s, k, stride):
  """Brute force in float64: explicit loops over output and style patches.

  f (B, H, W, C) output features, s (1, Hs, Ws, C) style features. Returns
  (loss averaged over the batch, (B, Ho, Wo) index of each patch's match).
  """
  f, s = f.astype(np.float64), s.astype(np.float64)
  style = [s[0, y:y + k, x:x + k]
           for y in range(0, s.shape[1] - k + 1, stride)
           for x in range(0, s.shape[2] - k + 1, stride)]
  b, h, w, _ = f.shape
  nn = np.zeros((b, h - k + 1, w - k + 1), np.int64)
  per_sample = []
  for i in range(b):
    err = norm = 0.0
    for y in range(h - k + 1):
      for x in range(w - k + 1):
        p = f[i, y:y + k, x:x + k]
        ncc = [np.sum(p * q) / (np.linalg.norm(p) * np.linalg.norm(q)) for q in style]
        j = int(np.argmax(ncc))
        nn[i, y, x] = j
        err += np.sum((p - style[j]) ** 2)
        norm += np.sum(style[j] ** 2)
    per_sample.append(err / norm)
  return np.mean(per_sample), nn


def _relu_features(rng, shape):
  """Sparse non-negative features, like VGG ReLU activations."""
  return np.maximum(rng.normal(size=shape), 0.0).astype(np.float32)


@pytest.mark.parametrize("stride", [1, 2])
def test_local_style_loss_and_matches_equal_numpy_bruteforce(stride):
  rng = np.random.default_rng(5)
  feats = {"a": _relu_features(rng, (2, 7, 6, 5)), "b": _relu_features(rng, (2, 5, 5, 8))}
  style = {"a": _relu_features(rng, (1, 9, 8, 5)), "b": _relu_features(rng, (1, 6, 7, 8))}
  weights = {"a": 0.5, "b": 2.0}
  targets = losses.local_style_targets(
      {k: jnp.asarray(v) for k, v in style.items()}, weights, 3, stride)
  got = losses.local_style_loss({k: jnp.asarray(v) for k, v in feats.items()},
                                targets, weights, 3)
  for name, w in weights.items():
    want, want_nn = _np_local_style(feats[name], style[name], 3, stride)
    # float32 sums of ~500 terms vs float64.
    np.testing.assert_allclose(got[name], w * want, rtol=2e-5)
    nn = losses.local_style_matches(jnp.asarray(feats[name]), targets[name])
    np.testing.assert_array_equal(nn, want_nn)


def test_local_style_matches_in_chunks_equal_one_block():
  # 10 output rows of 2·10 patches (k²C = 36) against 64 style patches: a
  # row is 2·10·(64 + 36)·4 = 8000 bytes of patches and correlations. 1 row
  # per block: 10 blocks; 3 rows: 4 blocks, the last overlapping the one
  # before; 1 GiB: a single block.
  rng = np.random.default_rng(6)
  f = _relu_features(rng, (2, 12, 12, 4))
  s = _relu_features(rng, (1, 10, 10, 4))
  targets = losses.local_style_targets({"x": jnp.asarray(s)}, {"x": 1.0}, 3, 1)["x"]
  _, want_nn = _np_local_style(f, s, 3, 1)
  for chunk_bytes in (1, 3 * 8000, 1 << 30):
    nn = jax.jit(losses.local_style_matches, static_argnums=2)(
        jnp.asarray(f), targets, chunk_bytes)
    np.testing.assert_array_equal(nn, want_nn)


def test_local_style_targets_shapes_jit_and_bank():
  rng = np.random.default_rng(7)
  s = jnp.asarray(_relu_features(rng, (1, 11, 9, 6)))
  for k, stride, n in [(3, 1, 9 * 7), (3, 2, 5 * 4), (5, 3, 3 * 2)]:
    t = losses.local_style_targets({"x": s}, {"x": 1.0}, k, stride)
    assert t["x"].shape == (n, k, k, 6)
  # Fixed shapes: a bank of perturbed style images vmaps to a leading axis.
  bank = jnp.stack([s, 2 * s, s + 1])
  stacked = jax.jit(jax.vmap(lambda x: losses.local_style_targets({"x": x}, {"x": 1.0}, 3, 2)))(bank)
  assert stacked["x"].shape == (3, 20, 3, 3, 6)
  for i, image in enumerate(bank):
    want = losses.local_style_targets({"x": image}, {"x": 1.0}, 3, 2)["x"]
    np.testing.assert_allclose(stacked["x"][i], want, rtol=1e-6)
  # Patch j is the window at row-major position j of the strided grid.
  np.testing.assert_array_equal(stacked["x"][0][6], s[0, 2:5, 4:7])
  with pytest.raises(ValueError, match="patch_size=3"):
    losses.local_style_loss({"x": s}, {"x": stacked["x"][0][:, :2, :2]}, {"x": 1.0}, 3)


def test_local_style_loss_zero_for_identical_features_positive_otherwise():
  rng = np.random.default_rng(8)
  s = _relu_features(rng, (1, 10, 12, 16))
  targets = losses.local_style_targets({"x": jnp.asarray(s)}, {"x": 1.0}, 3, 1)
  same = losses.local_style_loss({"x": jnp.asarray(np.concatenate([s, s]))},
                                 targets, {"x": 1.0}, 3)
  assert float(same["x"]) < 1e-10
  other = losses.local_style_loss({"x": jnp.asarray(_relu_features(rng, (2, 10, 12, 16)))},
                                  targets, {"x": 1.0}, 3)
  assert float(other["x"]) > 0.1
  # An all-zero output costs exactly 1 (relative error).
  zero = losses.local_style_loss({"x": jnp.zeros((1, 6, 6, 16))}, targets, {"x": 1.0}, 3)
  np.testing.assert_allclose(zero["x"], 1.0, rtol=1e-6)


def test_local_style_loss_gradient_matches_finite_differences():
  rng = np.random.default_rng(9)
  with jax.enable_x64(True):
    f = jnp.asarray(rng.normal(size=(2, 5, 4, 3)))
    s = jnp.asarray(rng.normal(size=(1, 6, 6, 3)))
    targets = losses.local_style_targets({"x": s}, {"x": 1.0}, 3, 1)
    loss = jax.jit(lambda f: losses.local_style_loss({"x": f}, targets, {"x": 1.5}, 3)["x"])
    grad = np.asarray(jax.grad(loss)(f))
    assert grad.dtype == np.float64 and np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0
    matches = jax.jit(lambda f: losses.local_style_matches(f, targets["x"]))
    base_nn = np.asarray(matches(f))
    eps = 1e-4
    fd = np.zeros(f.size)
    for i in range(f.size):
      step = np.zeros(f.size)
      step[i] = eps
      step = jnp.asarray(step.reshape(f.shape))
      # The matching is piecewise constant: the difference is only the
      # gradient where no match changes within ±eps.
      assert (np.asarray(matches(f + step)) == base_nn).all()
      assert (np.asarray(matches(f - step)) == base_nn).all()
      fd[i] = (loss(f + step) - loss(f - step)) / (2 * eps)
    # Within a fixed matching the loss is quadratic: central differences are
    # exact up to float64 rounding (~1e-16 / 1e-4).
    np.testing.assert_allclose(grad.reshape(-1), fd, rtol=1e-7, atol=1e-10)


def test_output_gain_matches_numpy_and_is_one_for_the_identity():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(2, 16, 16, 3))
  std = 0.01
  noisy = x + std * rng.standard_normal(x.shape)
  out = np.tanh(3 * x)
  out_noisy = np.tanh(3 * noisy)
  want = np.mean((out_noisy - out) ** 2) / std**2
  got = losses.output_gain(jnp.asarray(out, jnp.float32), jnp.asarray(out_noisy, jnp.float32), std)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)
  # Identity: the sample mean of n²/σ² over 1536 values, 1 ± ~4 standard errors.
  identity = float(losses.output_gain(jnp.asarray(x), jnp.asarray(noisy), std))
  assert abs(identity - 1) < 4 * np.sqrt(2 / x.size), identity
  assert float(losses.output_gain(jnp.asarray(2 * x), jnp.asarray(2 * noisy), std)) == (
      pytest.approx(4 * identity, rel=1e-4))


def _np_quantiles(images, num):
  """Each channel's sorted pixel values at positions ⌊(i + ½)/num · N⌋, float64."""
  b, h, w, c = images.shape
  flat = np.sort(images.reshape(b, h * w, c).astype(np.float64), axis=1)
  return flat[:, [int((i + 0.5) / num * h * w) for i in range(num)], :]


def test_color_distribution_loss_matches_numpy():
  rng = np.random.default_rng(7)
  images = rng.random((2, 12, 10, 3)).astype(np.float32)
  style = rng.beta(2, 5, (1, 9, 14, 3)).astype(np.float32)
  target = losses.color_quantiles(jnp.asarray(style), 32)
  np.testing.assert_array_equal(target, _np_quantiles(style, 32).astype(np.float32))
  q, t = _np_quantiles(images, 32), _np_quantiles(style, 32)
  want = np.mean(np.sum((q - t) ** 2, axis=(1, 2)) / np.sum(t ** 2))
  got = losses.color_distribution_loss(jnp.asarray(images), target)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  per_example = losses.color_distribution_loss(jnp.asarray(images), target, per_example=True)
  np.testing.assert_allclose(np.mean(per_example), want, rtol=1e-5)


def test_color_distribution_loss_sees_the_palette_not_the_layout():
  rng = np.random.default_rng(8)
  style = rng.random((1, 16, 16, 3)).astype(np.float32)
  target = losses.color_quantiles(jnp.asarray(style))
  shuffled = rng.permutation(style.reshape(256, 3)).reshape(1, 16, 16, 3)
  assert float(losses.color_distribution_loss(jnp.asarray(shuffled), target)) == 0.0
  darker = losses.color_distribution_loss(jnp.asarray(style * 0.8), target)
  np.testing.assert_allclose(darker, 0.04, rtol=1e-5)  # ‖0.2 t‖² / ‖t‖²
  grad = jax.grad(lambda x: losses.color_distribution_loss(x, target))(jnp.asarray(style * 0.8))
  assert np.all(np.isfinite(grad)) and float(jnp.sum(grad)) < 0  # brighter lowers it
