r"""The quickstart run with the 2×2-patch U-Net: fast to export, with a known flaw.

  python -m jaxstyle.train --config configs/patch2.py --workdir runs/quickstart_patch2

Space-to-depth in, depth-to-space out (every layer at half resolution or
below) and each decoder level narrowing its channels before upsampling:
243,580 parameters, 0.165 GMAC at 256² (0.28× the default's); under
onnxruntime on 2 CPU cores a 1024² photo takes 115 ms and 143 MB in a
low-memory serving process (default network: 636 ms, 399 MB; docs/export.md).
The flaw: after 900 steps its stylized images carry a fine 2-pixel grid (each
sub-pixel phase has its own head weights; the style loss rewards the high
frequencies), 2.2× the default's grid power, and keep less of the content.
The head starts with equal phases (ICNR), which halves the grid, no more.
"""

from configs import quickstart


def get_config():
  config = quickstart.get_config()
  config.model.patch_size = 2
  config.model.conv_before_upsample = True
  return config
