"""The eval engine against a loopback HTTP server: 429 + Retry-After, 5xx, async and sync clients."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from evsys_sdk.eval import ModelEvalConfig, RetryPolicy, evaluate_model, format_summary_markdown, qwen_chat_prompt
from evsys_sdk.eval.benchmark import Benchmark
from evsys_sdk.testing import network_guard


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog (5) drops concurrent SYNs: 1 s retransmit stalls
    daemon_threads = True


class FakeServer:
    """Answers ``{"prompt"}`` with ``{"text": "<answer>QUERY</answer>"}``. The first request for each
    prompt listed in ``limited`` gets 429 + Retry-After: 1; prompts containing POISON always get 503."""

    def __init__(self, limited: set[str]):
        self.limited = set(limited)
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle/delayed-ACK stalls

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["prompt"]
                with outer.lock:
                    outer.requests.append(prompt)
                    limited = prompt in outer.limited
                    outer.limited.discard(prompt)
                if "POISON" in prompt:
                    self.reply(503, {"error": "overloaded"})
                elif limited:
                    self.reply(429, {"error": "rate limited"}, {"Retry-After": "1"})
                else:
                    match = re.search(r"Query: (\S+?)<", prompt) or re.search(r"(\S+)$", prompt)
                    self.reply(200, {"text": f"<think>..</think><answer>{match.group(1) if match else ''}</answer>"})

            def reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                with outer.lock:
                    outer.statuses.append(status)
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/generate"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class UrllibClient:
    """A sync client; HTTP errors surface as urllib's HTTPError (``code`` and ``headers``)."""

    name: ClassVar[str] = "loopback_sync"

    def __init__(self, url: str):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        data = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}).encode()
        request = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
        with self.opener.open(request, timeout=10) as resp:
            text: str = json.load(resp)["text"]
            return text


class HTTPStatusError(Exception):
    def __init__(self, status: int, headers: dict[str, str]):
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers


class AsyncioClient:
    """A native async client over raw asyncio streams (HTTP/1.1, one connection per request)."""

    name: ClassVar[str] = "loopback_async"

    def __init__(self, url: str):
        host_port = url.split("//")[1].split("/")[0]
        self.host, port = host_port.split(":")
        self.port = int(port)

    async def agenerate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps({"prompt": prompt}).encode()
        writer.write(
            b"POST /generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        raw = await reader.read()
        writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:])
        if status != 200:
            raise HTTPStatusError(status, headers)
        text: str = json.loads(payload)["text"]
        return text

    def generate(self, **kw: Any) -> str:
        return asyncio.run(self.agenerate(**kw))


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with network_guard():
        srv = FakeServer(limited=set())
        yield srv
        srv.close()


class NoSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, s: float) -> None:
        self.waits.append(s)

    async def asleep(self, s: float) -> None:
        self.waits.append(s)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=4, backoff_base=0.01, jitter=0.0, sleep=self.sleep, asleep=self.asleep)


@pytest.mark.parametrize("client_cls", [UrllibClient, AsyncioClient])
def test_eval_over_http_survives_429s_and_reports_a_dead_prompt(
    server: FakeServer, client_cls: Any, tmp_path: Path
) -> None:
    n = 40
    rows = [{"tool_slug": f"TOOL_{i:03d}", "toolkit": f"kit{i % 2}", "queries": [f"TOOL_{i:03d}"]} for i in range(n)]
    rows.append({"tool_slug": "POISON_TOOL", "toolkit": "kit0", "queries": ["POISON_TOOL"]})
    (tmp_path / "data.json").write_text(json.dumps(rows))
    (tmp_path / "aliases.json").write_text("{}")
    server.limited = {qwen_chat_prompt(query=f"TOOL_{i:03d}") for i in range(0, n, 10)}  # 10% get a 429 first
    sleeper = NoSleep()
    art = evaluate_model(
        dataset_path=tmp_path / "data.json",
        aliases_path=tmp_path / "aliases.json",
        client=client_cls(server.url),
        config=ModelEvalConfig(retry=sleeper.policy(), max_concurrency=8),
        output_dir=tmp_path / "out",
        progress=False,
    )
    s = art.summary
    assert s.n_rows == n + 1 and s.pass_at_1 == pytest.approx(n / (n + 1))  # every real prompt scored
    assert server.statuses.count(429) == 4 and server.statuses.count(503) == 4  # the poison prompt: 4 attempts
    assert sleeper.waits.count(1.0) == 4  # each 429 waited its Retry-After
    assert s.retry_report["total_failures"] == 1
    failure = s.retry_report["failures"][0]
    assert failure["context"] == "POISON_TOOL#0" and failure["attempts"] == 4
    md = format_summary_markdown(s)
    assert "## Retry-exhausted failures: 1" in md and f"| {failure['exception_type']} | 1 |" in md
    assert "Retry-exhausted failures: 1" in (tmp_path / "out" / "model_summary.md").read_text()


def test_benchmark_score_over_http(server: FakeServer) -> None:
    tasks = [
        {
            "task_id": f"t{i}",
            "instruction": f"say WORD{i}",
            "verifier": {"kind": "in_process", "fn_name": "contains", "expected": f"<answer>WORD{i}</answer>"},
            "metadata": {"group": "even" if i % 2 == 0 else "odd"},
        }
        for i in range(20)
    ]
    bench = Benchmark.from_iterable("http", tasks)
    server.limited = {f"say WORD{i}" for i in (3, 7)}
    sleeper = NoSleep()
    score = bench.score(AsyncioClient(server.url), num_samples=2, retry=sleeper.policy(), breakdown_keys=["group"])
    assert score.metrics == {"n_tasks": 20.0, "mean_reward": 1.0, "pass_rate": 1.0}
    assert score.breakdowns["group"]["odd"] == {"n": 10.0, "mean_reward": 1.0, "pass_rate": 1.0}
    assert score.retry_report["total_failures"] == 0 and sleeper.waits == [1.0, 1.0]
    assert len(server.requests) == 42
