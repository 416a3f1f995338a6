"""TensorBoard event files without TensorFlow.

`flax.metrics.tensorboard` writes through `tf.summary`, and the `tensorboard`
package's own writer (`EventFileWriter`) imports TensorFlow when it is
installed. This writes the same records as `tf.summary` does (TF2 summaries:
scalars as float32 tensors with the scalars plugin's metadata, images as
[width, height, PNG] string tensors with the images plugin's) with only the
`tensorboard` package's protos and record framing, so TensorBoard,
`EventAccumulator` and `jaxstyle.ablate` read them as before.
"""

import io
import itertools
import os
import socket
import time

import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer import record_writer
from tensorboard.util import tensor_util

_file_count = itertools.count()


class SummaryWriter:
  """Appends summaries to a new event file in `logdir` (flax's interface).

  Records are buffered and written on `flush` (also every `flush_secs` and on
  `close`); a resumed run starts a new file, as `tf.summary` does.
  """

  def __init__(self, logdir: str, flush_secs: float = 30.0):
    os.makedirs(logdir, exist_ok=True)
    name = (f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_file_count)}.v2")
    self.path = os.path.join(logdir, name)
    self._writer = record_writer.RecordWriter(open(self.path, "wb"))
    self._flush_secs = flush_secs
    self._last_flush = time.time()
    self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
    self.flush()

  def _write(self, event: event_pb2.Event) -> None:
    self._writer.write(event.SerializeToString())
    if time.time() - self._last_flush > self._flush_secs:
      self.flush()

  def _summary(self, tag: str, step: int, tensor, metadata) -> None:
    value = summary_pb2.Summary.Value(
        tag=tag, metadata=metadata, tensor=tensor_util.make_tensor_proto(tensor))
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step),
                                summary=summary_pb2.Summary(value=[value])))

  def scalar(self, tag: str, value, step: int) -> None:
    self._summary(tag, step, np.float32(value),
                  scalar_metadata.create_summary_metadata(display_name=tag, description=""))

  def image(self, tag: str, image, step: int, max_outputs: int = 3) -> None:
    """`image`: (H, W, C) or (N, H, W, C), float in [0, 1] or uint8; C in 1, 3, 4."""
    images = np.asarray(image)
    if images.ndim == 3:
      images = images[None]
    if images.dtype != np.uint8:
      images = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    pngs = []
    for one in images[:max_outputs]:
      buffer = io.BytesIO()
      Image.fromarray(one[..., 0] if one.shape[-1] == 1 else one).save(buffer, format="PNG")
      pngs.append(buffer.getvalue())
    height, width = images.shape[1:3]
    tensor = np.array([str(width).encode(), str(height).encode(), *pngs], dtype=object)
    self._summary(tag, step, tensor,
                  image_metadata.create_summary_metadata(display_name=tag, description=""))

  def flush(self) -> None:
    self._writer.flush()
    self._last_flush = time.time()

  def close(self) -> None:
    if not self._writer.closed:
      self.flush()
      self._writer.close()
