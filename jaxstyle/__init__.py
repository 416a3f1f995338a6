"""jaxstyle: fast neural style transfer in JAX/Flax."""

import os

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
STYLES_DIR = os.path.join(ASSETS_DIR, "styles")
CONTENT_DIR = os.path.join(ASSETS_DIR, "content")
