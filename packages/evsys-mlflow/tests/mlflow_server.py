"""A real `mlflow server` (sqlite backend, artifacts proxied, loopback, a free port): started and stopped
for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, port: int, *, niceness: int = 0) -> subprocess.Popen[bytes]:
    """`mlflow server` on ``port`` with its database and artifacts under ``root``, once it answers
    (``niceness``: its CPU priority, as `nice -n`)."""
    cmd = [
        *(["nice", "-n", str(niceness)] if niceness else []),
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    with (root / "server.log").open("ab") as log:
        env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
        # Its own process group: the server's workers stop with it.
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.3)


def stop_server(server: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop the server and its workers (``SIGKILL``: as a crash would)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, sig)
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=20)
