r"""CycleGAN (Zhu et al. 2017), the unpaired-translation baseline.

  python -m jaxstyle.train --config configs/cyclegan_quick.py --workdir runs/cyclegan_quick

`jaxstyle.train` hands configs with `trainer='cyclegan'` to
`train_and_evaluate` here. Domain A is the content pipeline of style transfer
(`config.data`: TFDS COCO or a folder), domain B the paintings (`config.data_b`):
a TFDS `cycle_gan/<name>` split, a folder, or — offline — random augmented crops
of the style image(s) (`'style_crops'`).

What pytorch-CycleGAN-and-pix2pix does, per step: G_AB: A→B and G_BA: B→A
(the reference's G_A and G_B), D_A judges domain A and D_B domain B (the
reference's D_B and D_A). Generator loss = LSGAN(D_B(G_AB(a)), 1) +
LSGAN(D_A(G_BA(b)), 1) + λ·(|G_BA(G_AB(a)) − a| + |G_AB(G_BA(b)) − b|) +
0.5λ·(|G_BA(a) − a| + |G_AB(b) − b|); each discriminator loss is
½(LSGAN(D(real), 1) + LSGAN(D(fake), 0)) with the fakes drawn through a history
pool of 50 earlier fakes. Adam (2e-4, β1 0.5), constant then linearly decayed.
The reference updates G, then D on fakes made before G's update by a D not yet
updated: one step here computes both gradients from the same parameters, which
is the same thing.

The history pools live on the device, in the train state, and draw from
(seed, step): checkpoints carry them, so resuming is exact, and every device
and process sees the same pool. Data parallel like `jaxstyle.train`: one jitted
step over a ('data',) mesh, batches sharded, everything else replicated.
"""

import functools
import json
import os
import time
from typing import Iterator

from absl import logging
from flax import struct
from flax.training import train_state
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax
import tqdm

from jaxstyle import atomic_files
from jaxstyle import checkpointing
from jaxstyle import data_config
from jaxstyle import images as image_io
from jaxstyle import input_pipeline
from jaxstyle import models
from jaxstyle import preemption
from jaxstyle import run_lib
from jaxstyle import style_perturbation
from jaxstyle import summary_writer
from jaxstyle.models import cyclegan as nets

STYLE_CROPS = "style_crops"
# Checkpoint item of domain B's data-iterator state (domain A's is "data").
DATA_B_ITEM = "data_b"
GENERATOR = "cyclegan_resnet"  # config.model.name
# Salts of the random draws; never change them (resume).
_SALT_POOL_A, _SALT_POOL_B, _SALT_CROPS = 0x5041, 0x5042, 0x4352


# ----------------------------------------------------------------------------
# History pool (Shrivastava et al. 2017; `util/image_pool.py` of the reference).


@struct.dataclass
class ImagePool:
  """Up to `images.shape[0]` earlier generated images; `count` are filled."""
  images: jax.Array   # (pool_size, H, W, 3)
  count: jax.Array    # int32 scalar

  @classmethod
  def create(cls, pool_size: int, image_shape) -> "ImagePool":
    return cls(jnp.zeros((pool_size, *image_shape), jnp.float32),
               jnp.zeros((), jnp.int32))


def pool_query(pool: ImagePool, images: jax.Array, uniforms: jax.Array,
               indices: jax.Array) -> tuple[ImagePool, jax.Array]:
  """`ImagePool.query` of the reference, image by image, with its draws given.

  While the pool fills, each image is stored and returned. Once full, image i
  is returned with probability ½ (`uniforms[i] <= 0.5`); otherwise the stored
  image `indices[i]` is returned and replaced by image i. Returns the updated
  pool and the images for the discriminator. A pool of size 0 is no pool.
  """
  pool_size = pool.images.shape[0]
  if pool_size == 0:
    return pool, images

  def one(carry, inputs):
    stored, count = carry
    image, u, j = inputs
    filling = count < pool_size
    swap = jnp.logical_and(jnp.logical_not(filling), u > 0.5)
    slot = jnp.where(filling, count, j)
    out = jnp.where(swap, stored[j], image)
    stored = stored.at[slot].set(
        jnp.where(jnp.logical_or(filling, swap), image, stored[slot]))
    return (stored, count + filling.astype(count.dtype)), out

  (stored, count), out = jax.lax.scan(one, (pool.images, pool.count),
                                      (images, uniforms, indices))
  return ImagePool(stored, count), out


