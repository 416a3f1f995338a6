"""Orbax checkpoints of the train state, plus what inference needs to rebuild it.

A workdir holds `config.json` (the full run config), `checkpoints/<step>/`
(train state + JSON metadata: step, loss-network source), and TensorBoard logs.
"""

import json
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp


class _QuietLibraries:
  """Drops INFO chatter from Orbax/TFDS/JAX (every save logs a dozen lines)."""

  def filter(self, record) -> bool:
    noisy = any(f"/{lib}/" in record.pathname
                for lib in ("orbax", "tensorflow_datasets", "jax/_src"))
    # Orbax warns that a read-only manager (how inference opens a workdir)
    # will not save: expected, so dropped too.
    message = record.getMessage()
    read_only = "/orbax/" in record.pathname and ("read_only" in message
                                                  or "read only" in message)
    return (record.levelno >= 30 and not read_only) or not noisy  # 30: WARNING


def quiet_library_logs() -> None:
  """Call from a CLI's main() once absl has installed its handler."""
  logging.get_absl_handler().python_handler.addFilter(_QuietLibraries())


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def create_manager(workdir: str, *, save_every: int = 1, keep: int = 3,
                   read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=save_every, max_to_keep=keep, read_only=read_only,
      create=not read_only, cleanup_tmp_directories=not read_only)
  return ocp.CheckpointManager(
      checkpoint_dir(workdir), options=options,
      item_handlers={"state": ocp.StandardCheckpointHandler(),
                     "meta": ocp.JsonCheckpointHandler()})


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metadata: dict[str, Any], force: bool = False) -> bool:
  """Saves asynchronously (training goes on while the write happens)."""
  return manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(metadata)),
      force=force)


def restore(manager: ocp.CheckpointManager, abstract_state: Any,
            step: int | None = None) -> tuple[Any, dict[str, Any]]:
  """Restores `step` (default latest) with the shardings of `abstract_state`."""
  step = manager.latest_step() if step is None else step
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return restored.state, restored.meta


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes config.json (write, then rename) so inference can rebuild the model."""
  path = os.path.join(workdir, "config.json")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  os.replace(tmp, path)


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


def load_params(workdir: str, abstract_params: Any,
                step: int | None = None) -> tuple[Any, dict[str, Any]]:
  """Model parameters of a workdir's checkpoint, checked against the model."""
  _, state, meta = restore_on_one_device(workdir, step)
  params = state["params"]
  jax.tree.map(_check_shape, abstract_params, params)
  return params, meta


def _check_shape(expected, got):
  if tuple(expected.shape) != tuple(got.shape):
    raise ValueError(f"checkpoint parameter shape {got.shape} does not match the "
                     f"model in config.json ({expected.shape})")
