"""Preemption: on SIGTERM, finish the step, checkpoint, exit; a rerun resumes.

SLURM, Kubernetes and preemptible cloud VMs send SIGTERM some time before
they kill a job. With several processes (`jax.distributed`), JAX's preemption
sync manager catches the signal on whichever process gets it and tells the
others; `reached_preemption_sync_point(step)` (through Orbax's
`CheckpointManager.reached_preemption`) then turns True at the same step on
every process (one past the furthest any had reached), so all of them save
that step and leave together: a process that stopped alone would hang the
others in their next all-reduce. A single process has no sync manager: a
Python handler notes the signal, and the step that follows it is the one saved.
"""

import signal
import threading

from absl import logging
import jax

from jaxstyle import checkpointing

# What a shell reports for a process killed by SIGTERM (128 + 15): schedulers
# and scripts see an unfinished run, as they would without the checkpoint.
EXIT_CODE = 128 + signal.SIGTERM


class Preempted(Exception):
  """Training stopped on SIGTERM after saving the checkpoint of `step`."""

  def __init__(self, step: int, checkpoint_dir: str):
    super().__init__(
        f"Preempted (SIGTERM): saved the checkpoint of step {step} in "
        f"{checkpoint_dir}; run the same command again to resume from it.")
    self.step = step


class PreemptionWatcher:
  """`save(step, ...)`, called after every step, checkpoints it when due and
  stops the run (raises Preempted) at the step `reached` names.

  A single process's SIGTERM handler is installed here; `close` puts the
  previous one back.
  """

  def __init__(self, manager):
    self._manager = manager
    self._synced = jax.process_count() > 1
    self._signal_received = False
    self._previous = None
    if self._synced:
      return  # JAX's sync manager owns SIGTERM; a Python handler would hide it.
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    else:
      logging.warning("Training outside the main thread: SIGTERM is not caught, "
                      "a preempted run resumes from its last periodic checkpoint.")

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    logging.warning("SIGTERM received: finishing this step, then checkpointing.")
    self._signal_received = True

  def reached(self, step: int) -> bool:
    """True at the step to checkpoint and stop at (the same on every process)."""
    if self._synced:
      return self._manager.reached_preemption(step)
    return self._signal_received

  def save(self, step: int, state, metadata: dict, *, is_last: bool, data: dict) -> None:
    """checkpointing.save of `step` (forced at the last step and on preemption);
    after SIGTERM, waits for the write and raises Preempted."""
    preempted = self.reached(step) and not is_last
    checkpointing.save(self._manager, step, state, dict(metadata, step=step),
                       force=is_last or preempted, data=data)
    if preempted:
      self._manager.wait_until_finished()
      raise Preempted(step, str(self._manager.directory))
