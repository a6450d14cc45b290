"""Plugin wiring: a light hooks module, the evsys_sdk top-level names, the CLI verbs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SERVER_STACK = ("httpx", "fastapi", "starlette", "uvicorn", "pydantic", "anyio")


def test_hooks_and_package_import_neither_httpx_nor_the_server_stack() -> None:
    code = (
        "import sys, evsys_dashboard.hooks, evsys_dashboard; "
        f"print(sorted(m for m in {SERVER_STACK!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_evsys_sdk_exports_the_dashboard_names() -> None:
    import evsys_dashboard
    import evsys_sdk

    for name in ("DashboardClient", "ExperimentRun", "DashboardClientError", "EvsysAuthError"):
        assert getattr(evsys_sdk, name) is getattr(evsys_dashboard, name)
    assert issubclass(evsys_sdk.EvsysAuthError, evsys_sdk.EvsysError)


def test_the_client_implements_the_tracking_store_protocol(tmp_path: object) -> None:
    from evsys_dashboard import DashboardClient
    from evsys_sdk.tracking.store import TrackingStore

    with DashboardClient(offline=True, log_dir=str(tmp_path)) as client:
        assert isinstance(client, TrackingStore)


def test_dashboard_verbs_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    from evsys_sdk.cli.main import main

    with pytest.raises(SystemExit):
        main(["dashboard", "--help"])
    out = capsys.readouterr().out
    for verb in ("serve", "sync", "create-key"):
        assert verb in out
    from evsys_sdk.plugins.host import list_plugins

    assert any(p.name == "dashboard" and p.status != "broken" for p in list_plugins())


def test_dashboard_run_records_an_experiment(
    server: object,
    tmp_path: object,
    bench_dir: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pathlib import Path

    from conftest import Server, experiment_config

    from evsys_sdk.cli.main import main
    from evsys_sdk.loading.yaml_loader import dump_yaml

    assert isinstance(server, Server) and isinstance(tmp_path, Path) and isinstance(bench_dir, Path)
    cfg = experiment_config(tmp_path, bench_dir, name="from_cli")
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(cfg))
    monkeypatch.setenv("EVSYS_API_URL", server.url)
    monkeypatch.setenv("EVSYS_API_KEY", server.key)
    monkeypatch.setenv("EVSYS_PROJECT_ID", server.project)
    monkeypatch.setenv("EVSYS_LOG_DIR", str(tmp_path / "mirror"))
    assert main(["run", str(path), "--store", "dashboard"]) == 0
    found = server.db().find_experiment("from_cli")
    assert found is not None and found["status"] == "completed"


def test_a_wrong_key_stops_the_run_before_any_arm(tmp_path: Path, bench_dir: Path) -> None:
    """Against the real server: one line naming the 401, exit 1, no arm run and nothing recorded."""
    from conftest import experiment_config

    from evsys_dashboard.testing import DashboardServer
    from evsys_sdk.loading.yaml_loader import dump_yaml

    cfg = experiment_config(tmp_path, bench_dir, name="wrong_key")
    config = tmp_path / "config.yaml"
    config.write_text(dump_yaml(cfg))
    with DashboardServer(tmp_path / "server.db", project="proj-a") as server:
        env = {
            **os.environ,
            "EVSYS_API_URL": server.url,
            "EVSYS_API_KEY": server.key + "-wrong",
            "EVSYS_PROJECT_ID": "proj-a",
            "EVSYS_LOG_DIR": str(tmp_path / "mirror"),
            "EVSYS_WORKSPACE": str(tmp_path / ".evsys"),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "evsys_sdk.cli", "run", str(config), "--store", "dashboard"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("ERROR: 401: the key is not valid for this server (" + server.url)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert not Path(cfg.output_dir).exists()  # no arm started
    from evsys_sdk.tracking.store import LocalStore

    assert LocalStore(tmp_path / "server.db").find_experiment("wrong_key") is None


def test_evolve_records_into_the_dashboard(tmp_path: Path) -> None:
    """`evsys evolve --store dashboard`: the search's experiment, groups and runs land on the server; its
    journal stays in the local workspace, so `evsys evolve show` and `--resume` work from there."""
    import yaml

    from evsys_dashboard.testing import DashboardServer
    from evsys_sdk.tracking.store import LocalStore

    config = tmp_path / "search.yaml"
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(4)]
    search = {
        "budget": {"candidates": 4},
        "parallel": 2,
        "space": {"algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]}},
        "direction": "minimize",
    }
    config.write_text(
        yaml.safe_dump(
            {
                "name": "evolve_dash",
                "output_dir": str(tmp_path / "out"),
                "n_repeats": 2,
                "metadata": {"success_metric": "train/final_loss"},
                "run": {
                    "name": "r",
                    "data": {"source_kind": "in_memory", "rows": rows},
                    "model": {"name": "m"},
                    "backend": {"kind": "mock"},
                    "algorithm": {"kind": "sft", "params": {"max_steps": 2}},
                },
                "search": search,
            }
        )
    )
    with DashboardServer(tmp_path / "server.db", project="proj-a") as server:
        env = {
            **os.environ,
            "EVSYS_API_URL": server.url,
            "EVSYS_API_KEY": server.key,
            "EVSYS_PROJECT_ID": "proj-a",
            "EVSYS_LOG_DIR": str(tmp_path / "mirror"),
            "EVSYS_WORKSPACE": str(tmp_path / ".evsys"),
        }
        cli = [sys.executable, "-m", "evsys_sdk.cli", "evolve"]
        proc = subprocess.run([*cli, str(config), "--store", "dashboard"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        shown = subprocess.run([*cli, "show", "evolve_dash", "--json"], capture_output=True, text=True, env=env)
        assert shown.returncode == 0, shown.stderr
        result = json.loads(shown.stdout)
    server_db = LocalStore(tmp_path / "server.db")
    exp = server_db.find_experiment("evolve_dash")
    assert exp is not None and exp["status"] == "completed"
    assert [g["name"] for g in server_db.experiment_groups(exp["id"])] == [c["id"] for c in result["candidates"]]
    runs = server_db.experiment_runs(exp["id"])
    assert len(runs) == result["spent"]["arms"] == 8 and {r["status"] for r in runs} == {"completed"}