def pool_draws(key: jax.Array, batch: int, pool_size: int):
  """(uniforms, indices) for `pool_query`: U[0, 1) and a slot in [0, pool_size)."""
  k_u, k_i = jax.random.split(key)
  return (jax.random.uniform(k_u, (batch,)),
          jax.random.randint(k_i, (batch,), 0, max(pool_size, 1)))


# ----------------------------------------------------------------------------
# State, optimizer, losses, step.


@struct.dataclass
class CycleGANState:
  """Both generators, both discriminators (one Adam each pair), both pools."""
  generators: train_state.TrainState      # params {'g_ab', 'g_ba'}
  discriminators: train_state.TrainState  # params {'d_a', 'd_b'}
  pool_a: ImagePool                       # generated A images, for D_A
  pool_b: ImagePool                       # generated B images, for D_B

  @property
  def step(self) -> jax.Array:
    return self.generators.step


def linear_decay_schedule(learning_rate: float, num_steps: int,
                          decay_fraction: float) -> optax.Schedule:
  """Constant, then linear towards 0 over the last `decay_fraction` of the steps.

  The reference's `lambda_rule` with epochs read as steps: update t (from 0)
  uses lr · (1 − max(0, t + 1 − n_const) / (n_decay + 1)), so the last update
  still moves (lr / (n_decay + 1)).
  """
  n_decay = int(round(num_steps * decay_fraction))
  n_const = num_steps - n_decay

  def schedule(count):
    decayed = jnp.maximum(0, count + 1 - n_const) / (n_decay + 1)
    return learning_rate * (1.0 - decayed)

  return schedule


def lsgan_loss(scores: jax.Array, target: float) -> jax.Array:
  """nn.MSELoss against a tensor of `target` (1: real, 0: fake)."""
  return jnp.mean(jnp.square(scores - target))


def l1_loss(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(x - y))


def generator_loss(g_params, d_params, real_a, real_b, *, gen: nets.ResnetGenerator,
                   disc: nets.NLayerDiscriminator, loss_cfg):
  """Total generator loss, its terms, and the fakes (A, B) for the pools."""
  g_ab = lambda x: gen.apply({"params": g_params["g_ab"]}, x)
  g_ba = lambda x: gen.apply({"params": g_params["g_ba"]}, x)
  d_a = lambda x: disc.apply({"params": d_params["d_a"]}, x)
  d_b = lambda x: disc.apply({"params": d_params["d_b"]}, x)
  fake_b, fake_a = g_ab(real_a), g_ba(real_b)
  terms = {
      "gan_ab": lsgan_loss(d_b(fake_b), 1.0),
      "gan_ba": lsgan_loss(d_a(fake_a), 1.0),
      "cycle_a": l1_loss(g_ba(fake_b), real_a),
      "cycle_b": l1_loss(g_ab(fake_a), real_b),
  }
  lam = loss_cfg.cycle_weight
  total = (loss_cfg.gan_weight * (terms["gan_ab"] + terms["gan_ba"])
           + lam * (terms["cycle_a"] + terms["cycle_b"]))
  if loss_cfg.identity_weight:
    # The reference's idt_A = G_A(real_B), weighted λ_B·λ_idt, and idt_B.
    terms["identity_a"] = l1_loss(g_ba(real_a), real_a)
    terms["identity_b"] = l1_loss(g_ab(real_b), real_b)
    total = total + loss_cfg.identity_weight * lam * (
        terms["identity_a"] + terms["identity_b"])
  metrics = {f"g/{k}": v for k, v in terms.items()}
  metrics["g/loss"] = total
  return total, (metrics, fake_a, fake_b)


