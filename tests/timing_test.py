"""jaxstyle.timing: warm-up calls are not timed, functions alternate call by call."""

import time

from jaxstyle import timing


def test_interleaved_calls_alternate_after_the_warmup():
  calls = []
  fns = [lambda: calls.append("a"), lambda: (calls.append("b"), time.sleep(0.01))]
  times = timing.interleaved_seconds(fns, repeats=3, warmup=2)
  assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
  assert [len(t) for t in times] == [3, 3]
  assert min(times[1]) >= 0.01 > max(times[0])


def test_call_seconds_passes_the_arguments():
  seen = []
  assert len(timing.call_seconds(seen.append, 7, repeats=4, warmup=0)) == 4
  assert seen == [7] * 4
