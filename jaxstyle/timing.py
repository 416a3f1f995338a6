"""Wall-clock timing of calls, for the speed columns of tables and benchmarks.

Results must be ready when a call returns (numpy arrays, or wrap the call in
`jax.block_until_ready`). Several functions are timed in turn, call by call,
so a change in the machine's load hits all of them alike.
"""

import time
from typing import Callable, Sequence


def interleaved_seconds(fns: Sequence[Callable[[], object]], repeats: int,
                        warmup: int = 1) -> list[list[float]]:
  """Seconds of each of `repeats` calls of every fn, after `warmup` calls of each."""
  for fn in fns:
    for _ in range(warmup):
      fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, own in zip(fns, times):
      start = time.perf_counter()
      fn()
      own.append(time.perf_counter() - start)
  return times


def call_seconds(fn: Callable[..., object], *args, repeats: int, warmup: int = 1) -> list[float]:
  """Seconds of each of `repeats` calls of fn(*args), after `warmup` calls."""
  return interleaved_seconds([lambda: fn(*args)], repeats, warmup)[0]
