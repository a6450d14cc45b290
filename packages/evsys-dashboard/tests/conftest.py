"""A real dashboard server on a loopback port (uvicorn in a thread, or a subprocess that can be killed)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from evsys_dashboard.testing import DashboardServer, create_key, wait_healthy
from evsys_dashboard.testing import free_port as free_port  # the tests import it from here

os.environ.setdefault("EVSYS_STRICT_PLUGINS", "1")
for var in ("EVSYS_API_URL", "EVSYS_API_KEY", "EVSYS_PROJECT_ID", "EVSYS_OFFLINE", "EVSYS_LOG_DIR"):
    os.environ.pop(var, None)

PROJECT = "proj-a"


@pytest.fixture(autouse=True)
def _mirror_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client built without log_dir mirrors into the test's tmp dir, never into the checkout."""
    monkeypatch.setenv("EVSYS_LOG_DIR", str(tmp_path / "default-mirror"))


@dataclass
class Server:
    url: str
    db_path: Path
    key: str
    project: str = PROJECT

    def client(self, log_dir: Path, **kwargs: Any) -> Any:
        from evsys_dashboard import DashboardClient

        options = {"base_url": self.url, "api_key": self.key, "project_id": self.project, **kwargs}
        return DashboardClient(log_dir=log_dir, **options)

    def http(self, key: str | None = "default") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key if key == 'default' else key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def db(self) -> Any:
        from evsys_sdk.tracking.store import LocalStore

        return LocalStore(self.db_path)


def make_key(db_path: Path, project: str = PROJECT) -> str:
    return create_key(db_path, project)


class ThreadServer:
    """uvicorn serving the app in a daemon thread on a socket bound here (no port race)."""

    def __init__(self, db_path: Path, port: int = 0, app: Any = None):
        import uvicorn

        from evsys_dashboard.server import create_app

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = int(self.sock.getsockname()[1])
        self.app = app if app is not None else create_app(db_path)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        url = f"http://127.0.0.1:{self.port}"
        wait_healthy(url)
        return url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.app.state.db.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db_path = tmp_path / "server.db"
    key = make_key(db_path)
    with ThreadServer(db_path) as url:
        yield Server(url, db_path, key)


@pytest.fixture
def spawn_server() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``evsys dashboard serve`` as a subprocess (so a test can kill it); all are stopped at the end."""
    servers: list[DashboardServer] = []

    def start(db_path: Path, port: int) -> subprocess.Popen[bytes]:
        server = DashboardServer(db_path, project=PROJECT, port=port)
        servers.append(server)
        server.start()
        assert server.process is not None
        return server.process

    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------- experiments on the mock backend

QUESTIONS = {f"q{i}": f"a{i}" for i in range(8)}


def tasks() -> list[dict[str, Any]]:
    return [
        {
            "task_id": q,
            "instruction": q,
            "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": a},
            "metadata": {"half": "low" if int(q[1:]) < 4 else "high"},
        }
        for q, a in QUESTIONS.items()
    ]


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    import json

    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks()))
    (folder / "metadata.yaml").write_text("name: qa\n")
    return folder


def experiment_config(tmp_path: Path, bench_dir: Path, *, name: str = "dash_exp", **fields: Any) -> Any:
    """Two primaries x ``n_repeats`` seeds on the mock backend, scored on a test benchmark."""
    from evsys_sdk.loading.yaml_loader import load_yaml

    def run(arm: str, lr: float) -> dict[str, Any]:
        return {
            "name": arm,
            "model": {"name": "tiny"},
            "backend": {"kind": "mock"},
            "data": {"source_kind": "in_memory", "rows": tasks()},
            "algorithm": {"kind": "sft", "params": {"batch_size": 2, "num_epochs": 2, "learning_rate": lr}},
        }

    base: dict[str, Any] = {
        "name": name,
        "output_dir": str(tmp_path / "out"),
        "runs": [run("lr_small", 1e-4), run("lr_big", 1e-3)],
        "metadata": {
            "hypothesis": "a bigger learning rate <b>wins</b>",
            "success_metric": "qa.pass_rate",
            "benchmark": [{"name": "qa", "path": str(bench_dir), "tags": ["test"], "breakdown_keys": ["half"]}],
        },
    }
    return load_yaml({**base, **fields})
