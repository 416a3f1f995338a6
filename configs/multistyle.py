r"""Four styles and a strength control in one U-Net, on this CPU (offline data).

  python -m jaxstyle.train --config configs/multistyle.py --workdir runs/multistyle
  python -m jaxstyle.stylize --workdir runs/multistyle --input photo.jpg --output out \
      --style_weights mosaic=0.7,candy=0.3 --strength 0.6

The quickstart's recipe with conditional instance norm (a norm row per style
in the body and decoder, jaxstyle/models/conditioning.py) and the identity
condition for strength, which gets a gated path from the photo to the head
(config.model.photo_skip: strength 0 gives the photo back). Each batch of 4
takes 4 of the 5 conditions in turn, so 4,000 steps give every style the
3,200 examples (800 steps × 4) a single-style quickstart run sees.
"""

from configs import quickstart


def get_config():
  config = quickstart.get_config()
  config.style.images = ("candy", "mosaic", "rain-princess", "udnie")
  config.model.num_styles = len(config.style.images)
  config.model.strength_control = True
  config.model.photo_skip = True
  config.num_train_steps = 4000
  config.optimizer.warmup_steps = 200
  config.image_every_steps = 500
  config.checkpoint_every_steps = 250
  return config
