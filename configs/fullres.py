r"""The quickstart run with the full-resolution U-Net: finer detail, slower export.

  python -m jaxstyle.train --config configs/fullres.py --workdir runs/quickstart_fullres

The network of the paper's description: the stem, the last decoder level and
the head run at every pixel (patch_size=1) and each decoder level upsamples
before its first conv. 240,979 parameters, 0.59 GMAC at 256² (3.6× the
default's); under onnxruntime on 2 CPU cores a 1024² photo takes ~600 ms, and
~730 ms and 399 MB in a low-memory serving process (default network: ~100 ms;
132 ms and 143 MB; docs/export.md). It keeps more of the photo's fine detail.
600 steps: each costs ~1.3× a step of the default network, so Table 1 gets
it at the quickstart's training time (its "train min" column).
"""

from configs import quickstart


def get_config():
  config = quickstart.get_config()
  config.model.patch_size = 1
  config.model.conv_before_upsample = False
  config.num_train_steps = 600
  return config
