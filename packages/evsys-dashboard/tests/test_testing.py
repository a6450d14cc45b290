"""evsys_dashboard.testing: the real server in a subprocess, and a clear error when it does not come up."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from evsys_dashboard.testing import DashboardServer, DashboardServerError, free_port, wait_healthy


def test_dashboard_server_serves_with_a_fresh_key_and_stops() -> None:
    with DashboardServer(project="proj-t") as server:
        assert server.db_path.exists() and server.key.startswith("evsys_")
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
        with server.client(log_dir=server.db_path.parent / "mirror") as client:
            exp = client.create_experiment(experiment_name="e")
        proc = server.process
        folder = server.db_path.parent
    assert proc is not None and proc.poll() is not None  # stopped
    assert not folder.exists()  # the temporary folder it made is gone
    assert exp["id"]


def test_a_server_that_cannot_bind_reports_its_stderr(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = DashboardServer(tmp_path / "server.db", port=taken.getsockname()[1], timeout=60)
        with pytest.raises(DashboardServerError, match=r"(?s)exited with code.*stderr:.*already in use"):
            server.start()
    assert server.process is None


def test_wait_healthy_times_out_with_a_clear_error() -> None:
    with pytest.raises(DashboardServerError, match="did not answer /healthz within 0.3 s"):
        wait_healthy(f"http://127.0.0.1:{free_port()}", timeout=0.3)
