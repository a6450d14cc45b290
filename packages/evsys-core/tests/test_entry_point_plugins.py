"""Plugins as users install them: real ``*.dist-info`` distributions on a temporary sys.path entry, driven
through the ``evsys`` CLI in a subprocess (discovery happens once per process, as in real use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TOY_ALGO = """
    from pathlib import Path
    from typing import Any, ClassVar

    from evsys_sdk.spec.config import StrictModel
    from evsys_sdk.spec.protocols import RunContext, RunResult


    class {cls}:
        {name_attr}

        class Config(StrictModel):
            steps: int = 2

        def __init__(self, **params: Any) -> None:
            self.config = self.Config(**params)

        def train(self, ctx: RunContext) -> RunResult:
            for step in range(1, self.config.steps + 1):
                ctx.log_store.log_metrics({{"train/loss": 1.0 / step}}, step)
            artifacts = {{}}
            for key in ("final_checkpoint", "state-final"):
                (Path(ctx.output_dir) / key).mkdir()
                artifacts[key] = str(Path(ctx.output_dir) / key)
            return RunResult(ctx.run_id, "completed", {{"train/final_loss": 1.0 / self.config.steps}}, artifacts)
"""


def algo_module(cls: str, name: str | None) -> str:
    return TOY_ALGO.format(cls=cls, name_attr=f'name: ClassVar[str] = "{name}"' if name else "")


def make_dist(site: Path, dist: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> None:
    """An installed-looking distribution: ``<dist>-0.1.dist-info`` with METADATA and entry_points.txt,
    next to its modules (packages get an ``__init__.py``)."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    sections = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
    for rel, source in modules.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source), encoding="utf-8")


def add_toyplug(site: Path) -> None:
    hooks = """
        from evsys_sdk import hookimpl


        @hookimpl
        def evsys_register_algorithms(registry):
            from toyplug.algo import ToyAlgo

            registry.add(ToyAlgo)


        def _hello(args):
            print(f"hello {args.name} from toyplug")
            return 0


        @hookimpl
        def evsys_register_commands(subparsers):
            parser = subparsers.add_parser("toy-hello", help="greet from the toy plugin")
            parser.add_argument("--name", default="world")
            parser.set_defaults(func=_hello)
    """
    make_dist(
        site,
        "evsys-toyplug",
        {"evsys_sdk.plugins": {"toyplug": "toyplug.hooks"}},
        {"toyplug/hooks.py": hooks, "toyplug/algo.py": algo_module("ToyAlgo", "toy_algo")},
    )


def add_brokenplug(site: Path) -> None:
    make_dist(
        site,
        "evsys-brokenplug",
        {"evsys_sdk.plugins": {"brokenplug": "brokenplug.hooks"}},
        {"brokenplug/hooks.py": 'raise RuntimeError("brokenplug is misconfigured")\n'},
    )


def add_dup(site: Path, short: str) -> None:
    hooks = f"""
        from evsys_sdk import hookimpl


        @hookimpl
        def evsys_register_algorithms(registry):
            from {short}.algo import SharedAlgo

            registry.add(SharedAlgo)
    """
    make_dist(
        site,
        f"evsys-{short}",
        {"evsys_sdk.plugins": {short: f"{short}.hooks"}},
        {f"{short}/hooks.py": hooks, f"{short}/algo.py": algo_module("SharedAlgo", "shared_algo")},
    )


