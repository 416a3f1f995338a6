r"""Trains a feed-forward style-transfer network with perceptual losses.

  python -m jaxstyle.train --config configs/quickstart.py --workdir runs/quickstart \
      [--config.style.image=candy --config.num_train_steps=2000 ...]

Data parallel over every device of every host: one `jax.jit` step over a
('data',) mesh, the batch sharded on its leading axis, parameters replicated;
XLA inserts the gradient all-reduce. Rerunning the same command resumes from the
last checkpoint with the same data order; on SIGTERM (preemption) the run saves
a checkpoint after the current step and exits with status 143. No TensorFlow:
Grain reads the data, `jaxstyle.summary_writer` writes TensorBoard.
"""

import functools
import importlib
import json
import os
import sys
import time
from typing import Mapping

from absl import app
from absl import flags
from absl import logging
from flax.training.train_state import TrainState
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax
import tqdm

from jaxstyle import atomic_files
from jaxstyle import checkpointing
from jaxstyle import control_strips
from jaxstyle import distributed
from jaxstyle import images as image_io
from jaxstyle import data_config
from jaxstyle import losses
from jaxstyle import metrics as quality_metrics
from jaxstyle import objectives
from jaxstyle import models
from jaxstyle import preemption
from jaxstyle import run_lib
from jaxstyle import style_controls
from jaxstyle import style_perturbation
from jaxstyle import summary_writer
from jaxstyle.models import half_precision
from jaxstyle.models import vgg


# ----------------------------------------------------------------------------
# Set-up pieces.


