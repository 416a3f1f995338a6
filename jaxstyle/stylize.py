r"""Stylizes images with a trained model.

  python -m jaxstyle.stylize --workdir runs/quickstart --input photo.jpg more/ \
      --output out/

Any image size works: inputs are shrunk to the working size (`--max_size`,
long side 1024 px by default: the network's strokes have a fixed size in
pixels), reflect-padded to what the network needs and cropped back; with
`--max_size=0` a photo of any size works, in tiles (`--tile_size`) once it
is larger than one. Outputs
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
from jaxstyle import colors
from jaxstyle import images
from jaxstyle import tiling
from jaxstyle import trained_model


def load_stylizer(workdir: str, step: int | None = None, *, style_weights=None,
                  strength: float | None = None, preserve_colors: bool = False,
                  tile_size: int | None = images.DEFAULT_TILE_SIZE):
  """Returns (apply_fn for one HxWx3 image in [0,1], size multiple, metadata).

  An image with a side longer than `tile_size` is stylized in tiles with the
  whole image's norm statistics (`jaxstyle.tiling`: the same result in
  bounded memory) and comes back as uint8; 0 or None never tiles.

  `metadata` is the checkpoint's, with 'step', 'num_params' (of the network
  that stylizes) and 'styles'. `style_weights` ('mosaic=0.7,candy=0.3', a
  style name, a mapping or a vector) and `strength` (0: the photo … 1: the
  full style) choose the condition of a multi-style / strength-controlled
  network (`jaxstyle.trained_model.TrainedModel.condition`);
  `preserve_colors` keeps the photo's colours (`jaxstyle.colors`). A CycleGAN
  workdir stylizes with its G_AB.
  """
  trained = trained_model.load(workdir, step)
  condition = trained.condition(style_weights, strength)
  meta = dict(trained.metadata, num_params=trained.num_params, styles=trained.style_names)

  def forward(params, image):
    out = trained.forward(params, image[None], condition)[0]
    return colors.preserve_colors(out, image) if preserve_colors else out

  apply = jax.jit(forward)
  untiled = lambda image, _: np.asarray(apply(trained.params, jnp.asarray(image)))
  apply_fn = tiling.tiled_when_large(  # float in [0, 1] or uint8 in
      untiled, trained.model, trained.params, tile_size, tiled_dtype=np.uint8, progress=True,
      finish=colors.preserve_colors if preserve_colors else None)
  return lambda image: apply_fn(image, condition), trained.size_multiple, meta


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints).")
  flags.DEFINE_multi_string("input", None, "Image files or folders (repeatable; "
                            "extra positional arguments are inputs too).")
  flags.DEFINE_string("output", None, "Folder for the stylized PNGs.")
  flags.DEFINE_integer(
      "max_size", images.DEFAULT_MAX_SIZE,
      "Working size: downscale inputs so the long side is at most this many pixels "
      "(strokes have a fixed size in pixels: smaller = bolder strokes); 0 = full resolution.")
  flags.DEFINE_integer(
      "tile_size", images.DEFAULT_TILE_SIZE,
      "Images with a side longer than this are stylized in tiles of this size (the same "
      "result, with the whole image's statistics, in bounded memory); 0 = never tile.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
  flags.DEFINE_string(
      "style_weights", None, "For a multi-style model: a style name, or a blend "
      "such as mosaic=0.7,candy=0.3 (weights >= 0, normalised).")
  flags.DEFINE_float("strength", None, "0 (the photo) … 1 (the full style, default); "
                     "needs a model trained with config.model.strength_control.")
  flags.DEFINE_bool("preserve_colors", False, "Keep the photo's colours: only the "
                    "stylized luminance is used.")
  flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv):
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  checkpointing.quiet_library_logs()
  inputs = list(FLAGS.input) + list(argv[1:])
  try:
    apply_fn, multiple, meta = load_stylizer(
        FLAGS.workdir, FLAGS.step, style_weights=FLAGS.style_weights,
        strength=FLAGS.strength, preserve_colors=FLAGS.preserve_colors,
        tile_size=FLAGS.tile_size)
  except ValueError as e:
    sys.exit(f"jaxstyle: {e}")
  logging.info("Loaded step %s of %s", meta.get("step"), FLAGS.workdir)
  # At full resolution photos are read as 8-bit: a quarter of float32's memory.
  written, failures = images.stylize_files(inputs, FLAGS.output, apply_fn,
                                           multiple=multiple, max_size=FLAGS.max_size or None,
                                           as_uint8=not FLAGS.max_size)
  print(f"jaxstyle: wrote {len(written)} image(s) to {FLAGS.output}"
        + (f", {len(failures)} failed" if failures else ""))
  if failures:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
