r"""Johnson et al.'s TransformerNet on the quickstart recipe (a Table 1 row).

  python -m jaxstyle.train --config configs/transformer_net_quick.py \
      --workdir runs/transformer_net_quick

Everything as configs/quickstart.py (data, losses, SGD, 900 steps of batch 4
at 128²), only the network differs, so the row compares architectures.
About 1.6 s per step on 2 CPU cores (≈25 min).
"""

import ml_collections

from configs import quickstart


def get_config():
  config = quickstart.get_config()
  # A different architecture has its own fields: replace the section, as
  # configs/ablations/paper.py's transformer_net variant does.
  config.model = ml_collections.ConfigDict(dict(name="transformer_net"))
  return config
