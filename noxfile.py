"""One session per package, each in its own venv with core and only what it needs.

nox                  # every default session
nox -s core-3.11     # one session
nox -s bench         # the performance benchmarks (not run by default)
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["lint", "typecheck", "core", "plugin", "slurm", "e2e", "example_plugin", "docs"]
CORE = "packages/evsys-core"
# Core with its `testing` extra: the contract suites' property tests draw params with hypothesis.
CORE_TESTING = f"{CORE}[testing]"
# Every plugin package under packages/, tested with core and itself only (evsys-slurm in its own session:
# it needs a Slurm cluster).
OWN_SESSION = {"evsys-core", "evsys-slurm"}
PLUGINS = sorted(
    p.name for p in Path("packages").glob("evsys-*") if p.name not in OWN_SESSION and (p / "pyproject.toml").exists()
)
# Pinned beside a plugin in the same pip command: torch resolves to the local CPU wheel, not a CUDA build.
# evsys-dashboard: its MLflow test runs a TRL trainer on a tiny model that evsys-local builds.
PLUGIN_PINS = {
    "evsys-local": ["torch==2.13.0"],
    "evsys-dashboard": ["packages/evsys-local", "torch==2.13.0"],
    "evsys-optuna": ["torch==2.13.0"],  # its gp proposer's tests fit on torch
}
# Installed without their dependencies (torch, ray, tinker, optuna) by the docs session.
DOCS_NO_DEPS = {"evsys-local", "evsys-ray", "evsys-tinker", "evsys-optuna"}
DOCS_EXTRAS = {"evsys-dashboard": "[server]"}  # the dashboard tutorial serves it
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "EVSYS_STRICT_PLUGINS": "1"}
# Every pytest run: a hang fails its one test (after a generous 300 s: CI machines have 2 cores), not CI.
PYTEST = ("pytest", "pytest-timeout")
TIMEOUT = ("--timeout", "300")


def _usable(exe: str) -> bool:
    path = shutil.which(exe)
    return path is not None and subprocess.run([path, "-c", "pass"], capture_output=True).returncode == 0


def _interpreters() -> list[str]:
    """Python 3.11-3.13 where they exist; pyenv installs are found even when their shims are inactive."""
    found = []
    for version in ("3.11", "3.12", "3.13"):
        if not _usable(f"python{version}"):
            for bindir in sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin"))):
                os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
                break
        if _usable(f"python{version}"):
            found.append(version)
    return found


PYTHONS = _interpreters()


@nox.session(python=PYTHONS)
def core(session: nox.Session) -> None:
    """evsys-core alone (no plugin installed); its optional integrations are exercised on 3.11."""
    full = session.python == "3.11"
    session.install(f"{CORE}[hf,tensorboard,plot,testing]" if full else CORE_TESTING, *PYTEST)
    marker = [] if full else ["-m", "not hf and not tensorboard and not plot"]
    session.run("pytest", f"{CORE}/tests", "-q", *TIMEOUT, *marker, *session.posargs, env=ENV)


@nox.session(python="3.11")
@nox.parametrize("package", PLUGINS)
def plugin(session: nox.Session, package: str) -> None:
    """One plugin package with core only (its ``[test]`` extra adds what its tests need)."""
    path = f"packages/{package}"
    if package == "evsys-dashboard":
        _ensure_chromium(session)
    extra = "[test]" if "test" in _extras(path) else ""
    session.install(CORE_TESTING, f"{path}{extra}", *PYTEST, *PLUGIN_PINS.get(package, []))
    session.run("pytest", f"{path}/tests", "-q", *TIMEOUT, *session.posargs, env=ENV)


def _ensure_chromium(session: nox.Session) -> None:
    """The dashboard UI test drives a real headless Chromium: Debian's, installed when missing and allowed."""
    if shutil.which("chromium") or os.environ.get("EVSYS_CHROMIUM"):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        session.run("apt-get", "update", "-qq", external=True)
        session.run(
            "apt-get", "install", "-y", "-qq", "chromium", external=True, env={"DEBIAN_FRONTEND": "noninteractive"}
        )
    else:
        session.error("the dashboard UI test needs Chromium: apt-get install chromium (or set EVSYS_CHROMIUM)")


@nox.session(python="3.11")
def slurm(session: nox.Session) -> None:
    """evsys-slurm against a real one-node Slurm on this machine, which ci/start-slurm.sh installs from
    Debian's packages and starts (as root; a cluster already up is used as it is)."""
    session.run("bash", "packages/evsys-slurm/ci/start-slurm.sh", external=True)
    session.install(CORE_TESTING, "packages/evsys-slurm[test]", *PYTEST)
    session.run("pytest", "packages/evsys-slurm/tests", "-q", *TIMEOUT, *session.posargs, env=ENV)


def _extras(path: str) -> set[str]:
    import tomllib

    with open(f"{path}/pyproject.toml", "rb") as fh:
        return set(tomllib.load(fh)["project"].get("optional-dependencies", {}))


@nox.session(python="3.11")
def e2e(session: nox.Session) -> None:
    """Cross-package tests: the CLI, the examples end to end, third-party plugins through entry points."""
    session.install(CORE_TESTING, *PYTEST)
    session.run("pytest", "tests", "-q", *TIMEOUT, *session.posargs, env=ENV)


@nox.session(python="3.11")
def example_plugin(session: nox.Session) -> None:
    """The example third-party plugin, tested against the mock backend with core's contract suites."""
    session.install(CORE_TESTING, "examples/plugin", *PYTEST)
    session.run("pytest", "examples/plugin/tests", "-q", *TIMEOUT, *session.posargs, env=ENV)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The site: its tools' tests, every relative link in the repo's Markdown, the runnable tutorial blocks
    (mock backend), then `mkdocs build --strict` with the reference generated from core and every plugin.
    Plugins whose dependencies are heavy come without them (DOCS_NO_DEPS): hooks modules and registered
    classes import none at module level, so their params document from their schemas."""
    plugins = [*PLUGINS, "evsys-slurm"]
    with_deps = [f"packages/{p}{DOCS_EXTRAS.get(p, '')}" for p in plugins if p not in DOCS_NO_DEPS]
    session.install(CORE, "-r", "docs/requirements.txt", *with_deps)
    session.install("--no-deps", *(f"packages/{p}" for p in plugins if p in DOCS_NO_DEPS))
    session.install(*PYTEST)
    session.run("pytest", "docs/_tools", "-q", *TIMEOUT, env=ENV)
    session.run("python", "docs/_tools/check_links.py")
    session.run("python", "docs/_tools/run_blocks.py", *session.posargs, env=ENV)
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), env={**ENV, "NO_MKDOCS_2_WARNING": "1"})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff, and the import contracts of pyproject's [tool.importlinter] (core's layers, its public API)."""
    session.install("ruff", "import-linter>=2.17,<3")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # import-linter reads the source only: every package's src/ on the path, none of their dependencies installed.
    sources = [*sorted(glob.glob("packages/*/src")), "examples/plugin/src"]
    session.run("lint-imports", env={"PYTHONPATH": os.pathsep.join(sources)})


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    session.install(CORE_TESTING, "mypy", "types-PyYAML", *PYTEST)
    session.run("mypy")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The performance budgets (benchmarks/*.py); figures go to benchmarks/README.md."""
    session.install(CORE, "packages/evsys-optuna")  # evolve_optuna.py compares tpe with Optuna itself
    session.run("python", "benchmarks/run_all.py", *session.posargs, env=ENV)
