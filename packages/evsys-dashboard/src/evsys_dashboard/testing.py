"""Test helpers: the real dashboard server in its own process on a free loopback port.

    from evsys_dashboard.testing import DashboardServer

    def test_my_training_loop(tmp_path):
        with DashboardServer(tmp_path / "server.db", project="my-project") as server:
            client = server.client(log_dir=tmp_path / "mirror")
            ...  # server.url, server.key, server.db_path

``DashboardServer`` runs ``evsys dashboard serve`` exactly as users do, with a fresh API key for the
project, and waits until ``/healthz`` answers; a server that does not come up raises
``DashboardServerError`` with what it wrote to stderr. It needs the ``[server]`` extra. This module is
not imported by ``evsys_dashboard`` or its plugin hooks.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from evsys_dashboard.client import DashboardClient

__all__ = ["DashboardServer", "DashboardServerError", "create_key", "free_port", "wait_healthy"]

# `evsys ...` through the interpreter running the tests (no reliance on the console script being on PATH)
_EVSYS = "from evsys_sdk.cli.main import main; raise SystemExit(main())"
_PORT_TAKEN = "address already in use"
_PORT_ATTEMPTS = 3


class DashboardServerError(RuntimeError):
    """The dashboard server did not come up (it exited, or did not answer within the timeout)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may still take it before the server binds)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def create_key(db_path: str | Path, project: str) -> str:
    """A new API key for ``project`` in the server database at ``db_path`` (both created if needed)."""
    from evsys_dashboard.server.db import ServerDB

    db = ServerDB(Path(db_path))
    try:
        return db.create_key(project)
    finally:
        db.close()


def wait_healthy(
    url: str,
    timeout: float = 60.0,
    *,
    process: subprocess.Popen[Any] | None = None,
    stderr: Callable[[], str] | None = None,
) -> None:
    """Poll ``url/healthz`` until it answers 200; ``DashboardServerError`` after ``timeout`` seconds.

    With ``process``, stop as soon as it exits; ``stderr`` (a callable returning text) adds what the
    server wrote to the error message."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            problem = f"the dashboard server for {url} exited with code {process.returncode} before it answered"
            break
        try:
            if httpx.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            problem = f"the dashboard server at {url} did not answer /healthz within {timeout:g} s"
            break
        time.sleep(0.1)
    text = stderr().strip() if stderr is not None else ""
    raise DashboardServerError(f"{problem}; its stderr:\n{text}" if text else f"{problem} (no stderr output)")


class DashboardServer:
    """``evsys dashboard serve`` in a subprocess on a loopback port, with a fresh API key for ``project``.

    ``db_path`` defaults to a new temporary folder (removed by ``stop()``); ``port`` to a free one (tried
    again on another port if it was taken meanwhile). ``start()`` returns once ``/healthz`` answers and
    raises ``DashboardServerError`` with the server's stderr if it exits or does not answer within
    ``timeout`` seconds. ``stop()`` terminates it (kills it if it does not exit); both run as a
    context manager. ``process`` is the ``subprocess.Popen``, for tests that kill the server themselves.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        project: str = "test-project",
        port: int | None = None,
        timeout: float = 60.0,
        log_level: str = "warning",
    ) -> None:
        self._tmp: Path | None = None
        if db_path is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="evsys-dashboard-"))
            db_path = self._tmp / "server.db"
        self.db_path = Path(db_path)
        self.project = project
        self.port = port
        self.timeout = timeout
        self.log_level = log_level
        self.key = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise DashboardServerError("the dashboard server has not been started")
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        """What the server has written to stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def start(self) -> Self:
        if self.process is not None:
            raise DashboardServerError(f"the dashboard server at {self.url} is already started")
        try:
            self.key = create_key(self.db_path, self.project)
            fixed_port = self.port is not None
            attempt = 1
            while True:
                if not fixed_port:
                    self.port = free_port()
                self._spawn()
                try:
                    wait_healthy(self.url, self.timeout, process=self.process, stderr=self.stderr)
                    return self
                except DashboardServerError:
                    taken = _PORT_TAKEN in self.stderr().lower()
                    if fixed_port or not taken or attempt == _PORT_ATTEMPTS:
                        raise
                self._halt()  # the free port was taken before the server bound it: another one
                attempt += 1
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        # a file, not a pipe: a chatty server never blocks on it (closed by _halt)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        serve = ["dashboard", "serve", "--port", str(self.port), "--db", str(self.db_path)]
        command = [sys.executable, "-c", _EVSYS, *serve, "--log-level", self.log_level]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def _halt(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
            process.wait(timeout=10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stop(self) -> None:
        """Stop the server (if it is still running) and remove the temporary folder this object made."""
        self._halt()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def client(self, log_dir: str | Path | None = None, **kwargs: Any) -> DashboardClient:
        """A ``DashboardClient`` for this server, its key and project (``kwargs`` override them)."""
        from evsys_dashboard.client import DashboardClient

        options: dict[str, Any] = {"base_url": self.url, "api_key": self.key, "project_id": self.project}
        return DashboardClient(log_dir=log_dir, **{**options, **kwargs})

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
