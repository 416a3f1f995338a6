"""Runs an exported jaxstyle ONNX model with onnxruntime.

Imports only numpy and onnxruntime (not JAX, not the exporter), so a serving
process stays at onnxruntime's own ~60 MB before the first image:

  from jaxstyle import onnx_inference
  sess = onnx_inference.session("export/mosaic.onnx", threads=2, low_memory=True)
  stylized = onnx_inference.run(sess, images)   # float32 NHWC in [0, 1]

`low_memory=True` trades ~30% speed for ~⅓ less peak memory (docs/export.md):
onnxruntime's CPU arena keeps every block it ever grew to (a 1024² image left
~150 MB of activations in it for a network whose live tensors peak at 64 MiB),
so instead each tensor is allocated and freed with the system allocator, and
glibc is told to map large buffers directly (`mallopt(M_MMAP_THRESHOLD)`) so
that a freed activation map goes back to the OS at once.
"""

import ctypes
import ctypes.util
import sys

import numpy as np

_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>


def map_large_allocations_directly(threshold_bytes: int = 1 << 16) -> bool:
  """glibc only: buffers ≥ threshold are mmap'd and unmapped on free.

  By default glibc raises its mmap threshold after each freed large buffer
  (up to 32 MiB), after which freed activation maps stay in the heap and in
  the process's resident memory. Process-wide; returns False where it does not
  apply (macOS, musl), which changes nothing else.
  """
  if not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)))


def session(path_or_bytes, threads: int | None = None, low_memory: bool = False):
  """An onnxruntime CPU InferenceSession for a jaxstyle export."""
  import onnxruntime as ort
  options = ort.SessionOptions()
  if threads:
    options.intra_op_num_threads = threads
  options.log_severity_level = 3
  if low_memory:
    options.enable_cpu_mem_arena = False
    map_large_allocations_directly()
  return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def run(sess, images_nhwc: np.ndarray, io: str = "nhwc",
        controls: dict[str, np.ndarray] | None = None) -> np.ndarray:
  """Stylizes float32 NHWC images in [0, 1] (sides multiples of the model's
  `size_multiple` metadata) with a model exported for `io` layout; `controls`
  feeds a multi-style model's other inputs ('style_weights' [N], 'strength' [1])."""
  x = np.ascontiguousarray(images_nhwc, np.float32)
  feeds = {name: np.asarray(v, np.float32) for name, v in (controls or {}).items()}
  if io == "nchw":
    feeds["image"] = x.transpose(0, 3, 1, 2)
    return sess.run(None, feeds)[0].transpose(0, 2, 3, 1)
  feeds["image"] = x
  return sess.run(None, feeds)[0]
