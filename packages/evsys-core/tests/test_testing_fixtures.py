"""The evsys pytest plugin: ``plugin_host`` isolation, the network guard, ``mock_config``, ``plugin_hooks``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field

from evsys_sdk.plugins.hookspecs import hookimpl
from evsys_sdk.plugins.host import PluginHost, current_host, list_plugins
from evsys_sdk.plugins.registry import Registry, register_algorithm, registry
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.protocols import RunContext, RunResult
from evsys_sdk.testing import AlgorithmContract, MockConfigFactory, NetworkAccessError, network_guard


class CountingAlgorithm:
    """A minimal algorithm registered only through a hooks object (never installed)."""

    name: ClassVar[str] = "fixture_counter"

    class Config(StrictModel):
        steps: int = Field(default=2, ge=1, description="training steps")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        for step in range(1, self.config.steps + 1):
            ctx.check_budget()
            ctx.log_store.log_metrics({"train/loss": 1.0 / step}, step)
            ctx.validate(step)
        artifacts = {}
        for key in ("final_checkpoint", "state-final"):
            path = Path(ctx.output_dir) / key
            path.mkdir()
            artifacts[key] = str(path)
        return RunResult(ctx.run_id, "completed", {"train/final_loss": 1.0 / self.config.steps}, artifacts)


class CounterHooks:
    @staticmethod
    @hookimpl
    def evsys_register_algorithms(registry: Registry[Any]) -> None:
        registry.add(CountingAlgorithm)


# --- plugin_host --------------------------------------------------------------------------------------


def test_plugin_host_registers_plugins_next_to_the_builtins(plugin_host: PluginHost) -> None:
    assert current_host() is plugin_host
    plugin_host.add_plugin(CounterHooks, "counter")
    assert registry("algorithm").has("fixture_counter")
    assert registry("algorithm").source_of("fixture_counter") == "counter"
    assert registry("algorithm").has("mock_sft") and registry("backend").has("mock")
    assert {(p.name, p.status) for p in list_plugins()} >= {("counter", "ok"), ("core", "ok")}

    @register_algorithm("fixture_decorated")
    class Decorated(CountingAlgorithm):
        pass

    assert plugin_host.registries["algorithm"].get("fixture_decorated") is Decorated


def test_plugin_host_registrations_do_not_leak(plugin_host: PluginHost) -> None:
    # Runs after the test above (file order): its host, plugins and registrations are gone.
    assert not registry("algorithm").has("fixture_counter")
    assert not registry("algorithm").has("fixture_decorated")
    assert "counter" not in {p.name for p in list_plugins()}


def test_plugin_host_is_restored_after_the_test(plugin_host: PluginHost) -> None:
    assert plugin_host._use_entry_points is False  # installed plugins stay out of isolated tests
    assert current_host() is plugin_host


def test_the_global_host_is_back_outside_plugin_host() -> None:
    assert not current_host().registries["algorithm"].has("fixture_counter")
    assert current_host()._use_entry_points


# --- network guard ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_network")
class TestNoNetwork:
    def test_connect_to_a_private_address_raises(self) -> None:
        with pytest.raises(NetworkAccessError, match=r"10\.255\.255\.1:80.*loopback"):
            socket.create_connection(("10.255.255.1", 80), timeout=2)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            with pytest.raises(NetworkAccessError):
                sock.connect(("10.255.255.1", 80))
            with pytest.raises(NetworkAccessError):
                sock.connect_ex(("10.255.255.1", 80))

    def test_resolving_a_public_name_raises(self) -> None:
        with pytest.raises(NetworkAccessError, match=r"example\.com:443"):
            socket.getaddrinfo("example.com", 443)
        with pytest.raises(NetworkAccessError):
            socket.create_connection(("example.com", 80), timeout=2)

    def test_http_clients_surface_the_guard_error(self) -> None:
        # Not an OSError, so urllib does not wrap it into a URLError a retry loop would swallow.
        with pytest.raises(NetworkAccessError):
            urllib.request.urlopen("http://example.com/", timeout=2)

    def test_udp_to_a_public_address_raises(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(NetworkAccessError):
                sock.sendto(b"x", ("8.8.8.8", 53))
            with pytest.raises(NetworkAccessError):
                sock.sendto(b"x", 0, ("8.8.8.8", 53))

    def test_loopback_server_still_works(self, loopback_server: int) -> None:
        for host in ("127.0.0.1", "localhost"):
            with urllib.request.urlopen(f"http://{host}:{loopback_server}/ping", timeout=5) as resp:
                assert json.loads(resp.read()) == {"path": "/ping"}
        assert socket.getaddrinfo("localhost", loopback_server)
        with socket.create_connection(("127.0.0.1", loopback_server), timeout=5):
            pass

    def test_loopback_ipv6(self) -> None:
        if not socket.has_ipv6:
            pytest.skip("no IPv6")
        try:
            server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            server.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 is not configured")
        with server:
            server.listen(1)
            with socket.create_connection(("::1", server.getsockname()[1]), timeout=5):
                pass
        with pytest.raises(NetworkAccessError):
            socket.create_connection(("2001:db8::1", 80), timeout=2)

    def test_unix_sockets_are_allowed(self, tmp_path: Path) -> None:
        path = str(tmp_path / "s.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            server.listen(1)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(path)


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_network_guard_restores_the_socket_module() -> None:
    getaddrinfo, create_connection = socket.getaddrinfo, socket.create_connection
    with network_guard():
        with network_guard():
            assert socket.getaddrinfo is not getaddrinfo
        with pytest.raises(NetworkAccessError):
            socket.getaddrinfo("example.com", 80)
    assert socket.getaddrinfo is getaddrinfo and socket.create_connection is create_connection
    assert {"connect", "connect_ex", "sendto"}.isdisjoint(vars(socket.socket))


def test_network_guard_and_the_plugin_import_nothing_heavy() -> None:
    # pytest loads the fixtures module in every session: it must stay cheap to import (pluggy comes with pytest).
    code = (
        "import sys; import evsys_sdk.testing.fixtures\n"
        "from evsys_sdk.testing import network_guard\n"
        "heavy = ('pydantic', 'yaml', 'evsys_sdk.plugins.host', 'evsys_sdk.testing.contracts')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "with network_guard():\n"
        "    import socket\n"
        "    try:\n"
        "        socket.getaddrinfo('example.com', 80)\n"
        "    except RuntimeError as exc:\n"
        "        print(type(exc).__name__)\n"
        "import evsys_sdk.testing as testing\n"
        "assert all(getattr(testing, name) is not None for name in testing.__all__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "NetworkAccessError"


# --- mock_config --------------------------------------------------------------------------------------


def test_mock_config_runs_a_single_mock_run(mock_config: MockConfigFactory, tmp_path: Path) -> None:
    config = mock_config("mock_rl", params={"num_steps": 3}, rows=[{"prompt": "p"}])
    assert config["output_dir"] == str(tmp_path)
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    assert (tmp_path / "contract" / "run_result.json").exists()
    assert len((tmp_path / "contract" / "logs" / "metrics.jsonl").read_text().splitlines()) == 3


def test_mock_config_copies_its_inputs(mock_config: MockConfigFactory) -> None:
    rows = [{"prompt": "p"}]
    params = {"phases": [{"kind": "mock_sft"}]}
    config = mock_config("combo", params=params, rows=rows, backend="mock", name="x")
    config["run"]["data"]["rows"][0]["prompt"] = "changed"
    config["run"]["algorithm"]["params"]["phases"].clear()
    assert rows == [{"prompt": "p"}] and params == {"phases": [{"kind": "mock_sft"}]}
    assert config["run"]["name"] == "x"


# --- plugin_hooks: a contract on a hooks module that is not installed ----------------------------------


class TestContractOnUninstalledHooks(AlgorithmContract):
    algorithm_kind = "fixture_counter"
    params: ClassVar[dict[str, Any]] = {"steps": 3}
    plugin_hooks = (CounterHooks,)

    def test_runs_in_an_isolated_host_under_the_network_guard(self) -> None:
        assert current_host()._use_entry_points is False
        with pytest.raises(NetworkAccessError):
            socket.getaddrinfo("example.com", 80)
