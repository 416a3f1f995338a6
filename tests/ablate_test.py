"""The ablation runner: overrides, validation before training, the report."""

import csv
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
from PIL import Image
import pytest

from configs import default
from configs.ablations import paper
from configs.ablations import quality
from configs.ablations import tiny
from jaxstyle import ablate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "folder:" + os.path.join(REPO, "jaxstyle", "assets", "styles")


def test_overrides_merge_nested_and_name_unknown_keys():
  config = default.get_config()
  ablate.apply_overrides(config, {"optimizer": {"name": "adam"},
                                  "loss": {"style_layers": {"relu2_2": 3.0}}}, "v")
  assert config.optimizer.name == "adam" and config.optimizer.momentum == 0.9
  assert dict(config.loss.style_layers) == {"relu2_2": 3.0}  # replaced, not merged
  with pytest.raises(ValueError, match=r"v\.optimizer\.nmae: no such key"):
    ablate.apply_overrides(config, {"optimizer": {"nmae": "sgd"}}, "v")


def test_changing_the_model_name_replaces_the_model_section():
  config = default.get_config()
  ablate.apply_overrides(config, {"model": {"name": "transformer_net"}}, "v")
  assert dict(config.model) == {"name": "transformer_net"}


def test_a_bad_variant_fails_before_anything_trains():
  ablation = tiny.get_config()
  ablation.variants.broken = ml_collections.ConfigDict(
      {"loss": {"tv_weight": -1.0}})
  with pytest.raises(ValueError, match=r"config\.loss\.tv_weight=-1\.0"):
    ablate.build_variants(ablation)
  ablation = tiny.get_config()
  ablation.reference = "nope"
  with pytest.raises(ValueError, match="config.reference='nope'"):
    ablate.build_variants(ablation)


def test_shipped_ablation_builds_every_variant():
  names = [n for n, _ in ablate.build_variants(paper.get_config())]
  assert names[0] == "paper"
  for wanted in ("adam", "standard_conv", "no_augmentation", "no_style_perturbation",
                 "no_local_style_loss", "transformer_net", "patch2", "fp16_stability"):
    assert wanted in names


def test_quality_ablation_builds_and_each_variant_changes_the_default():
  """Every variant of configs/ablations/quality.py validates and differs from
  the reference (a switch that already is the default would measure nothing)."""
  built = dict(ablate.build_variants(quality.get_config()))
  assert "default" in built and "previous_default" in built
  reference = built["default"].to_dict()
  for name, config in built.items():
    if name != "default":
      assert config.to_dict() != reference, name
  previous = built["previous_default"]
  assert (previous.style.size, previous.style.perturb.mode) == (160, "bank")
  assert (previous.loss.local_style_weight, previous.loss.stability_weight) == (1.0, 0.1)


def test_params_and_macs_of_the_default_and_the_papers_unet():
  params, macs = ablate.count_params_and_macs(default.get_config().model, 256)
  assert (params, macs) == (242_275, 165_275_776)
  # The ablation's reference is the paper's full-resolution network.
  params, macs = ablate.count_params_and_macs(paper.get_config().base.model, 256)
  assert (params, macs) == (240_979, 591_462_400)


def test_runner_writes_table_plots_and_reuses_finished_runs(tmp_path):
  cmd = [sys.executable, "-m", "jaxstyle.ablate",
         "--config", os.path.join(REPO, "configs", "ablations", "tiny.py"),
         "--workdir", str(tmp_path), f"--config.base.data.source={DATA}",
         "--only=separable,standard_conv"]
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(tmp_path / "ablation.csv") as f:
    rows = {r["variant"]: r for r in csv.DictReader(f)}
  assert sorted(rows) == ["separable", "standard_conv"]  # adam was not trained
  assert int(rows["standard_conv"]["params"]) > int(rows["separable"]["params"])
  for row in rows.values():
    assert 0 < float(row["style_similarity"]) <= 1
    layers = [float(row[f"style_similarity_{k}"]) for k in ("relu3_3", "relu4_3")]
    assert all(0 < v <= 1 for v in layers)
    assert -1 <= float(row["ssim"]) <= 1
    assert float(row["ms_1024"]) > 0
    assert float(row["step_time_s"]) > 0
  report = json.loads((tmp_path / "ablation.json").read_text())
  assert "4 steps" in report["conditions"]
  assert "| separable |" in (tmp_path / "ablation.md").read_text()
  for png in ("loss_curves.png", "outputs.png", "tradeoff.png"):
    image = np.asarray(Image.open(tmp_path / png))
    assert image.ndim == 3 and image.std() > 0

  # A rerun trains nothing: both variants are finished.
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=900)
  assert proc.returncode == 0 and "reusing" in proc.stderr

  # An edited variant is not silently reused (its numbers would be stale).
  proc = subprocess.run(cmd + ["--config.base.loss.tv_weight=3.0"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode != 0
  assert "was trained with another config (differs in loss)" in proc.stderr
