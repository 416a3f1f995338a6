"""Every shipped training config passes the checks a run makes at start."""

import importlib

import pytest

from jaxstyle import checkpointing
from jaxstyle import cyclegan
from jaxstyle import train

TRAINING_CONFIGS = ("default", "quickstart", "long_cpu", "tiny", "fullres", "multistyle",
                    "transformer_net_quick", "cyclegan", "cyclegan_quick")


@pytest.mark.parametrize("name", TRAINING_CONFIGS)
def test_shipped_config_validates(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  validate = {"style_transfer": train.validate_config,
              "cyclegan": cyclegan.validate_config}[checkpointing.trainer_of(config)]
  validate(config)


def test_long_cpu_is_the_quickstart_trained_longer():
  quick = importlib.import_module("configs.quickstart").get_config().to_dict()
  long = importlib.import_module("configs.long_cpu").get_config().to_dict()
  differs = {k for k in quick if quick[k] != long[k]}
  assert differs == {"num_train_steps", "image_every_steps", "checkpoint_every_steps"}
  assert long["num_train_steps"] == 5 * quick["num_train_steps"]
