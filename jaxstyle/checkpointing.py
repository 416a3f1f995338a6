"""Orbax checkpoints of the train state, plus what inference needs to rebuild it.

A workdir holds `config.json` (the full run config), `checkpoints/<step>/`
(`state/`: the train state; `meta/`: JSON metadata, step and loss-network
source; `data/process_<i>-of-<n>.json`: each process's Grain data-iterator
state, so a resumed run reads on from where it stopped), and TensorBoard logs.
"""

import json
import os
from typing import Any

from absl import logging
from etils import epath
import jax
import ml_collections
import orbax.checkpoint as ocp

from jaxstyle import atomic_files

DATA_ITEM = "data"


class _QuietLibraries:
  """Drops INFO chatter from Orbax/TFDS/JAX (every save logs a dozen lines)."""

  def filter(self, record) -> bool:
    noisy = any(f"/{lib}/" in record.pathname
                for lib in ("orbax", "tensorflow_datasets", "jax/_src"))
    # Orbax warns that a read-only manager (how inference opens a workdir)
    # will not save, and that it leaves the data-iterator items (which
    # inference does not need) unread: expected, so dropped too.
    message = record.getMessage()
    expected = "/orbax/" in record.pathname and (
        "read_only" in message or "read only" in message
        or "could not be restored" in message)
    return (record.levelno >= 30 and not expected) or not noisy  # 30: WARNING


def quiet_library_logs() -> None:
  """Call from a CLI's main() once absl has installed its handler."""
  logging.get_absl_handler().python_handler.addFilter(_QuietLibraries())


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def create_manager(workdir: str, *, save_every: int = 1, keep: int = 3,
                   read_only: bool = False, data_items: tuple[str, ...] = ()
                   ) -> ocp.CheckpointManager:
  """`data_items`: names of Grain data-iterator items (trainers; not inference)."""
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=save_every, max_to_keep=keep, read_only=read_only,
      create=not read_only, cleanup_tmp_directories=not read_only)
  handlers = {"state": ocp.StandardCheckpointHandler(),
              "meta": ocp.JsonCheckpointHandler()}
  if data_items:
    import grain  # pylint: disable=g-import-not-at-top
    handlers.update({name: grain.checkpoint.CheckpointHandler() for name in data_items})
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_handlers=handlers)


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metadata: dict[str, Any], force: bool = False,
         data: dict[str, Any] | None = None) -> bool:
  """Saves asynchronously (training goes on while the write happens).

  `data`: item name -> Grain iterator. Their states are taken now, before
  `save` returns (a synchronous handler), so they match the train state of
  `step` whatever the iterators have prefetched.
  """
  items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(metadata))
  if data:
    import grain  # pylint: disable=g-import-not-at-top
    items.update({name: grain.checkpoint.CheckpointSave(it) for name, it in data.items()})
  return manager.save(step, args=ocp.args.Composite(**items), force=force)


def restore(manager: ocp.CheckpointManager, abstract_state: Any,
            step: int | None = None) -> tuple[Any, dict[str, Any]]:
  """Restores `step` (default latest) with the shardings of `abstract_state`."""
  step = manager.latest_step() if step is None else step
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return restored.state, restored.meta


def restore_data_iterator(manager: ocp.CheckpointManager, step: int, iterator,
                          item: str = DATA_ITEM, any_process: bool = False) -> str | None:
  """Sets a Grain iterator to its state saved at `step`; the file it came from.

  The state of this process at this process count is restored through
  Orbax. With `any_process`, for iterators whose state is the same on every
  process and valid at any process count (`input_pipeline.GlobalBatches`,
  like Grain's ElasticIterator), a checkpoint written by another number of
  processes gives its first process's state.
  None: the checkpoint holds no data state (written before jaxstyle saved
  one); the caller positions the iterator itself.
  """
  import grain  # pylint: disable=g-import-not-at-top
  folder = epath.Path(manager.directory) / str(step) / item
  own = folder / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
  if own.exists():
    manager.restore(step, args=ocp.args.Composite(
        **{item: grain.checkpoint.CheckpointRestore(iterator)}))
    return os.fspath(own)
  others = sorted(folder.glob("process_*-of-*.json")) if folder.exists() else []
  if any_process and others:
    iterator.set_state(json.loads(others[0].read_text()))
    return os.fspath(others[0])
  return None


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes config.json (write, then rename) so inference can rebuild the model."""
  atomic_files.write_text(os.path.join(workdir, "config.json"),
                          config.to_json_best_effort(indent=2))


# config.trainer: the training loop a config (and so its workdir) is for.
TRAINERS = ("style_transfer", "cyclegan")


def trainer_of(config: ml_collections.ConfigDict) -> str:
  """config.trainer; configs without the field are style transfer."""
  name = config.get("trainer", TRAINERS[0])
  if name not in TRAINERS:
    raise ValueError(f"config.trainer={name!r}: not one of {', '.join(TRAINERS)}")
  return name


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {workdir!r} is not a jaxstyle training workdir "
        "(train one with `python -m jaxstyle.train --config ... --workdir ...`).")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def restore_on_one_device(workdir: str, step: int | None = None
                          ) -> tuple[int, Any, dict[str, Any]]:
  """(step, state pytree, metadata) of a checkpoint, whatever mesh wrote it.

  The target sharding is taken as the first local device, so a checkpoint
  written by 4 devices or 2 hosts restores in a single CPU process.
  """
  manager = create_manager(workdir, read_only=True)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}: "
                            "training has not saved one yet.")
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  stored = manager.item_metadata(step)["state"]
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), stored)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
  return step, restored.state, restored.meta


def load_params(workdir: str, abstract_params: Any, step: int | None = None,
                where: tuple[str, ...] = ("params",)) -> tuple[Any, dict[str, Any]]:
  """Model parameters of a workdir's checkpoint, checked against the model.

  `where` is their place in the train state (a CycleGAN's G_AB:
  ("generators", "params", "g_ab")).
  """
  _, state, meta = restore_on_one_device(workdir, step)
  params = state
  for key in where:
    params = params[key]
  jax.tree.map(_check_shape, abstract_params, params)
  return params, meta


def _check_shape(expected, got):
  if tuple(expected.shape) != tuple(got.shape):
    raise ValueError(f"checkpoint parameter shape {got.shape} does not match the "
                     f"model in config.json ({expected.shape})")
