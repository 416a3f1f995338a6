r"""The quickstart recipe trained 5× longer: issue #14's curve of quality against training time on one CPU machine.

  python -m jaxstyle.train --config configs/long_cpu.py --workdir runs/long_cpu

Same model, losses, data and style as configs/quickstart.py, 4,000 steps
instead of 800 (the cosine schedule spans the whole run), evaluated on amber at
512 px every 200 steps into eval_history.jsonl. On a 2-core CPU ~50 min;
docs/quality.md has the curve it gave. A GPU or TPU host trains the cluster
recipe (configs/default.py) instead.
"""

from configs import quickstart


def get_config():
  config = quickstart.get_config()
  config.num_train_steps = 4000
  config.image_every_steps = 200
  config.checkpoint_every_steps = 200
  return config