def discriminator_loss(d_params, real_a, real_b, fake_a, fake_b, *,
                       disc: nets.NLayerDiscriminator):
  """½(LSGAN(D(real), 1) + LSGAN(D(fake), 0)) for D_A plus the same for D_B."""
  def one(params, real, fake):
    apply = lambda x: disc.apply({"params": params}, x)
    return 0.5 * (lsgan_loss(apply(real), 1.0) + lsgan_loss(apply(fake), 0.0))
  loss_a = one(d_params["d_a"], real_a, fake_a)
  loss_b = one(d_params["d_b"], real_b, fake_b)
  return loss_a + loss_b, {"d/loss_a": loss_a, "d/loss_b": loss_b,
                           "d/loss": loss_a + loss_b}


def train_step(state: CycleGANState, batch_a, batch_b, *, gen, disc, loss_cfg,
               seed: int, data_sharding):
  """One CycleGAN iteration on [0, 1] batches of both domains."""
  real_a, real_b = nets.to_signed(batch_a), nets.to_signed(batch_b)
  g_grad_fn = jax.value_and_grad(
      functools.partial(generator_loss, gen=gen, disc=disc, loss_cfg=loss_cfg),
      has_aux=True)
  (_, (metrics, fake_a, fake_b)), g_grads = g_grad_fn(
      state.generators.params, state.discriminators.params, real_a, real_b)

  key = jax.random.fold_in(jax.random.key(seed), state.step)
  batch = fake_a.shape[0]
  pool_a, fake_a = pool_query(state.pool_a, jax.lax.stop_gradient(fake_a), *pool_draws(
      jax.random.fold_in(key, _SALT_POOL_A), batch, state.pool_a.images.shape[0]))
  pool_b, fake_b = pool_query(state.pool_b, jax.lax.stop_gradient(fake_b), *pool_draws(
      jax.random.fold_in(key, _SALT_POOL_B), batch, state.pool_b.images.shape[0]))
  # The pools are replicated; keep the discriminators' work split over devices.
  fake_a = jax.lax.with_sharding_constraint(fake_a, data_sharding)
  fake_b = jax.lax.with_sharding_constraint(fake_b, data_sharding)

  d_grad_fn = jax.value_and_grad(
      functools.partial(discriminator_loss, disc=disc), has_aux=True)
  (_, d_metrics), d_grads = d_grad_fn(state.discriminators.params, real_a, real_b,
                                      fake_a, fake_b)
  metrics.update(d_metrics)
  metrics["g/grad_norm"] = optax.tree.norm(g_grads)
  metrics["d/grad_norm"] = optax.tree.norm(d_grads)
  new_state = state.replace(
      generators=state.generators.apply_gradients(grads=g_grads),
      discriminators=state.discriminators.apply_gradients(grads=d_grads),
      pool_a=pool_a, pool_b=pool_b)
  return new_state, metrics


# ----------------------------------------------------------------------------
# Domain B.


def style_paths(image_spec) -> list[str]:
  """`config.style.image`: a name/path, comma-separated names/paths, or a list."""
  items = image_spec.split(",") if isinstance(image_spec, str) else list(image_spec)
  items = [i.strip() for i in items if i.strip()]
  if not items:
    raise ValueError("config.style.image is empty: name a shipped style or an image path")
  return [run_lib.resolve_style_path(i) for i in items]