def evsys(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVSYS_")}
    return subprocess.run(
        [sys.executable, "-m", "evsys_sdk.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=site.parent,
        env={**clean, "PYTHONPATH": str(site), **(env or {})},
    )


def write_config(path: Path, algorithm: str) -> Path:
    config = {
        "version": 1,
        "name": "plugin_e2e",
        "output_dir": str(path.parent / "out"),
        "run": {
            "name": "r1",
            "data": {"source_kind": "in_memory", "rows": [{"prompt": "a"}, {"prompt": "b"}]},
            "model": {"name": "toy-model"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": algorithm, "params": {"steps": 3}},
        },
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


def test_list_shows_the_plugin_algorithm(site: Path) -> None:
    add_toyplug(site)
    proc = evsys(site, "list", "--kind", "algorithms")
    assert proc.returncode == 0, proc.stderr
    assert "  - toy_algo\n" in proc.stdout and "  - mock_sft\n" in proc.stdout
    plugins = evsys(site, "plugins")
    assert plugins.returncode == 0, plugins.stdout
    assert "toyplug  evsys-toyplug 0.1  ok  toyplug.hooks" in plugins.stdout


def test_run_with_the_plugin_algorithm_completes(site: Path) -> None:
    add_toyplug(site)
    config = write_config(site.parent / "config.yaml", "toy_algo")
    proc = evsys(site, "run", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((site.parent / "out" / "r1" / "run_result.json").read_text())
    assert record["status"] == "completed" and record["metrics"]["train/final_loss"] == pytest.approx(1 / 3)


def test_plugin_command_shows_up_and_runs(site: Path) -> None:
    add_toyplug(site)
    help_text = evsys(site, "--help")
    assert help_text.returncode == 0 and "toy-hello" in help_text.stdout
    proc = evsys(site, "toy-hello", "--name", "tester")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello tester from toyplug\n"


def test_broken_plugin_is_reported_not_fatal(site: Path) -> None:
    add_toyplug(site)
    add_brokenplug(site)
    plugins = evsys(site, "plugins")
    assert plugins.returncode == 1
    out = plugins.stdout
    assert "brokenplug  evsys-brokenplug 0.1  broken  brokenplug.hooks" in out
    assert "error: RuntimeError: brokenplug is misconfigured" in out
    assert (
        "fix:   upgrade or reinstall evsys-brokenplug (pip install evsys-brokenplug), or disable it with "
        "EVSYS_DISABLE_PLUGINS=brokenplug" in out
    )
    assert "toyplug  evsys-toyplug 0.1  ok" in out  # the healthy plugin still loads

    listed = evsys(site, "list", "--kind", "algorithms")
    assert listed.returncode == 0, listed.stderr
    assert "toy_algo" in listed.stdout
    assert "brokenplug" in listed.stderr  # logged as a warning


def test_strict_mode_fails_on_a_broken_plugin_without_traceback(site: Path) -> None:
    add_brokenplug(site)
    proc = evsys(site, "list", env={"EVSYS_STRICT_PLUGINS": "1"})
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("ERROR: plugin 'brokenplug' (evsys-brokenplug) failed to load:")
    assert "RuntimeError: brokenplug is misconfigured" in proc.stderr
    assert "EVSYS_DISABLE_PLUGINS=brokenplug" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_disabling_the_broken_plugin_makes_it_clean(site: Path) -> None:
    add_toyplug(site)
    add_brokenplug(site)
    env = {"EVSYS_STRICT_PLUGINS": "1", "EVSYS_DISABLE_PLUGINS": "brokenplug"}
    listed = evsys(site, "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "toy_algo" in listed.stdout and listed.stderr == ""
    plugins = evsys(site, "plugins", env=env)
    assert plugins.returncode == 0, plugins.stdout
    assert "brokenplug  evsys-brokenplug 0.1  disabled" in plugins.stdout
    # by dist name too
    assert evsys(site, "list", env={**env, "EVSYS_DISABLE_PLUGINS": "evsys-brokenplug"}).returncode == 0


def test_same_algorithm_from_two_dists_names_both(site: Path) -> None:
    add_dup(site, "dupa")
    add_dup(site, "dupb")
    plugins = evsys(site, "plugins")
    assert plugins.returncode == 1
    errors = [line for line in plugins.stdout.splitlines() if "error:" in line]
    assert len(errors) == 1, plugins.stdout
    assert "algorithm 'shared_algo' is registered by both" in errors[0]
    assert "evsys-dupa" in errors[0] and "evsys-dupb" in errors[0]

    strict = evsys(site, "list", env={"EVSYS_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert "registered by both" in strict.stderr
    assert "evsys-dupa" in strict.stderr and "evsys-dupb" in strict.stderr


def test_legacy_per_kind_entry_point_is_lazy(site: Path) -> None:
    make_dist(
        site,
        "evsys-legacyplug",
        {"evsys_sdk.algorithms": {"legacy_algo": "legacyplug.algos:LegacyAlgo"}},
        {"legacyplug/algos.py": algo_module("LegacyAlgo", None)},
    )
    listed = evsys(site, "list", "--kind", "algorithms")
    assert listed.returncode == 0, listed.stderr
    assert "  - legacy_algo\n" in listed.stdout

    probe = textwrap.dedent("""
        import sys
        from evsys_sdk.plugins.registry import get_algorithm, list_algorithms, registry
        assert "legacy_algo" in list_algorithms()
        assert registry("algorithm").source_of("legacy_algo") == "evsys-legacyplug"
        assert "legacyplug.algos" not in sys.modules, "listing imported the legacy module"
        cls = get_algorithm("legacy_algo")
        assert "legacyplug.algos" in sys.modules and cls.__name__ == "LegacyAlgo"
        print("ok")
    """)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVSYS_")}
    env = {**clean, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr

    config = write_config(site.parent / "config.yaml", "legacy_algo")
    run = evsys(site, "run", str(config))
    assert run.returncode == 0, run.stdout + run.stderr
