"""jaxstyle: fast neural style transfer in JAX/Flax.

`import jaxstyle` loads neither JAX nor TensorFlow: `jaxstyle.Stylizer` is
imported on first use, and the command line (`jaxstyle --help`) stays fast.
"""

import os

__version__ = "0.1.0"
__all__ = ["Stylizer", "__version__"]

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
STYLES_DIR = os.path.join(ASSETS_DIR, "styles")
CONTENT_DIR = os.path.join(ASSETS_DIR, "content")
# Held-out photos for Table 1: none of them is in the (offline) training data.
EVAL_CONTENT_DIR = os.path.join(ASSETS_DIR, "eval_content")


def __getattr__(name):
  if name == "Stylizer":
    from jaxstyle.stylizer import Stylizer  # pylint: disable=g-import-not-at-top
    globals()["Stylizer"] = Stylizer
    return Stylizer
  raise AttributeError(f"module 'jaxstyle' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + ["Stylizer"])
