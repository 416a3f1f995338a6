"""Writing files so that no reader, and no crash or preemption, sees half of one.

Every file jaxstyle writes goes to a temporary file in the target's folder
first; once complete and flushed to disk it is renamed over the target (an
atomic step on POSIX and Windows). If writing fails, the temporary file is
removed and the previous target, if any, is left as it was.
"""

import contextlib
import json
import os
import secrets
from typing import Any, IO, Iterator


@contextlib.contextmanager
def replacing(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
  """An open file (text in UTF-8, or `binary`) that becomes `path` on success."""
  directory, name = os.path.split(os.path.abspath(os.fspath(path)))
  tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
  # os.open with 0o666 honours the umask, unlike tempfile's private 0o600.
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def write_text(path: str | os.PathLike, text: str) -> None:
  with replacing(path) as f:
    f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  with replacing(path, binary=True) as f:
    f.write(data)


def write_json(path: str | os.PathLike, data: Any, **dump_kwargs) -> None:
  """JSON with `indent=2, sort_keys=True` unless `dump_kwargs` say otherwise."""
  with replacing(path) as f:
    json.dump(data, f, **{"indent": 2, "sort_keys": True, **dump_kwargs})
