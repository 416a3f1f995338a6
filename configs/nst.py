r"""Gatys et al. (2016) optimisation-based style transfer: the quality baseline.

  python -m jaxstyle.nst --content photo.jpg --style mosaic --output out.png \
      [--config configs/nst.py --config.num_steps=300 --config.optimizer=adam ...]

Optimises the pixels of one image against the same VGG loss network and loss
code as training (`jaxstyle/losses.py`), so its losses are comparable with the
feed-forward models'. Layers follow the paper: content on conv4_2, style on
conv1_1 … conv5_1 with equal weights. Gatys' Caffe network ran every ReLU in
place, so the activations it called "conv4_2" are post-ReLU: here relu4_2 and
relu1_1 … relu5_1 of `jaxstyle.models.vgg`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # noise init only

  # 'lbfgs': optax.lbfgs with its zoom linesearch, as Gatys used L-BFGS.
  # 'adam': optax.adam at `learning_rate` (on the pixel logits, see below).
  config.optimizer = "lbfgs"
  config.num_steps = 300
  config.learning_rate = 0.05   # adam only; L-BFGS picks steps by linesearch
  config.lbfgs_memory_size = 10

  # The content is shrunk (never enlarged) so its long side is at most
  # image_size; 0 optimises at the content's own size. stylize() returns the
  # content's own height × width (resized back if it was shrunk).
  config.image_size = 256
  # Style image: short side resized to style_size pixels; 0 = long side equal
  # to the working content's long side (aspect kept), the scale Gatys used.
  config.style_size = 0

  # 'content' starts from the content image, 'noise' from uniform noise (seeded).
  config.init = "content"
  # Pixels are sigmoid(logits), so every iterate is an image in [0, 1]
  # without projection (L-BFGS needs an unconstrained problem). The start is
  # squeezed into [margin, 1 - margin] to keep the logits finite and the sigmoid
  # out of saturation; the content target is the unsqueezed content.
  config.pixel_margin = 0.01

  # Relative errors (‖x−t‖²/‖t‖², jaxstyle/losses.py): each term is ~1 for an
  # unrelated image, so the weights are comparable across layers and VGG sources.
  config.content_weight = 1.0
  config.style_weight = 10.0
  config.tv_weight = 1.0
  config.content_layers = {"relu4_2": 1.0}
  config.style_layers = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2,
                         "relu4_1": 0.2, "relu5_1": 0.2}

  # The loss network: same loader and fields as the training configs.
  config.vgg = ml_collections.ConfigDict(dict(arch="vgg16", source="hed", path=""))
  return config
