r"""What makes the quickstart's pictures look like the style (issue #14's sweep).

  python -m jaxstyle.ablate --config configs/ablations/quality.py \
      --workdir runs/ablations/quality

The reference is jaxstyle's default recipe on the quickstart data; every other
variant changes one thing, most of them a term or setting of the previous
default (the paper's recipe + the fp16 term, style image at 160 px), and
`previous_default` is that recipe whole. Style similarity (mean, relu3_3,
relu4_3) against the style image at 256 px and SSIM on amber at 512 px; ms is
JAX at 1024². The budget is 600 steps (the quickstart trains 800), so the
table ranks recipes early in training, as a 15-minute run sees them
(docs/quality.md). About 90 minutes on 2 CPU cores.
"""

import ml_collections

from configs import quickstart


def get_config():
  base = quickstart.get_config()
  base.num_train_steps = 600
  base.log_every_steps = 10
  base.image_every_steps = 100_000   # the runner evaluates every variant itself
  base.checkpoint_every_steps = 200
  base.keep_checkpoints = 1

  config = ml_collections.ConfigDict()
  config.base = base
  config.reference = "default"
  config.variants = ml_collections.ConfigDict({
      "default": {},
      # The previous default's strokes: the style image at 160 px, so the
      # texture is 0.6× the size the metric (and the eye) compares with.
      "style_size_160": {"style": {"size": 160}},
      # The terms the default leaves out, one at a time.
      "local_style_loss": {"loss": {"local_style_weight": 1.0}},
      "style_perturbation": {"style": {"perturb": {"mode": "bank"}}},
      "fp16_stability": {"loss": {"stability_weight": 0.1}},
      # A [1,2,1] blur folded into the 2×2-patch head (removes its 2-px grid).
      "head_blur": {"model": {"head_blur": True}},
      "content_weight_0_3": {"loss": {"content_weight": 0.3}},
      "relu4_3_weight_4": {"loss": {"style_layers": {
          "relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 4.0}}},
      "adam": {"optimizer": {"name": "adam", "learning_rate": 1e-3}},
      # The output's per-channel colour quantiles against the style's.
      "color_weight_10": {"loss": {"color_weight": 10.0}},
      # The previous default whole: the paper's terms + the fp16 term, style at 160 px.
      "previous_default": {
          "style": {"size": 160, "perturb": {"mode": "bank"}},
          "loss": {"local_style_weight": 1.0, "stability_weight": 0.1}},
  })
  return config
