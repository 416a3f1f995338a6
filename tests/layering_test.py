"""Dependencies point down: the trainers are siblings, shared helpers live below them."""

import os
import subprocess
import sys

import ml_collections
import pytest

from jaxstyle import checkpointing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Modules that must not import jaxstyle.train (the style-transfer trainer and
# the entry point): what the trainers and the tools build on, and the CycleGAN
# trainer, which is train's sibling.
BELOW_TRAIN = ("jaxstyle.run_lib", "jaxstyle.cyclegan", "jaxstyle.nst", "jaxstyle.stylize",
               "jaxstyle.stylizer", "jaxstyle.evaluate", "jaxstyle.evaluate.__main__",
               "jaxstyle.export.exporter", "jaxstyle.export.model", "jaxstyle.input_pipeline",
               "jaxstyle.checkpointing")


def test_no_module_below_the_trainer_imports_it():
  code = ("import importlib, sys\n"
          f"for name in {BELOW_TRAIN!r}:\n"
          "  importlib.import_module(name)\n"
          "  assert 'jaxstyle.train' not in sys.modules, name\n"
          "print('ok')\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_trainer_of_defaults_to_style_transfer_and_names_the_choices():
  assert checkpointing.trainer_of(ml_collections.ConfigDict()) == "style_transfer"
  assert checkpointing.trainer_of(ml_collections.ConfigDict({"trainer": "cyclegan"})) == "cyclegan"
  with pytest.raises(ValueError, match="config.trainer='gan': not one of style_transfer, cyclegan"):
    checkpointing.trainer_of(ml_collections.ConfigDict({"trainer": "gan"}))