def random_style_crop(image: jax.Array, key: jax.Array, *, image_size: int,
                      crop_scale: tuple[float, float],
                      jitter: style_perturbation.PerturbConfig) -> jax.Array:
  """A random square crop of (H, W, 3) `image`, resized to `image_size`², jittered.

  The crop's area is a U(crop_scale) fraction of the largest square; flip and
  colour jitter are `style_perturbation.perturb_style_image`'s.
  """
  k_area, k_pos, k_jitter = jax.random.split(key, 3)
  h, w = image.shape[:2]
  short = min(h, w)
  side = jnp.sqrt(jax.random.uniform(k_area, (), minval=crop_scale[0],
                                     maxval=crop_scale[1])) * short
  start = jax.random.uniform(k_pos, (2,)) * (jnp.array([h, w], jnp.float32) - side)
  # Output pixel x reads input start + x · side / image_size.
  scale = jnp.full((2,), image_size, jnp.float32) / side
  crop = jax.image.scale_and_translate(
      image, (image_size, image_size, 3), (0, 1), scale, -start * scale,
      method="linear", antialias=True)
  return style_perturbation.perturb_style_image(jnp.clip(crop, 0, 1), k_jitter, jitter)


class StyleCrops:
  """Domain B offline: random augmented crops of the style image(s).

  Element i of global batch `step` depends only on (seed, step, i): resuming,
  or running on more processes, gives the same images.
  """

  def __init__(self, config: ml_collections.ConfigDict):
    cfg = config.data_b
    self.paths = style_paths(config.style.image)
    self.images = [run_lib.resize_short_side(image_io.load_image(p), config.style.size)
                   for p in self.paths]
    for path, image in zip(self.paths, self.images):
      if min(image.shape[:2]) < 2:
        raise ValueError(f"style image {path} is too small")
    self.seed = config.seed
    jitter = style_perturbation.validate_perturb_config(dict(
        mode="none", hflip=cfg.hflip, brightness=cfg.brightness,
        contrast=cfg.contrast, saturation=cfg.saturation, hue=cfg.hue))
    crop_scale = data_config.parse_crop_scale(cfg.crop_scale, "config.data_b",
                                              "the style image's largest square")
    self._crop = jax.jit(functools.partial(
        random_style_crop, image_size=config.data.image_size, crop_scale=crop_scale,
        jitter=jitter))
    self._root = jax.random.fold_in(jax.random.key(config.seed), _SALT_CROPS)

  def image(self, step: int, index: int) -> np.ndarray:
    """Element `index` of global batch `step`."""
    choice = int(np.random.default_rng([self.seed, step, index]).integers(len(self.images)))
    key = jax.random.fold_in(jax.random.fold_in(self._root, step), index)
    return np.asarray(self._crop(self.images[choice], key))

  def batches(self, global_batch_size: int, start_step: int) -> Iterator[np.ndarray]:
    """This process's rows of global batches start_step, start_step + 1, ..."""
    local = global_batch_size // jax.process_count()
    first = jax.process_index() * local
    step = start_step
    while True:
      yield np.stack([self.image(step, first + i) for i in range(local)])
      step += 1


def uses_input_pipeline(config: ml_collections.ConfigDict) -> bool:
  """Whether domain B is a Grain stream (TFDS, folder), checkpointed as `DATA_B_ITEM`."""
  return config.data_b.source != STYLE_CROPS


