r"""The built-in offline run for one CPU machine (what `make train` runs).

  python tools/prepare_offline_coco.py
  python -m jaxstyle.train --config configs/quickstart.py --workdir runs/quickstart

Same model, losses, optimizer and style scale (style image at 256 px) as
configs/default.py, on the small offline COCO-2017-shaped dataset in
.cache/tensorflow_datasets, at 128×128 crops for 800 steps (style similarity
is flat after ~400: docs/quality.md); evaluated on amber at 512 px, the
protocol of docs/quality.md.
"""

import os

from configs import default

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_config():
  config = default.get_config()
  config.data.data_dir = os.path.join(_REPO, ".cache", "tensorflow_datasets")
  config.data.image_size = 128
  config.data.resize_min = 160
  config.batch_size = 4
  config.num_train_steps = 800
  config.optimizer.warmup_steps = 50
  config.log_every_steps = 10
  config.image_every_steps = 100
  config.checkpoint_every_steps = 100
  config.eval.image_size = 512
  return config
