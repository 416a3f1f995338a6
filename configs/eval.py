r"""Table 1 on this machine: U-Net, Johnson TransformerNet, CycleGAN, Gatys.

  python tools/prepare_offline_coco.py     # once: the offline COCO the models train on
  python -m jaxstyle.evaluate --config configs/eval.py --train_missing

trains whatever checkpoint is missing (the U-Net with configs/quickstart.py,
the full-resolution U-Net with configs/fullres.py, TransformerNet with
configs/transformer_net_quick.py, CycleGAN with configs/cyclegan_quick.py;
each resumes if interrupted), runs Gatys' optimisation with configs/nst.py,
and writes runs/eval/table1.{md,csv,json}, gallery.html and rating.html. See
jaxstyle/evaluate/__main__.py for what each column measures.
"""

import ml_collections

from configs import nst as nst_config


def _entry(label, kind, workdir="", train_config="", nst=None, style_weights=""):
  return ml_collections.ConfigDict(dict(
      label=label,
      kind=kind,                  # 'checkpoint' | 'gatys'
      workdir=workdir,            # checkpoint rows: the training workdir
      train_config=train_config,  # what --train_missing trains it with
      # A multi-style model's row: the style it runs at (config.style's name).
      style_weights=style_weights,
      train_overrides=(),         # extra `--config.x=y` arguments for that training
      onnx="",                    # ONNX file for the onnxruntime column; '' = <workdir>/export/*.onnx
      # gatys rows: the full NST config (configs/nst.py; override any field,
      # e.g. --config.models.gatys.nst.num_steps=100). image_size is set to
      # the evaluation's.
      nst=nst or ml_collections.ConfigDict(),
  ))


def _gatys() -> ml_collections.ConfigDict:
  # 100 L-BFGS steps, not configs/nst.py's 300: on 2 CPU cores a 256² image
  # takes ~2 s per step, and the loss is within 10% of its 300-step value
  # (0.505 vs 0.457 on amber/mosaic).
  nst = nst_config.get_config()
  nst.num_steps = 100
  return nst


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0                 # noise speed image, rating-page codes
  config.out_dir = "runs/eval"
  config.content_dir = ""         # '' = jaxstyle/assets/eval_content (held-out photos)
  config.style = "mosaic"         # shipped style name or a path (as training)
  config.style_size = 256         # style image short side for the style metric
  # Every image is evaluated at image_size × image_size: short side resized,
  # centre crop. Speed is measured at the same size, batch 1.
  config.image_size = 256
  config.vgg = ml_collections.ConfigDict(dict(arch="vgg16", source="hed", path=""))
  # Style similarity: the training style layers. Content distance: the
  # training content layer (relu2_2, low-level detail) and Gatys' content
  # layer (conv4_2 after its ReLU, as in configs/nst.py: object structure).
  config.style_layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
  config.content_layers = ("relu2_2", "relu4_2")
  config.speed = ml_collections.ConfigDict(dict(warmup=3, repeats=20))

  config.rows = ("unet", "unet_fullres", "johnson", "cyclegan", "gatys")
  config.models = ml_collections.ConfigDict({
      "unet": _entry("U-Net (ours)", "checkpoint", "runs/quickstart",
                     "configs/quickstart.py"),
      # The paper's layout: stem and last decoder level at every pixel.
      "unet_fullres": _entry("U-Net, full resolution", "checkpoint",
                             "runs/quickstart_fullres", "configs/fullres.py"),
      "johnson": _entry("Johnson TransformerNet", "checkpoint",
                        "runs/transformer_net_quick", "configs/transformer_net_quick.py"),
      "cyclegan": _entry("CycleGAN", "checkpoint", "runs/cyclegan_quick",
                         "configs/cyclegan_quick.py"),
      "gatys": _entry("Gatys NST", "gatys", nst=_gatys()),
      # Not in the default rows (4,000 steps, ~50 CPU minutes): add with
      # --config.rows="('unet', 'unet_multistyle', ...)".
      "unet_multistyle": _entry("U-Net, 4 styles in one (mosaic)", "checkpoint",
                                "runs/multistyle", "configs/multistyle.py",
                                style_weights="mosaic"),
  })

  # The paper's own Table 1 (../shared/paper, §4), shown in a separate block
  # labelled as the paper's and never mixed into the measured table. The
  # paper gives neither its hardware, image size nor the definition of its
  # "style transfer metric".
  config.paper_reference = ml_collections.ConfigDict({
      "U-Net style transfer": dict(ssim=0.92, psnr=30.5, style=0.95, images_per_s=15, mb=140),
      "CycleGAN style transfer": dict(ssim=0.88, psnr=28.9, style=0.93, images_per_s=12,
                                      mb=130),
      "Neural style transfer": dict(ssim=0.84, psnr=27.3, style=0.88, images_per_s=10,
                                    mb=120),
  })
  return config
