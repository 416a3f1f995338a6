"""Losses against straightforward numpy/float64 implementations."""

import jax.numpy as jnp
import numpy as np

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
