"""The session's `mlflow server` for the module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mlflow_server import free_port, start_server, stop_server


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = start_server(tmp_path_factory.mktemp("mlflow"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(server)