def create_domain_b(config: ml_collections.ConfigDict, start_step: int, manager=None):
  """Batches of paintings in [0, 1]: style crops, a folder, or a TFDS split.

  A TFDS or folder source is a Grain iterator whose state `manager`'s
  checkpoints carry; style crops depend on the step alone.
  """
  cfg = config.data_b
  if not uses_input_pipeline(config):
    return StyleCrops(config).batches(config.batch_size, start_step)
  if (not cfg.source.startswith(input_pipeline.FOLDER_PREFIX)
      and not cfg.get("download", False)
      and input_pipeline.find_tfds_builder(cfg.source, cfg.get("data_dir")) is None):
    raise FileNotFoundError(
        f"config.data_b.source={cfg.source!r}: the TFDS dataset is not prepared "
        f"(data_dir={cfg.get('data_dir')!r}) and config.data_b.download=False. "
        f"Run `tfds build {cfg.source} --file_format=array_record` with internet, set "
        "--config.data_b.download=True, or use --config.data_b.source=style_crops "
        "(offline: crops of config.style.image).")
  pipeline_cfg = ml_collections.ConfigDict(dict(
      source=cfg.source, split=cfg.split, data_dir=cfg.get("data_dir"),
      download=cfg.get("download", False), image_size=config.data.image_size,
      resize_min=cfg.resize_min,
      augment=dict(crop_scale=(1.0, 1.0), hflip=cfg.hflip, rotate_degrees=0.0),
      num_workers=config.data.get("num_workers", -1), prefetch=config.data.get("prefetch", 2)))
  # Its own stream: seed + 1, so A and B are not drawn in lockstep.
  return run_lib.create_batches(pipeline_cfg, global_batch_size=config.batch_size,
                                seed=config.seed + 1, manager=manager, start_step=start_step,
                                item=DATA_B_ITEM)


# ----------------------------------------------------------------------------
# The run.


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Fails at start, naming the key."""
  n = jax.device_count()
  if config.batch_size <= 0 or config.batch_size % n:
    raise ValueError(f"config.batch_size={config.batch_size} must be a positive "
                     f"multiple of the device count ({n})")
  data_config.validate_data_config(config.data)
  if config.data.image_size % 4 or config.data.image_size < 32:
    raise ValueError(f"config.data.image_size={config.data.image_size} must be a "
                     "multiple of 4 and >= 32 (generator strides, 70×70 PatchGAN)")
  if config.num_train_steps <= 0:
    raise ValueError("config.num_train_steps must be > 0")
  create_generator(config)  # Names a wrong model name or key.
  if config.model.ngf < 1 or config.model.num_blocks < 0:
    raise ValueError(f"config.model.ngf={config.model.ngf} must be >= 1 and "
                     f"config.model.num_blocks={config.model.num_blocks} >= 0")
  for key in ("gan_weight", "cycle_weight", "identity_weight"):
    if config.loss[key] < 0:
      raise ValueError(f"config.loss.{key}={config.loss[key]} must be >= 0")
  if config.pool_size < 0:
    raise ValueError(f"config.pool_size={config.pool_size} must be >= 0")
  if not 0.0 <= config.optimizer.decay_fraction <= 1.0:
    raise ValueError(f"config.optimizer.decay_fraction={config.optimizer.decay_fraction} "
                     "must be in [0, 1]")
  if not config.data_b.source:
    raise ValueError("config.data_b.source is empty: use 'style_crops', "
                     "'folder:/dir' or a TFDS name such as 'cycle_gan/vangogh2photo'")
  if config.data_b.source == STYLE_CROPS:
    data_config.parse_crop_scale(config.data_b.crop_scale, "config.data_b",
                                 "the style image's largest square")


def create_generator(config: ml_collections.ConfigDict) -> nets.ResnetGenerator:
  """G_AB and G_BA's architecture, from `config.model` through the registry."""
  if config.model.get("name") != GENERATOR:
    raise ValueError(f"config.model.name={config.model.get('name')!r}: the CycleGAN "
                     f"trainer needs {GENERATOR!r}")
  return models.create_model(config.model)


