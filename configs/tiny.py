r"""A seconds-long run for tests and smoke checks (any machine).

  python -m jaxstyle.train --config configs/tiny.py --workdir /tmp/tiny \
      --config.data.source=folder:jaxstyle/assets/styles
"""

from configs import quickstart


def get_config():
  config = quickstart.get_config()
  config.model.features = (8, 16)
  config.model.num_res_blocks = 1
  config.data.image_size = 32
  config.data.resize_min = 48
  config.style.size = 64
  config.batch_size = 4
  config.num_train_steps = 3
  config.optimizer.warmup_steps = 1
  config.log_every_steps = 1
  config.image_every_steps = 1000
  config.checkpoint_every_steps = 1
  config.eval.image_size = 32
  return config
