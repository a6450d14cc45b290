"""A real dashboard server on a loopback port (uvicorn in a thread, or a subprocess that can be killed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

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
        from evsys_sdk.store import LocalStore

        return LocalStore(self.db_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"dashboard at {url} did not come up")


def make_key(db_path: Path, project: str = PROJECT) -> str:
    from evsys_dashboard.server.db import ServerDB

    db = ServerDB(db_path)
    try:
        return db.create_key(project)
    finally:
        db.close()


class ThreadServer:
    """uvicorn serving the app in a daemon thread on a socket bound here (no port race)."""

    def __init__(self, db_path: Path, port: int = 0):
        import uvicorn

        from evsys_dashboard.server import create_app

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = int(self.sock.getsockname()[1])
        self.app = create_app(db_path)
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
def spawn_server(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``evsys dashboard serve`` as a subprocess (so a test can kill it); all are stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(db_path: Path, port: int) -> subprocess.Popen[bytes]:
        code = "from evsys_sdk.cli import main; raise SystemExit(main())"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "dashboard",
                "serve",
                "--port",
                str(port),
                "--db",
                str(db_path),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        wait_healthy(f"http://127.0.0.1:{port}")
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


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
    from evsys_sdk.yaml_loader import load_yaml

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