def create_optimizer(opt: ml_collections.ConfigDict,
                     num_steps: int) -> optax.GradientTransformation:
  """SGD (momentum) or Adam with linear warm-up then cosine decay."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=opt.learning_rate,
      warmup_steps=opt.warmup_steps, decay_steps=max(num_steps, opt.warmup_steps + 1),
      end_value=opt.learning_rate * opt.end_learning_rate_factor)
  if opt.name == "sgd":
    tx = optax.sgd(schedule, momentum=opt.momentum or None, nesterov=opt.nesterov)
  elif opt.name == "adam":
    tx = optax.adam(schedule)
  else:
    raise ValueError(f"config.optimizer.name={opt.name!r}: use 'sgd' or 'adam'")
  chain = []
  if opt.grad_clip_norm:
    chain.append(optax.clip_by_global_norm(opt.grad_clip_norm))
  if opt.weight_decay:
    chain.append(optax.add_decayed_weights(opt.weight_decay))
  return optax.chain(*chain, tx), schedule


# ----------------------------------------------------------------------------
# The step (what it minimises: jaxstyle.objectives).


def train_step(state: TrainState, batch, style_image, precomputed_targets,
               loss_net, *, loss_fn, targets_fn, seed=0):
  """One SGD step; the style targets of this step come from `targets_fn`."""
  targets = targets_fn(state.step, loss_net, style_image, precomputed_targets)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (_, metrics), grads = grad_fn(state.params, batch, targets, loss_net,
                                objectives.noise_key(seed, state.step))
  metrics["grad_norm"] = optax.global_norm(grads)
  return state.apply_gradients(grads=grads), metrics


# ----------------------------------------------------------------------------
# The run.


class Trainer:
  """Everything a run needs, built once from the config."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    validate_config(config)
    self.config = config
    self.workdir = workdir
    # Auto axis: XLA's partitioner propagates the batch sharding through the
    # model and inserts the gradient all-reduce.
    self.mesh = jax.make_mesh((jax.device_count(),), ("data",),
                              axis_types=(jax.sharding.AxisType.Auto,))
    self.replicated = NamedSharding(self.mesh, P())
    self.data_sharding = NamedSharding(self.mesh, P("data"))

    self.model = models.create_model(config.model)
    if config.data.image_size % self.model.size_multiple:
      raise ValueError(f"config.data.image_size={config.data.image_size} must be a "
                       f"multiple of {self.model.size_multiple} for this model")
    # A pytree whose only leaves are the VGG weights: passed to the jitted
    # step as an argument, replicated, never baked in as constants.
    self.loss_net = jax.device_put(vgg.load_loss_network(
        config.vgg.arch, config.vgg.source, config.vgg.path or None), self.replicated)
    self.tx, self.schedule = create_optimizer(config.optimizer, config.num_train_steps)

    # The styles of the run: config.style.images (a multi-style network, its
    # condition i is style i) or the one config.style.image.
    self.style_paths = [run_lib.resolve_style_path(s)
                        for s in style_controls.style_sources(config.style)]
    self.style_names = [style_controls.style_name(p) for p in self.style_paths]
    styles_full = [image_io.load_image(p) for p in self.style_paths]
    self.style_images = [run_lib.resize_short_side(im, config.style.size) for im in styles_full]
    self.style_path, self.style_image = self.style_paths[0], self.style_images[0]
    # The style images of the quality metrics (docs' protocol), whatever the
    # training size: runs with different config.style.size stay comparable.
    self.metric_style_grams = [
        quality_metrics.gram_matrices(
            self.loss_net, run_lib.resize_short_side(im, quality_metrics.STYLE_SIZE),
            quality_metrics.STYLE_LAYERS)
        for im in styles_full]
    self.num_conditions = getattr(self.model, "num_conditions", 1)
    # Targets of the unperturbed style images, stacked on the leading axis:
    # for evaluation, and for training when perturbation is off.
    target_fn = functools.partial(objectives.style_targets, loss_cfg=config.loss)
    jitted_targets = jax.jit(target_fn)
    per_style = [jitted_targets(self.loss_net, im[None]) for im in self.style_images]
    self.style_targets = jax.device_put(
        per_style[0] if len(per_style) == 1 else
        jax.tree.map(lambda *t: jnp.concatenate(t), *per_style), self.replicated)
    # Style perturbation: the step's targets are drawn from a bank built
    # once ('bank'), or computed in the step from a perturbed copy of the
    # image ('per_step'); 'none' uses the fixed targets.
    perturb = style_perturbation.validate_perturb_config(config.style.get("perturb"))
    if perturb.mode == "none":
      self.precomputed_targets = self.style_targets
    else:
      self.precomputed_targets = jax.device_put(
          style_perturbation.precompute_targets(
              target_fn, self.loss_net, self.style_image, perturb, config.seed),
          self.replicated)
    self.style_image_device = self.replicate(self.style_image)

    def targets_fn(step, loss_net, style_image, precomputed):
      return style_perturbation.targets_for_step(
          style_perturbation.step_key(config.seed, step), perturb,
          target_fn=target_fn, loss_net=loss_net, style_image=style_image,
          precomputed=precomputed)

    loss_fn = functools.partial(
        objectives.conditional_losses if self.num_conditions > 1 else objectives.compute_losses,
        model=self.model, loss_cfg=config.loss)
    self.train_step = jax.jit(
        functools.partial(train_step, loss_fn=loss_fn, targets_fn=targets_fn,
                          seed=config.seed),
        in_shardings=(self.replicated, self.data_sharding, self.replicated,
                      self.replicated, self.replicated),
        out_shardings=(self.replicated, self.replicated),
        donate_argnums=(0,))
    self.eval_fn = jax.jit(self._eval_one)

  def init_state(self) -> TrainState:
    size = self.config.data.image_size
    init = lambda rng: TrainState.create(
        apply_fn=self.model.apply, tx=self.tx,
        params=self.model.init(rng, *models.init_inputs(self.model, size))["params"])
    return jax.jit(init, out_shardings=self.replicated)(
        jax.random.key(self.config.seed))

  def _eval_one(self, params, image, targets, loss_net, condition):
    # Both stability gains, whether or not one is trained for; the same
    # noise at every evaluation, so that runs compare.
    stylized, noise_gain = objectives.stability_gain(
        self.model, params, image[None], "input_noise", objectives.EVAL_NOISE_STD,
        jax.random.key(0), condition)
    fp16_gain = losses.output_gain(
        stylized, half_precision.apply_fp16(self.model, params, image[None], condition),
        half_precision.UNIT_ROUNDOFF)
    _, metrics = objectives.perceptual_losses(stylized, image[None], targets, loss_net,
                                              self.config.loss)
    metrics["input_noise_gain"] = noise_gain
    metrics["fp16_gain"] = fp16_gain
    return stylized[0], metrics

  def _condition(self, index: int) -> jax.Array | None:
    """The one-hot condition of style `index` (the identity row: num_styles)."""
    if self.num_conditions == 1:
      return None
    return self.replicate(np.eye(self.num_conditions, dtype=np.float32)[index:index + 1])

  def eval_labels(self, names: list[str], contents: list[np.ndarray]
                  ) -> tuple[list[str], list[np.ndarray]]:
    """Gallery names and content images matching `evaluate`'s outputs: one per
    eval image, or per eval image and style (<image>_<style>) for several styles."""
    if len(self.style_names) == 1:
      return names, contents
    pairs = [(f"{n}_{s}", c) for n, c in zip(names, contents) for s in self.style_names]
    return [n for n, _ in pairs], [c for _, c in pairs]

  def evaluate(self, params, eval_images) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean losses and quality metrics over the fixed content images, and
    their stylized versions (ordered as `eval_labels`).

    Quality: `jaxstyle.metrics.quality_report` (style similarity, mean and
    per layer, against the style image at the metrics' size; SSIM to the
    content), the numbers users compare runs and models by. With several
    styles each metric is also reported per style ('<style>/<metric>') and
    the plain keys are the means over styles; with strength control
    'identity/ssim' is the SSIM of the strength-0 output to the photo.
    """
    outputs, per_style = [], {name: [] for name in self.style_names}
    identity_ssim = []
    for _, image in eval_images:
      image_device = self.replicate(image)
      for index, name in enumerate(self.style_names):
        targets = self.style_targets if len(self.style_names) == 1 else jax.tree.map(
            lambda t, i=index: t[i:i + 1], self.style_targets)
        stylized, metrics = self.eval_fn(params, image_device, targets, self.loss_net,
                                         self._condition(index))
        out = np.asarray(stylized)
        outputs.append(out)
        metrics = dict(jax.device_get(metrics))
        metrics.update(quality_metrics.quality_report(
            self.loss_net, out, image, None, style_grams=self.metric_style_grams[index]))
        per_style[name].append(metrics)
      if getattr(self.model, "strength_control", False):
        photo, _ = self.eval_fn(params, image_device, targets, self.loss_net,
                                self._condition(len(self.style_names)))
        identity_ssim.append(quality_metrics.ssim(np.asarray(photo), image))
    means = {name: {k: float(np.mean([m[k] for m in rows])) for k in rows[0]}
             for name, rows in per_style.items()}
    mean = {k: float(np.mean([m[k] for m in means.values()])) for k in means[self.style_names[0]]}
    if len(self.style_names) > 1:
      for name, values in means.items():
        mean.update({f"{name}/{k}": v for k, v in values.items()})
    if identity_ssim:
      mean["identity/ssim"] = float(np.mean(identity_ssim))
    return mean, outputs

  def replicate(self, value: np.ndarray) -> jax.Array:
    """The same host value on every device of every process."""
    return jax.make_array_from_process_local_data(self.replicated, np.asarray(value))

  def global_batch(self, local_batch: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.data_sharding, local_batch)


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Fails at start, naming the key, instead of deep inside a trace."""
  n = jax.device_count()
  if config.batch_size <= 0 or config.batch_size % n:
    raise ValueError(f"config.batch_size={config.batch_size} must be a positive "
                     f"multiple of the device count ({n})")
  if config.data.image_size <= 0:
    raise ValueError(f"config.data.image_size={config.data.image_size} must be > 0")
  for key in ("content_weight", "style_weight", "tv_weight", "color_weight"):
    if config.loss.get(key, 0.0) < 0:
      raise ValueError(f"config.loss.{key}={config.loss[key]} must be >= 0")
  for group in ("style_layers", "content_layers", "local_style_layers"):
    for layer, w in config.loss.get(group, {}).items():
      if w < 0:
        raise ValueError(f"config.loss.{group}.{layer}={w} must be >= 0")
  if config.loss.get("local_style_weight", 0.0) < 0:
    raise ValueError(f"config.loss.local_style_weight="
                     f"{config.loss.local_style_weight} must be >= 0")
  for key in ("local_patch_size", "local_patch_stride"):
    if key in config.loss and config.loss[key] < 1:
      raise ValueError(f"config.loss.{key}={config.loss[key]} must be >= 1")
  if config.loss.get("stability_weight", 0.0) < 0:
    raise ValueError(f"config.loss.stability_weight={config.loss.stability_weight} "
                     "must be >= 0")
  modes = ("input_noise", "fp16")
  if config.loss.get("stability_perturbation", "input_noise") not in modes:
    raise ValueError(f"config.loss.stability_perturbation="
                     f"{config.loss.stability_perturbation!r} is not one of {modes}")
  if config.loss.get("stability_noise_std", objectives.EVAL_NOISE_STD) <= 0:
    raise ValueError(f"config.loss.stability_noise_std={config.loss.stability_noise_std} "
                     "must be > 0")
  if config.num_train_steps <= 0:
    raise ValueError("config.num_train_steps must be > 0")
  data_config.validate_data_config(config.data)
  perturb = style_perturbation.validate_perturb_config(config.style.get("perturb"))
  validate_styles(config, perturb.mode)


