r"""A CycleGAN that trains on this 2-core CPU machine in minutes, offline.

  python tools/prepare_offline_coco.py
  python -m jaxstyle.train --config configs/cyclegan_quick.py --workdir runs/cyclegan_quick

configs/cyclegan.py's recipe (LSGAN, cycle λ=10, identity 0.5λ, pool 50,
Adam 2e-4 β1 0.5, linear decay over the second half) on the offline
COCO-shaped data against crops of the quickstart's style image, scaled down:
128² crops, a quarter-width generator (ngf 16, 494,083 parameters; the paper
uses 6 blocks for 128² images, as here), a half-width PatchGAN (ndf 32),
batch 1, 300 steps (150 at lr 2e-4, 150 decaying).
"""

import os

from configs import cyclegan
from configs import quickstart

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_config():
  config = cyclegan.get_config()
  config.model.ngf = 16
  config.model.num_blocks = 6
  config.discriminator.ndf = 32
  config.data.data_dir = os.path.join(_REPO, ".cache", "tensorflow_datasets")
  config.data.image_size = 128
  config.data.resize_min = 160
  config.data_b.resize_min = 160
  config.style.image = quickstart.get_config().style.image
  config.style.size = 256
  config.num_train_steps = 300
  config.log_every_steps = 10
  config.image_every_steps = 100
  config.checkpoint_every_steps = 100
  config.eval.image_size = 384
  return config
