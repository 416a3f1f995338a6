r"""CycleGAN baseline (Zhu et al. 2017) with the paper's settings.

  python -m jaxstyle.train --config configs/cyclegan.py --workdir runs/cyclegan \
      [--config.data_b.source=cycle_gan/vangogh2photo]

Domain A: COCO 2017 photos (TFDS, as configs/default.py). Domain B: by default,
offline, random augmented crops of `style.image` ('style_crops'); for real
painting collections set `data_b.source` to a prepared TFDS `cycle_gan/<name>`
dataset (`tfds build cycle_gan/vangogh2photo`, or `data_b.download=True` with
internet; its `trainB` split holds the paintings) or to 'folder:/dir'.

ResNet generator with 9 blocks (ngf 64, 11.4 M parameters), 70×70 PatchGAN
(ndf 64), LSGAN, cycle λ=10, identity 0.5λ, history pool of 50, Adam 2e-4
β1 0.5, batch 1, 256² crops of images resized to 286 (the reference's
resize_and_crop + flip). The paper's 100 + 100 epochs become 200k steps:
constant for the first half, then linear decay to 0.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.trainer = "cyclegan"   # jaxstyle.train hands the run to jaxstyle.cyclegan
  config.seed = 0

  # The generators G_AB (photo → painting) and G_BA. Images are in [-1, 1].
  config.model = ml_collections.ConfigDict(dict(name="cyclegan_resnet", ngf=64,
                                                num_blocks=9))
  config.discriminator = ml_collections.ConfigDict(dict(ndf=64, num_layers=3))
  # Generator loss = gan_weight · LSGAN + cycle_weight · cycle L1
  #   + identity_weight · cycle_weight · identity L1.
  config.loss = ml_collections.ConfigDict(dict(
      gan_weight=1.0, cycle_weight=10.0, identity_weight=0.5))
  config.pool_size = 50         # history of generated images the Ds also see
  # Adam; lr constant, then linear to 0 over the last `decay_fraction` of steps.
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=2e-4, b1=0.5, b2=0.999, decay_fraction=0.5))

  # Domain A: content photos, through the style-transfer input pipeline.
  config.data = default.get_config().data
  config.data.image_size = 256
  config.data.resize_min = 286
  config.data.augment = ml_collections.ConfigDict(dict(
      crop_scale=(1.0, 1.0), hflip=True, rotate_degrees=0.0))

  # Domain B: 'style_crops' (offline: crops of style.image), 'folder:/dir', or a
  # TFDS name such as 'cycle_gan/vangogh2photo' (split trainB, download off).
  config.data_b = ml_collections.ConfigDict(dict(
      source="style_crops",
      # style_crops: crop area as a fraction of the largest square, then flip
      # and colour jitter (amounts as in config.style.perturb of style transfer).
      crop_scale=(0.25, 1.0), hflip=True,
      brightness=0.05, contrast=0.05, saturation=0.05, hue=0.01,
      # TFDS / folder sources: resize the short side, random image_size crop.
      split="trainB", data_dir=ml_collections.FieldReference(None, field_type=str),
      download=False, resize_min=286))
  # Style image(s) for 'style_crops': shipped names or paths, comma-separated;
  # resized so the short side is `size` before cropping.
  config.style = ml_collections.ConfigDict(dict(image="mosaic", size=512))

  config.batch_size = 1             # global, across all devices and hosts
  config.num_train_steps = 200_000
  config.log_every_steps = 100
  config.image_every_steps = 5000
  config.checkpoint_every_steps = 5000
  config.keep_checkpoints = 3
  config.eval = ml_collections.ConfigDict(dict(content_dir="", image_size=512))
  return config
