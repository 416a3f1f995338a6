r"""Gatys et al. neural style transfer: optimise the pixels of one image.

  python -m jaxstyle.nst --content photo.jpg --style mosaic --output out.png \
      [--config configs/nst.py --config.num_steps=300 --config.optimizer=adam ...]

The slow, per-image baseline the feed-forward models are measured against. It
uses the training code's VGG loader and losses (`jaxstyle/losses.py`), so its
losses mean the same as theirs: content, Gram style and total variation of
the image x = sigmoid(logits). The sigmoid keeps every iterate in [0, 1] and
leaves an unconstrained problem, which L-BFGS needs (a projection would break
its curvature pairs and linesearch). One optimizer step, linesearch included,
is one jitted function.
"""

import contextlib
import functools
import os
import sys
import time
from typing import Any, Mapping

from absl import app
from absl import flags
from absl import logging
from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax
import tqdm

import jaxstyle
from jaxstyle import atomic_files
from jaxstyle import images as image_io
from jaxstyle import losses
from jaxstyle import run_lib
from jaxstyle.models import vgg
from jaxstyle.models import vgg_weights

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Fails before any work, naming the bad key."""
  if config.optimizer not in OPTIMIZERS:
    raise ValueError(f"config.optimizer={config.optimizer!r}: use one of {OPTIMIZERS}")
  if config.init not in INITS:
    raise ValueError(f"config.init={config.init!r}: use one of {INITS}")
  for key in ("num_steps", "image_size", "style_size"):
    if int(config[key]) < 0:
      raise ValueError(f"config.{key}={config[key]} must be >= 0")
  for key in ("content_weight", "style_weight", "tv_weight", "learning_rate",
              "pixel_margin"):
    if not 0 <= float(config[key]) < float("inf"):
      raise ValueError(f"config.{key}={config[key]} must be finite and >= 0")
  if not 0 < config.pixel_margin < 0.5:
    raise ValueError(f"config.pixel_margin={config.pixel_margin} must be in (0, 0.5)")
  valid = vgg.layer_names(config.vgg.arch)
  for key in ("content_layers", "style_layers"):
    unknown = sorted(set(config[key]) - set(valid))
    if unknown:
      raise ValueError(f"config.{key} has unknown {config.vgg.arch} layers {unknown}; "
                       f"valid: {valid}")


# ----------------------------------------------------------------------------
# Images and the pixel parametrisation.


def resize(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """Antialiased bilinear resize of an HxWx3 image in [0, 1] (as training's)."""
  if tuple(image.shape[:2]) == tuple(hw):
    return np.asarray(image, np.float32)
  out = jax.image.resize(jnp.asarray(image, jnp.float32), tuple(hw) + (3,), "linear",
                         antialias=True)
  return np.clip(np.asarray(out), 0.0, 1.0)


def working_size(hw: tuple[int, int], long_side: int) -> tuple[int, int]:
  """(h, w) with the long side at most `long_side` (0: unchanged), aspect kept."""
  h, w = hw
  if not long_side or max(h, w) <= long_side:
    return h, w
  scale = long_side / max(h, w)
  return max(1, round(h * scale)), max(1, round(w * scale))


def style_size_for(style_hw: tuple[int, int], content_hw: tuple[int, int],
                   style_size: int) -> tuple[int, int]:
  """Style short side = style_size, or (0) style long side = content long side."""
  h, w = style_hw
  scale = (style_size / min(h, w) if style_size
           else max(content_hw) / max(h, w))
  return max(1, round(h * scale)), max(1, round(w * scale))


def min_side(arch: str, layers) -> int:
  """Smallest image side whose deepest requested VGG layer is still >= 1 pixel."""
  names = vgg.layer_names(arch)
  deepest = max(names.index(name) for name in layers)
  return 2 ** sum(name.startswith("pool") for name in names[:deepest])


def to_logits(image01: jax.Array, margin: float) -> jax.Array:
  """Inverse of `to_image` after squeezing pixels into [margin, 1 - margin]."""
  p = margin + (1.0 - 2.0 * margin) * jnp.asarray(image01, jnp.float32)
  return jnp.log(p) - jnp.log1p(-p)


def to_image(logits: jax.Array) -> jax.Array:
  return jax.nn.sigmoid(logits)


# ----------------------------------------------------------------------------
# XLA:CPU work-around for VGG gradients inside the L-BFGS linesearch loop.

_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_NHWC)


