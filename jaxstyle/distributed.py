"""Joining the processes of a multi-host run (TPU pod slice, GPU cluster).

Every process runs the same command; after `jax.distributed.initialize` JAX
sees the devices of all hosts and one jitted step spans them. On TPU pods,
SLURM, Open MPI and Kubernetes JAX finds the coordinator itself
(`--multihost`); elsewhere pass `--coordinator_address`, `--num_processes`
and `--process_id`.
"""

from absl import flags
import jax


def define_flags() -> None:
  flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first, "
                    "letting JAX detect the cluster (TPU, SLURM, Open MPI, K8s).")
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for "
                      "clusters JAX does not detect (implies --multihost).")
  flags.DEFINE_integer("num_processes", None, "Total number of processes.")
  flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")


def initialize() -> None:
  """Calls jax.distributed.initialize if the flags ask for several processes."""
  f = flags.FLAGS
  explicit = (f.coordinator_address, f.num_processes, f.process_id)
  if not f.multihost and all(v is None for v in explicit):
    return
  # CPU-only clusters (and the localhost test) need gloo for collectives;
  # GPU/TPU backends ignore this setting.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f.coordinator_address,
                             num_processes=f.num_processes, process_id=f.process_id)
