"""TensorFlow SavedModel via jax2tf, for TF Serving.

jax2tf serializes the network as StableHLO inside one `XlaCallModule` op,
lowered for CPU and CUDA. Signature `serving_default`: `image` float32
[batch, H, W, 3] in [0, 1] → `stylized`, same shape; H and W multiples of the
size multiple and at least twice it (reflect padding at the lowest level
needs 2 pixels there, a constraint JAX checks when it serializes).

The network traced is the training-time one (`depthwise_impl` as configured:
shifted multiply-adds on CPU), since XLA runs the grouped-convolution form
~20× slower on CPU. One change while tracing: instance norm takes its means
over H, then W (same parameters, same function). TensorFlow's XLA reduces a
1024² plane in one running fp32 sum (2e-5 relative error, 2e-4 at the
output); two short reductions are as exact as JAX's (3e-7).
TFLite cannot convert `XlaCallModule`; use the ONNX model for mobile runtimes
other than Core ML.
"""

import contextlib
import dataclasses
import json
import os

import numpy as np

from jaxstyle.export.errors import ExportError
from jaxstyle.models import layers

PLATFORMS = ("cpu", "cuda")


class _TwoStageInstanceNorm(layers.InstanceNorm):
  """layers.InstanceNorm with each mean as two short reductions (see above)."""
  two_stage_mean: bool = True


@contextlib.contextmanager
def _two_stage_norms():
  original = layers.InstanceNorm
  layers.InstanceNorm = _TwoStageInstanceNorm
  try:
    yield
  finally:
    layers.InstanceNorm = original


def export(model, path: str, params=None) -> None:
  """Writes a SavedModel directory at `path` (which must not exist)."""
  with _two_stage_norms():
    _export(model, path, params)


def _tensorflow():
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ExportError("savedmodel: needs TensorFlow (pip install 'jaxstyle[tf]'); "
                      "--formats coreml,onnx exports without it") from e
  return tf


def _export(model, path, params):
  tf = _tensorflow()
  from jax.experimental import jax2tf
  params = model.params if params is None else params
  m = model.multiple
  extra = model.extra_inputs()
  reference = dataclasses.replace(model, export_model=model.reference_model)
  fn = jax2tf.convert(
      reference.export_fn(params),
      polymorphic_shapes=[f"(b, {m}*h, {m}*w, 3)"] + [None] * len(extra),
      polymorphic_constraints=("h >= 2", "w >= 2"),
      with_gradient=False, native_serialization_platforms=PLATFORMS)
  module = tf.Module()
  module.stylize = tf.function(
      lambda image, *controls: {"stylized": fn(image, *controls)},
      input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="image")] + [
          tf.TensorSpec(shape, tf.float32, name=name) for name, shape in extra],
      autograph=False)
  tf.saved_model.save(module, path, signatures={"serving_default": module.stylize})
  with open(os.path.join(path, "jaxstyle.json"), "w") as f:
    json.dump(model.metadata(), f, indent=2)


class Runner:
  """Loads a SavedModel once and stylizes NHWC batches with TensorFlow."""

  def __init__(self, path: str):
    tf = _tensorflow()
    self._tf = tf
    self._fn = tf.saved_model.load(path).signatures["serving_default"]

  def __call__(self, images: np.ndarray, **controls: np.ndarray) -> np.ndarray:
    """`controls`: a multi-style model's style_weights [N] (and strength [1])."""
    x = self._tf.constant(np.asarray(images, np.float32))
    extra = {k: self._tf.constant(np.asarray(v, np.float32)) for k, v in controls.items()}
    return self._fn(image=x, **extra)["stylized"].numpy()