@jax.custom_vjp
def _conv_canonical_grad(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A stride-1 SAME convolution whose input gradient is an HWIO convolution too.

  JAX's own transpose rule convolves with the flipped kernel in 'OI' order.
  Outside control flow XLA:CPU transposes that kernel and runs its fast
  convolution; inside a while loop (optax's linesearch) it does not, and the
  VGG backward pass ran 3–5× slower (0.59 s vs 0.13 s per 128² L-BFGS step on
  the 2-core CPU). Transposing the kernel explicitly restores the fast path;
  the gradients are the same (tests/nst_test.py).
  """
  return _conv_same(x, kernel)


def _conv_fwd(x, kernel):
  return _conv_same(x, kernel), (x, kernel)


def _conv_bwd(res, g):
  x, kernel = res
  dx = _conv_same(g, jnp.swapaxes(kernel[::-1, ::-1], 2, 3))
  _, kernel_vjp = jax.vjp(lambda k: _conv_same(x, k), kernel)  # DCE'd for frozen VGG
  return dx, kernel_vjp(g)[0]


_conv_canonical_grad.defvjp(_conv_fwd, _conv_bwd)


def _is_vgg_conv(module: nn.Module, x) -> bool:
  """An nn.Conv that _conv_canonical_grad computes exactly (VGG's: 3×3, SAME, stride 1)."""
  ones = (None, 1, (1, 1))
  return (isinstance(module, nn.Conv) and type(module) is nn.Conv and jnp.ndim(x) == 4
          and tuple(module.kernel_size) == (3, 3) and module.padding == "SAME"
          and module.strides in ones and module.input_dilation in ones
          and module.kernel_dilation in ones and module.feature_group_count == 1
          and module.use_bias and module.dtype is None and module.precision is None)


def _intercept_vgg_conv(next_fun, args, kwargs, context):
  module = context.module
  if context.method_name != "__call__" or kwargs or len(args) != 1 or not _is_vgg_conv(
      module, args[0]):
    return next_fun(*args, **kwargs)
  params = module.variables["params"]
  x = args[0]
  kernel = params["kernel"].astype(jnp.result_type(x, params["kernel"]))
  return _conv_canonical_grad(x.astype(kernel.dtype), kernel) + params["bias"]


def canonical_conv_gradients() -> contextlib.AbstractContextManager:
  """Within it, VGG convolutions use _conv_canonical_grad (same values, faster grads)."""
  return nn.intercept_methods(_intercept_vgg_conv)


# ----------------------------------------------------------------------------
# The objective.


def compute_targets(loss_net: vgg.LossNetwork, content01: jax.Array, style01: jax.Array,
                    content_layers: Mapping[str, float],
                    style_layers: Mapping[str, float]) -> dict[str, Any]:
  """Content features and style Gram matrices of (1, H, W, 3) images."""
  content = loss_net.features(content01, sorted(content_layers))
  style = loss_net.features(style01, sorted(style_layers))
  return {"content": {k: content[k] for k in content_layers},
          "grams": {k: losses.gram_matrix(style[k]) for k in style_layers}}


def loss_terms(logits: jax.Array, loss_net: vgg.LossNetwork, targets: Mapping[str, Any],
               weights: Mapping[str, jax.Array], *, content_layers: Mapping[str, float],
               style_layers: Mapping[str, float]) -> dict[str, jax.Array]:
  """Unweighted content/style/tv terms of sigmoid(logits) (1, H, W, 3) and the total.

  content = Σ_l w_l ‖F_l − T_l‖²/‖T_l‖², style = Σ_l w_l ‖G_l − A_l‖²/‖A_l‖²
  (losses.content_loss / style_loss), tv = losses.total_variation;
  total = weights['content']·content + weights['style']·style + weights['tv']·tv.
  """
  image = to_image(logits)
  with canonical_conv_gradients():
    feats = loss_net.features(image, sorted(set(content_layers) | set(style_layers)))
  content = (losses.content_loss(feats, targets["content"], content_layers)
             if content_layers else jnp.zeros(()))
  style = sum(losses.style_loss(feats, targets["grams"], style_layers).values(),
              jnp.zeros(()))
  tv = losses.total_variation(image)
  total = weights["content"] * content + weights["style"] * style + weights["tv"] * tv
  return {"total": total, "content": content, "style": style, "tv": tv}


def loss_weights(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """The term weights as arrays: arguments, so changing them does not recompile."""
  return {k: jnp.float32(config[f"{k}_weight"]) for k in ("content", "style", "tv")}


def objective_fn(config: ml_collections.ConfigDict):
  """fn(logits, loss_net, targets, weights) -> loss_terms, the config's layers bound."""
  return _objective_fn(tuple(config.content_layers.items()),
                       tuple(config.style_layers.items()))


@functools.lru_cache(maxsize=None)
def _objective_fn(content_layers: tuple, style_layers: tuple):
  return functools.partial(loss_terms, content_layers=dict(content_layers),
                           style_layers=dict(style_layers))


def make_step(config: ml_collections.ConfigDict):
  """(optimizer, jitted step(logits, opt_state, loss_net, targets, weights)
  -> (logits, opt_state, loss before the update)).

  Cached per optimizer setting and layers, so repeated calls (an evaluation
  over many images of one size) compile once.
  """
  return _make_step(config.optimizer, float(config.learning_rate),
                    int(config.lbfgs_memory_size), tuple(config.content_layers.items()),
                    tuple(config.style_layers.items()))


@functools.lru_cache(maxsize=None)
def _make_step(optimizer: str, learning_rate: float, memory_size: int,
               content_layers: tuple, style_layers: tuple):
  terms = _objective_fn(content_layers, style_layers)

  def value_fn(logits, loss_net, targets, weights):
    return terms(logits, loss_net, targets, weights)["total"]

  if optimizer == "lbfgs":
    tx = optax.lbfgs(memory_size=memory_size)
    # Reuses the value and gradient the linesearch computed at the accepted point.
    value_and_grad = optax.value_and_grad_from_state(value_fn)

    def step(logits, opt_state, loss_net, targets, weights):
      value, grad = value_and_grad(logits, loss_net, targets, weights, state=opt_state)
      updates, opt_state = tx.update(grad, opt_state, logits, value=value, grad=grad,
                                     value_fn=value_fn, loss_net=loss_net, targets=targets,
                                     weights=weights)
      return optax.apply_updates(logits, updates), opt_state, value
  else:
    tx = optax.adam(learning_rate)

    def step(logits, opt_state, loss_net, targets, weights):
      value, grad = jax.value_and_grad(value_fn)(logits, loss_net, targets, weights)
      updates, opt_state = tx.update(grad, opt_state, logits)
      return optax.apply_updates(logits, updates), opt_state, value
  return tx, jax.jit(step)


@functools.lru_cache(maxsize=None)
def _jitted_terms(content_layers: tuple, style_layers: tuple):
  return jax.jit(_objective_fn(content_layers, style_layers))


@functools.lru_cache(maxsize=None)
def _jitted_targets(content_layers: tuple, style_layers: tuple):
  return jax.jit(functools.partial(compute_targets, content_layers=dict(content_layers),
                                   style_layers=dict(style_layers)))


def _evaluations(optimizer: str, opt_state, first: bool) -> int:
  """Objective value+gradient evaluations of one step.

  Adam: one. L-BFGS: one per linesearch trial, plus the first step's own
  (later steps reuse the linesearch's value and gradient at the accepted point).
  """
  if optimizer != "lbfgs":
    return 1
  return int(optax.tree_utils.tree_get(opt_state, "num_linesearch_steps")) + int(first)


# ----------------------------------------------------------------------------
# Public API.


def stylize(content: np.ndarray, style: np.ndarray, config: ml_collections.ConfigDict,
            loss_net: vgg.LossNetwork | None = None,
            progress: bool = True) -> tuple[np.ndarray, dict]:
  """Gatys NST of one HxWx3 [0, 1] content image with one style image.

  Works at `working_size(content, config.image_size)`, the style resized per
  `style_size_for`; returns (HxWx3 float32 in [0, 1] at the content's own size,
  info). info: steps, seconds (targets + optimisation, compilation included),
  step_seconds (mean of the steps after the first, which may compile),
  loss_initial / loss_final (weighted total at the start / end image),
  {content,style,tv}_loss_{initial,final} (unweighted terms, see `loss_terms`),
  losses (total before each step), objective_evaluations (value+gradient
  passes, linesearch included), working_size, style_size, optimizer, vgg.
  Raises ValueError for a bad config or image, FloatingPointError naming the
  step if the loss stops being finite.
  """
  validate_config(config)
  for name, image in (("content", content), ("style", style)):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f"{name} image must be HxWx3, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
      raise ValueError(f"{name} image has non-finite pixels")
  if loss_net is None:
    loss_net = vgg.load_loss_network(config.vgg.arch, config.vgg.source,
                                     config.vgg.path or None)
  start = time.perf_counter()
  content = np.asarray(content, np.float32)
  hw = working_size(content.shape[:2], int(config.image_size))
  work = resize(content, hw)
  style_hw = style_size_for(np.shape(style)[:2], hw, int(config.style_size))
  style_img = resize(np.asarray(style, np.float32), style_hw)
  need = min_side(config.vgg.arch, set(config.content_layers) | set(config.style_layers))
  for name, size in (("content", hw), ("style", style_hw)):
    if min(size) < need:
      raise ValueError(
          f"the {name} image is {size[0]}×{size[1]} at the working scale; the deepest "
          f"loss layer needs at least {need} px per side (raise config.image_size / "
          "config.style_size or use shallower layers)")

  layers = tuple(config.content_layers.items()), tuple(config.style_layers.items())
  targets = _jitted_targets(*layers)(loss_net, work[None], style_img[None])
  if config.init == "content":
    init = work[None]
  else:
    init = jax.random.uniform(jax.random.key(config.seed), (1,) + hw + (3,))
  logits = to_logits(init, float(config.pixel_margin))

  weights = loss_weights(config)
  terms_fn = _jitted_terms(*layers)
  initial = {k: float(v) for k, v in terms_fn(logits, loss_net, targets, weights).items()}
  tx, step = make_step(config)
  opt_state = tx.init(logits)
  evaluations, step_times, history = 0, [], []
  bar = tqdm.trange(int(config.num_steps), desc=f"nst {config.optimizer}", unit="step",
                    disable=not progress, file=sys.stderr, dynamic_ncols=True)
  for i in bar:
    t = time.perf_counter()
    logits, opt_state, value = step(logits, opt_state, loss_net, targets, weights)
    value = float(value)  # loss at the iterate before this step's update
    step_times.append(time.perf_counter() - t)
    if not np.isfinite(value):
      raise FloatingPointError(
          f"NST loss is {value} at step {i} (optimizer {config.optimizer}); check the "
          "loss network weights, or lower config.learning_rate / the loss weights")
    history.append(value)
    evaluations += _evaluations(config.optimizer, opt_state, first=(i == 0))
    bar.set_postfix(loss=f"{value:.4g}", refresh=False)
  bar.close()
  final = {k: float(v) for k, v in terms_fn(logits, loss_net, targets, weights).items()}
  if not np.isfinite(final["total"]):
    raise FloatingPointError(f"NST loss is {final['total']} after the last step "
                             f"({config.num_steps}, optimizer {config.optimizer})")
  out = resize(np.asarray(to_image(logits))[0], content.shape[:2])
  info = {
      "steps": int(config.num_steps),
      "seconds": time.perf_counter() - start,
      "step_seconds": float(np.mean(step_times[1:])) if len(step_times) > 1 else None,
      "loss_initial": initial["total"],
      "loss_final": final["total"],
      "losses": history,
      "objective_evaluations": evaluations,
      "optimizer": config.optimizer,
      "working_size": list(hw),
      "style_size": list(style_hw),
      "vgg": loss_net.description,
  }
  for k in ("content", "style", "tv"):
    info[f"{k}_loss_initial"] = initial[k]
    info[f"{k}_loss_final"] = final[k]
  return out, info


# ----------------------------------------------------------------------------
# CLI.


def define_flags() -> None:
  flags.DEFINE_string("content", None, "Content image file.")
  flags.DEFINE_string("style", None, "Style image file or a shipped style name (mosaic, ...).")
  flags.DEFINE_string("output", None, "Output PNG (written atomically).")
  flags.DEFINE_bool("progress", True, "Show a progress bar.")
  config_flags.DEFINE_config_file(
      "config", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "configs", "nst.py"),
      "NST configuration file (configs/nst.py).", lock_config=True)
  flags.mark_flags_as_required(["content", "style", "output"])


def _fail(message: str) -> None:
  print(f"jaxstyle.nst: {message}", file=sys.stderr)
  sys.exit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  config = FLAGS.config
  try:
    style_path = run_lib.resolve_style_path(FLAGS.style)
  except FileNotFoundError:
    shipped = sorted(os.path.splitext(f)[0] for f in os.listdir(jaxstyle.STYLES_DIR))
    _fail(f"{FLAGS.style}: no such style image file, nor a shipped style "
          f"({', '.join(shipped)})")
  try:
    validate_config(config)
    # Shrinking here (not only in stylize) keeps the output at the working size.
    content = image_io.load_image(FLAGS.content, max_size=int(config.image_size) or None)
    style = image_io.load_image(style_path)
  except (image_io.ImageError, ValueError) as e:
    _fail(str(e).splitlines()[0])
  out_dir = os.path.dirname(os.path.abspath(FLAGS.output))
  if not os.path.isdir(out_dir):
    _fail(f"{FLAGS.output}: output folder {out_dir} does not exist")
  try:
    loss_net = vgg.load_loss_network(config.vgg.arch, config.vgg.source,
                                     config.vgg.path or None)
  except (vgg_weights.WeightsError, ValueError) as e:
    _fail(str(e).splitlines()[0])
  logging.info("Loss network: %s", loss_net.description)
  try:
    result, info = stylize(content, style, config, loss_net, progress=FLAGS.progress)
  except FloatingPointError as e:
    _fail(str(e))
  image_io.save_png(result, FLAGS.output)
  info.update(content=os.path.abspath(FLAGS.content), style=os.path.abspath(style_path),
              config=config.to_dict())
  json_path = os.path.splitext(FLAGS.output)[0] + ".json"
  atomic_files.write_json(json_path, info)
  print(f"jaxstyle.nst: wrote {FLAGS.output} ({info['steps']} {info['optimizer']} steps, "
        f"{info['seconds']:.1f} s, loss {info['loss_initial']:.4g} -> "
        f"{info['loss_final']:.4g})")


if __name__ == "__main__":
  define_flags()
  app.run(main)
