r"""A seconds-long ablation for tests: the tiny U-Net, separable vs standard.

  python -m jaxstyle.ablate --config configs/ablations/tiny.py --workdir /tmp/ablate \
      --config.base.data.source=folder:jaxstyle/assets/styles
"""

import ml_collections

from configs import tiny


def get_config():
  base = tiny.get_config()
  base.num_train_steps = 4
  base.log_every_steps = 1
  base.checkpoint_every_steps = 2
  config = ml_collections.ConfigDict()
  config.base = base
  config.reference = "separable"
  config.variants = ml_collections.ConfigDict({
      "separable": {},
      "standard_conv": {"model": {"separable": False}},
      "adam": {"optimizer": {"name": "adam", "learning_rate": 1e-3}},
  })
  return config
