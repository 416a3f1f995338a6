r"""Stylizes images with a trained model.

  python -m jaxstyle.stylize --workdir runs/quickstart --input photo.jpg more/ \
      --output out/

Any image size works: inputs are shrunk to the working size (`--max_size`,
long side 1024 px by default: the network's strokes have a fixed size in
pixels), reflect-padded to what the network needs and cropped back. Outputs
are PNGs named <input stem>_stylized.png and never replace an input. A file that cannot be read gets one line on stderr; the others are
still processed, and the exit code is 1 if any failed.
"""

import sys

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import checkpointing
from jaxstyle import images
from jaxstyle import models


def load_stylizer(workdir: str, step: int | None = None):
  """Returns (apply_fn for one HxWx3 image in [0,1], size multiple, metadata).

  `metadata` is the checkpoint's, with 'step' and 'num_params' (of the network
  that stylizes). A CycleGAN workdir (config.trainer='cyclegan') stylizes with
  its G_AB (content → painting), mapped from and back to [0, 1].
  """
  config = checkpointing.load_config(workdir)
  if checkpointing.trainer_of(config) == "cyclegan":
    from jaxstyle import cyclegan  # pylint: disable=g-import-not-at-top
    model, params, meta = cyclegan.load_generator(workdir, step)
    forward = lambda p, x: cyclegan.to_unit(
        model.apply({"params": p}, cyclegan.to_signed(x)[None])[0])
  else:
    model = models.create_model(config.model)
    abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    params, meta = checkpointing.load_params(workdir, abstract["params"], step)
    forward = lambda p, x: model.apply({"params": p}, x[None])[0]
  meta = dict(meta, num_params=int(sum(np.prod(x.shape) for x in jax.tree.leaves(params))))
  apply = jax.jit(forward)
  return (lambda image: np.asarray(apply(params, jnp.asarray(image, jnp.float32))),
          model.size_multiple, meta)


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints).")
  flags.DEFINE_multi_string("input", None, "Image files or folders (repeatable; "
                            "extra positional arguments are inputs too).")
  flags.DEFINE_string("output", None, "Folder for the stylized PNGs.")
  flags.DEFINE_integer(
      "max_size", images.DEFAULT_MAX_SIZE,
      "Working size: downscale inputs so the long side is at most this many pixels "
      "(strokes have a fixed size in pixels: smaller = bolder strokes); 0 = full resolution.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
  flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv):
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  checkpointing.quiet_library_logs()
  inputs = list(FLAGS.input) + list(argv[1:])
  apply_fn, multiple, meta = load_stylizer(FLAGS.workdir, FLAGS.step)
  logging.info("Loaded step %s of %s", meta.get("step"), FLAGS.workdir)
  written, failures = images.stylize_files(inputs, FLAGS.output, apply_fn,
                                           multiple=multiple, max_size=FLAGS.max_size or None)
  print(f"jaxstyle: wrote {len(written)} image(s) to {FLAGS.output}"
        + (f", {len(failures)} failed" if failures else ""))
  if failures:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
