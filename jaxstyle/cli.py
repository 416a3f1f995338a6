r"""The `jaxstyle` command: one entry point for the `python -m jaxstyle.<x>` programs.

  jaxstyle train --config configs/quickstart.py --workdir runs/quickstart
  jaxstyle stylize --workdir runs/quickstart --input photo.jpg --output out/
  jaxstyle export --workdir runs/quickstart --out export/

Each subcommand runs that module's absl main with the same flags
(`jaxstyle <command> --help` lists them). Only the chosen module is imported,
so `jaxstyle --help` and `jaxstyle --version` start without JAX or TensorFlow.
"""

import dataclasses
import importlib
import os
import sys

import jaxstyle


@dataclasses.dataclass(frozen=True)
class Command:
  module: str  # what `python -m` runs
  summary: str  # one line of `jaxstyle --help`
  main_module: str | None = None  # where define_flags() and main() live, if not `module`


COMMANDS = {
    "train": Command("jaxstyle.train", "train a style-transfer or CycleGAN model from a config"),
    "stylize": Command("jaxstyle.stylize", "stylize image files or folders with a trained workdir"),
    "export": Command("jaxstyle.export", "export a workdir to Core ML, ONNX and TF SavedModel, "
                      "each checked against JAX", main_module="jaxstyle.export.__main__"),
    "evaluate": Command("jaxstyle.evaluate", "Table 1: every model on held-out photos; "
                        "aggregate rating sheets", main_module="jaxstyle.evaluate.__main__"),
    "ablate": Command("jaxstyle.ablate", "train and compare the variants of an ablation config"),
    "nst": Command("jaxstyle.nst", "Gatys neural style transfer: optimise one image's pixels"),
}


def usage() -> str:
  width = max(map(len, COMMANDS))
  return "\n".join([
      "usage: jaxstyle <command> [flags]    (jaxstyle <command> --help lists its flags)",
      "", "commands:",
      *(f"  {name.ljust(width)}  {c.summary}" for name, c in COMMANDS.items()),
      "", "  --version  print the version and exit",
      "  --help     print this message and exit"])


def main(argv: list[str] | None = None) -> None:
  args = sys.argv[1:] if argv is None else list(argv)
  if not args:
    print(usage(), file=sys.stderr)
    sys.exit(2)
  command, rest = args[0], args[1:]
  if command in ("-h", "--help", "help"):
    print(usage())
  elif command == "--version":
    print(f"jaxstyle {jaxstyle.__version__}")
  elif command in COMMANDS:
    run(command, rest)
  else:
    print(f"jaxstyle: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
    sys.exit(2)


def run(command: str, args: list[str]) -> None:
  """Runs `command`'s absl main on `args`, as `python -m <its module> args` would."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  spec = COMMANDS[command]
  _make_config_packages_importable(args)
  module = importlib.import_module(spec.main_module or spec.module)
  defined_before = set(flags.FLAGS)
  module.define_flags()
  program = f"jaxstyle {command}"
  # absl's --help lists the flags of the module named sys.argv[0] and prints
  # __main__'s docstring: here the subcommand is the program.
  for name in set(flags.FLAGS) - defined_before:
    flags.FLAGS.register_key_flag_for_module(program, flags.FLAGS[name])
  sys.argv = [program, *args]
  sys.modules["__main__"].__doc__ = (module.__doc__ or "").replace(
      f"python -m {spec.module} ", f"{program} ")
  app.run(module.main, argv=sys.argv)


def _make_config_packages_importable(args: list[str]) -> None:
  """Puts the folder above a --config file's package on sys.path.

  Config files import their siblings (`from configs import quickstart`).
  `python -m` finds them only from the repository root, whose path it adds;
  this finds them from any directory.
  """
  values = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
  values += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"]
  for value in values:
    path = value if os.path.isfile(value) else value.split(":", 1)[0]  # file.py:arguments
    if not os.path.isfile(path):
      continue  # the flag reports it
    root = os.path.dirname(os.path.abspath(path))
    if not os.path.isfile(os.path.join(root, "__init__.py")):
      continue  # a lone file: nothing to import beside it
    while os.path.isfile(os.path.join(root, "__init__.py")):
      root = os.path.dirname(root)
    if root not in sys.path:
      sys.path.insert(0, root)


if __name__ == "__main__":
  main()
