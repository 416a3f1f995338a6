"""Dependencies point down: the trainers are siblings, shared helpers live below them."""

import ast
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


# What may import a trainer: the trainers themselves (train dispatches to
# cyclegan) and the tools on top that run trainings in-process.
TRAINERS = {"jaxstyle.train", "jaxstyle.cyclegan"}
ABOVE_TRAINERS = TRAINERS | {"jaxstyle.ablate"}


def _imports(path: str, package: str) -> set[str]:
  """Every module a file imports, at its top or inside functions."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: from the file's package
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                        + ([base] if base else []))
      found |= {base} | {f"{base}.{a.name}" for a in node.names}
  return found


def test_no_library_module_imports_a_trainer_even_lazily():
  offenders = []
  for root, _, files in os.walk(os.path.join(REPO, "jaxstyle")):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(root, name)
      module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
      module = module.removesuffix(".__init__")
      if module in ABOVE_TRAINERS:
        continue
      bad = _imports(path, module.rsplit(".", 1)[0]) & TRAINERS
      offenders += [f"{module} imports {m}" for m in sorted(bad)]
  assert not offenders, offenders


def test_trainer_of_defaults_to_style_transfer_and_names_the_choices():
  assert checkpointing.trainer_of(ml_collections.ConfigDict()) == "style_transfer"
  assert checkpointing.trainer_of(ml_collections.ConfigDict({"trainer": "cyclegan"})) == "cyclegan"
  with pytest.raises(ValueError, match="config.trainer='gan': not one of style_transfer, cyclegan"):
    checkpointing.trainer_of(ml_collections.ConfigDict({"trainer": "gan"}))