class CycleGANTrainer:
  """Networks, optimizer, mesh and jitted step, built once from the config."""

  def __init__(self, config: ml_collections.ConfigDict):
    validate_config(config)
    self.config = config
    self.mesh = jax.make_mesh((jax.device_count(),), ("data",),
                              axis_types=(jax.sharding.AxisType.Auto,))
    self.replicated = NamedSharding(self.mesh, P())
    self.data_sharding = NamedSharding(self.mesh, P("data"))
    self.gen = create_generator(config)
    self.disc = nets.NLayerDiscriminator(ndf=config.discriminator.ndf,
                                         num_layers=config.discriminator.num_layers)
    opt = config.optimizer
    self.schedule = linear_decay_schedule(opt.learning_rate, config.num_train_steps,
                                          opt.decay_fraction)
    self.tx = optax.adam(self.schedule, b1=opt.b1, b2=opt.b2)
    self.train_step = jax.jit(
        functools.partial(train_step, gen=self.gen, disc=self.disc,
                          loss_cfg=config.loss, seed=config.seed,
                          data_sharding=self.data_sharding),
        in_shardings=(self.replicated, self.data_sharding, self.data_sharding),
        out_shardings=(self.replicated, self.replicated),
        donate_argnums=(0,))
    self.eval_fn = jax.jit(self._eval_one)

  def init_state(self) -> CycleGANState:
    size = self.config.data.image_size
    dummy = jnp.zeros((1, size, size, 3))

    def init(rng):
      keys = jax.random.split(rng, 4)
      g = {"g_ab": self.gen.init(keys[0], dummy)["params"],
           "g_ba": self.gen.init(keys[1], dummy)["params"]}
      d = {"d_a": self.disc.init(keys[2], dummy)["params"],
           "d_b": self.disc.init(keys[3], dummy)["params"]}
      create = lambda params: train_state.TrainState.create(
          apply_fn=None, params=params, tx=self.tx)
      pool = ImagePool.create(self.config.pool_size, (size, size, 3))
      return CycleGANState(create(g), create(d), pool, pool)

    # An 'rbg' key: XLA:CPU compiles threefry draws for the ~60 parameter
    # tensors 7× slower (10 s vs 1.4 s for a tiny generator). The init is
    # replicated, so every device draws the same values.
    return jax.jit(init, out_shardings=self.replicated)(
        jax.random.key(self.config.seed, impl="rbg"))

  def _eval_one(self, g_params, image01):
    """G_AB(content) in [0, 1], and the cycle and change L1 errors (in [-1, 1] units)."""
    real = nets.to_signed(image01)[None]
    fake = self.gen.apply({"params": g_params["g_ab"]}, real)
    rec = self.gen.apply({"params": g_params["g_ba"]}, fake)
    return nets.to_unit(fake[0]), nets.to_unit(rec[0]), {"cycle_a": l1_loss(rec, real),
                                                         "change_a": l1_loss(fake, real)}

  def evaluate(self, g_params, eval_images):
    """Mean eval metrics; G_AB(x) and G_BA(G_AB(x)) of each image."""
    fakes, recs, per_image = [], [], []
    for _, image in eval_images:
      fake, rec, metrics = self.eval_fn(g_params, self.replicate(image))
      fakes.append(np.asarray(fake))
      recs.append(np.asarray(rec))
      per_image.append(jax.device_get(metrics))
    mean = {k: float(np.mean([m[k] for m in per_image])) for k in per_image[0]}
    return mean, fakes, recs

  def replicate(self, value) -> jax.Array:
    return jax.make_array_from_process_local_data(self.replicated, np.asarray(value))

  def global_batch(self, local_batch: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.data_sharding, local_batch)