def validate_styles(config: ml_collections.ConfigDict, perturb_mode: str) -> None:
  """The style list agrees with the network's conditions (config.model.num_styles)."""
  sources = style_controls.style_sources(config.style)
  names = [style_controls.style_name(s) for s in sources]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"config.style.images names {repeated[0]!r} twice")
  num_styles = config.model.get("num_styles", 1)
  if num_styles != len(sources):
    raise ValueError(
        f"config.model.num_styles={num_styles} but the run has {len(sources)} style(s) "
        f"({', '.join(names)}): set --config.model.num_styles={len(sources)}")
  conditional = num_styles > 1 or config.model.get("strength_control", False)
  if conditional and perturb_mode != "none":
    raise ValueError(f"config.style.perturb.mode={perturb_mode!r} is not supported for "
                     "a multi-style or strength-controlled network yet: use 'none'")
  if conditional and config.loss.get("local_style_weight", 0.0):
    raise ValueError("config.loss.local_style_weight > 0 is not supported for a "
                     "multi-style or strength-controlled network yet: use 0")
  if conditional and config.loss.get("color_weight", 0.0):
    raise ValueError("config.loss.color_weight > 0 is not supported for a "
                     "multi-style or strength-controlled network yet: use 0")
  if config.loss.get("identity_weight", 0.0) < 0:
    raise ValueError(f"config.loss.identity_weight={config.loss.identity_weight} "
                     "must be >= 0")
  if config.model.get("photo_skip", False) and not config.model.get("strength_control", False):
    raise ValueError("config.model.photo_skip=True needs config.model.strength_control=True "
                     "(the skip is gated by the identity condition)")


