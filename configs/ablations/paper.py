r"""One-switch-at-a-time ablation of the paper's training recipe, on one CPU.

  python -m jaxstyle.ablate --config configs/ablations/paper.py \
      --workdir runs/ablations/paper

The reference is the paper's recipe (SGD + cosine, the full-resolution
separable-conv U-Net with skips, content augmentation, style perturbation,
global + local style loss) on the offline quickstart data; every other variant
changes one thing. jaxstyle's default differs from it in three of them: the
2×2-patch network (`patch2`), no style perturbation and no local style loss
(docs/quality.md); `fp16_stability` is jaxstyle's optional fp16 term. The budget
is small and fixed (`base.num_train_steps`), so the table compares early
training, not converged models. Raise it with
`--config.base.num_train_steps=2000`.
"""

import ml_collections

from configs import quickstart


def get_config():
  base = quickstart.get_config()
  base.num_train_steps = 300
  base.optimizer.warmup_steps = 30
  base.log_every_steps = 10
  base.image_every_steps = 100_000   # the runner evaluates every variant itself
  base.checkpoint_every_steps = 100
  base.keep_checkpoints = 1
  # The paper's recipe: a full-resolution network, style perturbation and the
  # local style loss; jaxstyle's default changes all three (variants below).
  base.model.patch_size = 1
  base.model.conv_before_upsample = False
  base.style.perturb.mode = "bank"
  base.loss.local_style_weight = 1.0

  off = dict(crop_scale=(1.0, 1.0), hflip=False, rotate_degrees=0.0)
  config = ml_collections.ConfigDict()
  config.base = base
  config.reference = "paper"
  config.variants = ml_collections.ConfigDict({
      "paper": {},
      "adam": {"optimizer": {"name": "adam", "learning_rate": 1e-3}},
      "standard_conv": {"model": {"separable": False}},
      "no_skips": {"model": {"skips": False}},
      # jaxstyle's default network: every layer on 2×2 pixel patches, channels
      # narrowed before upsampling: 0.28× the MACs.
      "patch2": {"model": {"patch_size": 2, "conv_before_upsample": True}},
      "no_augmentation": {"data": {"augment": off}},
      "no_style_perturbation": {"style": {"perturb": {"mode": "none"}}},
      "no_local_style_loss": {"loss": {"local_style_weight": 0.0}},
      "transformer_net": {"model": {"name": "transformer_net"}},
      # jaxstyle's optional term: penalize the output change from float16 rounding.
      "fp16_stability": {"loss": {"stability_weight": 0.1,
                                  "stability_perturbation": "fp16"}},
  })
  return config
