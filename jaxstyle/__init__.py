"""jaxstyle: fast neural style transfer in JAX/Flax."""

import os

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
STYLES_DIR = os.path.join(ASSETS_DIR, "styles")
CONTENT_DIR = os.path.join(ASSETS_DIR, "content")
# Held-out photos for Table 1: none of them is in the (offline) training data.
EVAL_CONTENT_DIR = os.path.join(ASSETS_DIR, "eval_content")