def _quality(metrics: Mapping[str, float], prefix: str = "") -> dict[str, float] | None:
  """The quality-report part of evaluation metrics (None for runs from before
  it); `prefix` 'mosaic/' picks one style's of a multi-style run."""
  keys = [k[len(prefix):] for k in metrics if k.startswith(prefix)]
  keys = [k for k in keys if k == "ssim" or k.startswith("style_similarity")]
  return {k: metrics[prefix + k] for k in sorted(keys)} or None


# The trainers besides this module's own (style transfer): each a sibling
# module with train_and_evaluate(config, workdir), imported when used.
OTHER_TRAINERS = {"cyclegan": "jaxstyle.cyclegan"}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Runs (or resumes) training; writes checkpoints, TensorBoard, gallery, summary.json.

  Raises:
    preemption.Preempted: after SIGTERM, once the checkpoint is written.
  """
  trainer_name = checkpointing.trainer_of(config)
  if trainer_name != "style_transfer":
    module = importlib.import_module(OTHER_TRAINERS[trainer_name])
    return module.train_and_evaluate(config, workdir)
  wall_start = time.time()
  is_chief = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  trainer = Trainer(config, workdir)
  if is_chief:
    checkpointing.save_config(workdir, config)
  writer = (summary_writer.SummaryWriter(os.path.join(workdir, "tensorboard"))
            if is_chief else None)

  manager = checkpointing.create_manager(
      workdir, save_every=config.checkpoint_every_steps, keep=config.keep_checkpoints,
      data_items=(checkpointing.DATA_ITEM,))
  state = trainer.init_state()
  initial_path = os.path.join(workdir, "initial_eval.json")
  eval_images = run_lib.load_eval_images(config, trainer.model.size_multiple)
  names, contents = trainer.eval_labels([n for n, _ in eval_images],
                                        [im for _, im in eval_images])

  resumed = manager.latest_step() is not None
  if resumed:
    state, meta = checkpointing.restore(manager, state)
    logging.info("Resumed from step %d (%s)", int(state.step), meta.get("vgg"))
  start_step = int(state.step)
  # The workers start up while the initial evaluation runs.
  batches = run_lib.create_batches(config.data, global_batch_size=config.batch_size,
                           seed=config.seed, manager=manager, start_step=start_step)
  batches.start_prefetch()
  if resumed:
    with open(initial_path) as f:
      initial = json.load(f)
  else:
    initial, _ = trainer.evaluate(state.params, eval_images)
    if is_chief:
      atomic_files.write_json(initial_path, initial)
  history = run_lib.EvalHistory(os.path.join(workdir, "eval_history.jsonl"), start_step)
  if start_step == 0 and is_chief:
    history.append(0, 0.0, initial)

  meta = {"vgg": trainer.loss_net.description, "vgg_source": config.vgg.source,
          "style_image": trainer.style_path}
  if len(trainer.style_paths) > 1:
    meta["style_images"] = trainer.style_paths
  local_batch = config.batch_size // jax.process_count()

  progress = tqdm.tqdm(total=config.num_train_steps, initial=start_step,
                       disable=not is_chief, desc="train", unit="step",
                       dynamic_ncols=True)
  timer = run_lib.StepTimer(start_step)
  log = run_lib.TrainLog(
      progress=progress, timer=timer, writer=writer, manager=manager, workdir=workdir,
      schedule=trainer.schedule, batch_size=config.batch_size,
      remedy="Lower config.optimizer.learning_rate or set config.optimizer.grad_clip_norm.")
  train_start, eval_seconds = time.time(), 0.0
  metrics = final = None
  watcher = preemption.PreemptionWatcher(manager)
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      batch = next(batches)
      assert batch.shape[0] == local_batch, batch.shape
      state, metrics = trainer.train_step(
          state, trainer.global_batch(batch), trainer.style_image_device,
          trainer.precomputed_targets, trainer.loss_net)
      progress.update(1)
      is_last = step == config.num_train_steps
      if step % config.log_every_steps == 0 or is_last or step % config.checkpoint_every_steps == 0:
        metrics = jax.device_get(metrics)
        log.step(step, metrics, {"loss": f"{metrics['loss']:.4f}",
                                 "style": f"{metrics['style_loss']:.4f}",
                                 "content": f"{metrics['content_loss']:.4f}"}, finite=("loss",))
      if step % config.image_every_steps == 0 or is_last:
        eval_start = time.time()
        eval_metrics, stylized = trainer.evaluate(state.params, eval_images)
        if is_chief:
          history.append(step, eval_start - train_start - eval_seconds, eval_metrics)
        if writer is not None:
          run_lib.write_eval_summaries(writer, step, eval_metrics, names,
                                       zip(contents, stylized))
        if is_last:
          final = eval_metrics
        timer.exclude(time.time() - eval_start)
        eval_seconds += time.time() - eval_start
      watcher.save(step, state, meta, is_last=is_last, data={checkpointing.DATA_ITEM: batches})
  finally:
    watcher.close()
    progress.close()
    batches.close()
    if writer is not None:
      writer.flush()
  manager.wait_until_finished()

  if final is None:  # resumed at the last step: nothing was trained
    final, stylized = trainer.evaluate(state.params, eval_images)
  if is_chief:
    grid = run_lib.save_gallery(os.path.join(workdir, "gallery"), names, contents, stylized)
    if trainer.num_conditions > 1:  # the controls: a blend strip, a strength strip
      apply = jax.jit(lambda p, x, c: objectives.apply_model(trainer.model, p, x[None], c)[0])
      for strip_name, picture in control_strips.gallery_strips(
          lambda x, c: np.asarray(apply(state.params, x, c)), eval_images[0][1],
          trainer.style_names, getattr(trainer.model, "strength_control", False)).items():
        image_io.save_png(picture, os.path.join(workdir, "gallery", f"{strip_name}.png"))
    summary = {
        "style_loss_initial": initial["style_loss"],
        "style_loss_final": final["style_loss"],
        "content_loss_initial": initial["content_loss"],
        "content_loss_final": final["content_loss"],
        "tv_loss_initial": initial["tv_loss"],
        "tv_loss_final": final["tv_loss"],
        "local_style_loss_initial": initial.get("local_style_loss"),
        "local_style_loss_final": final.get("local_style_loss"),
        # Squared output change per unit input noise (1/255) / per float16
        # rounding of every layer. initial_eval.json of runs from before
        # these metrics lacks them.
        "input_noise_gain_initial": initial.get("input_noise_gain"),
        "input_noise_gain_final": final["input_noise_gain"],
        "fp16_gain_initial": initial.get("fp16_gain"),
        "fp16_gain_final": final["fp16_gain"],
        # Style similarity (mean, per layer) and SSIM on the eval images at
        # config.eval.image_size (jaxstyle.metrics.quality_report).
        "quality": {"initial": _quality(initial), "final": _quality(final),
                    "image_size": config.eval.image_size,
                    "style_size": quality_metrics.STYLE_SIZE},
        "eval_images": [n for n, _ in eval_images],
        "steps": int(state.step),
        "vgg": trainer.loss_net.description,
    }
    if len(trainer.style_names) > 1:
      summary["quality"]["per_style"] = {
          name: _quality(final, f"{name}/") for name in trainer.style_names}
    if "identity/ssim" in final:
      # Strength 0 (the identity condition): how well the photo comes back.
      summary["quality"]["identity_ssim"] = final["identity/ssim"]
    run_lib.write_summary(workdir, summary, start_step=start_step, wall_start=wall_start,
                          timer=timer, gallery=grid)
  if writer is not None:
    writer.close()
  return state


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs.")
  config_flags.DEFINE_config_file(
      "config", None, "Training configuration file (configs/*.py).", lock_config=True)
  distributed.define_flags()
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  checkpointing.quiet_library_logs()
  distributed.initialize()
  logging.info("JAX process %d/%d, devices: %s", jax.process_index(),
               jax.process_count(), jax.devices())
  try:
    train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)
  except preemption.Preempted as e:
    logging.warning("%s", e)
    print(f"jaxstyle: {e}", file=sys.stderr)
    sys.exit(preemption.EXIT_CODE)


if __name__ == "__main__":
  define_flags()
  app.run(main)