def count_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> CycleGANState:
  """Runs (or resumes) CycleGAN; writes checkpoints, TensorBoard, gallery, summary.json."""
  wall_start = time.time()
  is_chief = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  trainer = CycleGANTrainer(config)
  if is_chief:
    checkpointing.save_config(workdir, config)
  writer = (summary_writer.SummaryWriter(os.path.join(workdir, "tensorboard"))
            if is_chief else None)
  data_items = (checkpointing.DATA_ITEM,) + ((DATA_B_ITEM,) if uses_input_pipeline(config) else ())
  manager = checkpointing.create_manager(
      workdir, save_every=config.checkpoint_every_steps, keep=config.keep_checkpoints,
      data_items=data_items)
  state = trainer.init_state()
  eval_images = run_lib.load_eval_images(config, trainer.gen.size_multiple)
  names = [n for n, _ in eval_images]
  contents = [im for _, im in eval_images]
  initial_path = os.path.join(workdir, "initial_eval.json")
  if manager.latest_step() is not None:
    state, _ = checkpointing.restore(manager, state)
    logging.info("Resumed from step %d", int(state.step))
    with open(initial_path) as f:
      initial = json.load(f)
  else:
    initial, _, _ = trainer.evaluate(state.generators.params, eval_images)
    if is_chief:
      atomic_files.write_json(initial_path, initial)
  start_step = int(state.step)

  domain_b = config.data_b.source
  meta = {"trainer": "cyclegan", "domain_a": config.data.source, "domain_b": domain_b}
  if domain_b == STYLE_CROPS:
    meta["style_images"] = style_paths(config.style.image)
  batches_a = run_lib.create_batches(config.data, global_batch_size=config.batch_size,
                                     seed=config.seed, manager=manager, start_step=start_step)
  batches_b = create_domain_b(config, start_step, manager)
  data = {checkpointing.DATA_ITEM: batches_a}
  if uses_input_pipeline(config):
    data[DATA_B_ITEM] = batches_b

  progress = tqdm.tqdm(total=config.num_train_steps, initial=start_step,
                       disable=not is_chief, desc="cyclegan", unit="step",
                       dynamic_ncols=True)
  timer = run_lib.StepTimer(start_step)
  log = run_lib.TrainLog(progress=progress, timer=timer, writer=writer, manager=manager,
                         workdir=workdir, schedule=trainer.schedule,
                         batch_size=config.batch_size,
                         remedy="Lower config.optimizer.learning_rate.")
  window, last_window = [], {}
  watcher = preemption.PreemptionWatcher(manager)
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      state, metrics = trainer.train_step(
          state, trainer.global_batch(next(batches_a)), trainer.global_batch(next(batches_b)))
      window.append(metrics)
      progress.update(1)
      is_last = step == config.num_train_steps
      if step % config.log_every_steps == 0 or is_last or step % config.checkpoint_every_steps == 0:
        window = jax.device_get(window)
        last_window = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
        window = []
        log.step(step, last_window, {"g": f"{last_window['g/loss']:.3f}",
                                     "d": f"{last_window['d/loss']:.3f}",
                                     "cyc": f"{last_window['g/cycle_a']:.3f}"},
                 finite=("g/loss", "d/loss"))
      if step % config.image_every_steps == 0 or is_last:
        eval_start = time.time()
        eval_metrics, fakes, recs = trainer.evaluate(state.generators.params, eval_images)
        if writer is not None:
          run_lib.write_eval_summaries(writer, step, eval_metrics, names,
                                       zip(contents, fakes, recs))
        timer.exclude(time.time() - eval_start)
      watcher.save(step, state, meta, is_last=is_last, data=data)
  finally:
    watcher.close()
    progress.close()
    for batches in data.values():
      batches.close()
    if writer is not None:
      writer.flush()
  manager.wait_until_finished()

  final, fakes, _ = trainer.evaluate(state.generators.params, eval_images)
  if is_chief:
    grid = run_lib.save_gallery(os.path.join(workdir, "gallery"), names, contents, fakes)
    summary = {
        "trainer": "cyclegan",
        "cycle_loss_a_initial": initial["cycle_a"],
        "cycle_loss_a_final": final["cycle_a"],
        "change_a_initial": initial["change_a"],
        "change_a_final": final["change_a"],
        # Mean of the training losses over the last log interval.
        "train_final": last_window,
        "generator_params": count_params(state.generators.params["g_ab"]),
        "discriminator_params": count_params(state.discriminators.params["d_a"]),
        "eval_images": names,
        "steps": int(state.step),
    }
    run_lib.write_summary(workdir, summary, start_step=start_step, wall_start=wall_start,
                          timer=timer, gallery=grid)
  if writer is not None:
    writer.close()
  return state

