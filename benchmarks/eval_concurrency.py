"""Eval throughput: N prompts against a loopback HTTP server of fixed latency L, at concurrency C.

The server (an asyncio HTTP/1.1 keep-alive server in a subprocess, so it does not share the client's
GIL) answers each request after L seconds. ``generate_all`` drives two clients: a sync one on the
thread pool (http.client, one keep-alive connection per thread) and a native async one (``agenerate``
over asyncio streams with a connection pool). The figure is the worst wall time / ideal over C in 1, 8,
32 and both clients, the ideal being ceil(N/C)*L (the fewest rounds of L that serve N prompts at C);
budget < 1.2. A last run at C=32 answers 10% of the prompts 429 +
Retry-After first (``retry-after-ms: 50``, ``Retry-After: 1``, as OpenAI sends them): every prompt
must still be scored. ``--n`` and ``--latency-ms`` change N and L (default 500 and 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import queue
import socket
import subprocess
import sys
import time
from http.client import HTTPConnection
from typing import Any, ClassVar

from _bench import report

from evsys_sdk.eval import GenerationRequest, Outcome, RetryReport, agenerate_all, generate_all


def serve(latency: float) -> None:
    """The server process: prints its port, serves until stdin closes."""
    seen: set[str] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                prompt = json.loads(await reader.readexactly(length))["prompt"]
                if prompt.endswith("!429") and prompt not in seen:
                    seen.add(prompt)
                    status, extra, body = "429 Too Many Requests", "retry-after-ms: 50\r\nRetry-After: 1\r\n", b"{}"
                else:
                    await asyncio.sleep(latency)
                    status, extra, body = "200 OK", "", json.dumps({"text": f"<answer>{prompt}</answer>"}).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        server.close()

    asyncio.run(main())


class HTTPStatusError(Exception):
    def __init__(self, status: int, headers: dict[str, str]):
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers


def _body(prompt: str, max_tokens: int, temperature: float) -> bytes:
    return json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}).encode()


class ThreadClient:
    """Sync client: http.client keep-alive connections in a pool shared by the worker threads."""

    name: ClassVar[str] = "bench_http_sync"

    def __init__(self, port: int):
        self.port = port
        self.idle: queue.SimpleQueue[HTTPConnection] = queue.SimpleQueue()

    def generate(self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
        try:
            conn = self.idle.get_nowait()
        except queue.Empty:
            conn = HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        try:
            conn.request("POST", "/generate", _body(prompt, max_tokens, temperature), headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError:
            conn.close()
            raise
        self.idle.put(conn)
        if resp.status != 200:
            raise HTTPStatusError(resp.status, dict(resp.getheaders()))
        text: str = json.loads(data)["text"]
        return text


class AsyncClient:
    """Async client: raw HTTP/1.1 over asyncio streams, keep-alive connection pool."""

    name: ClassVar[str] = "bench_http_async"

    def __init__(self, port: int):
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def agenerate(self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
        reader, writer = self.idle.pop() if self.idle else await asyncio.open_connection("127.0.0.1", self.port)
        body = _body(prompt, max_tokens, temperature)
        writer.write(
            b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        data = await reader.readexactly(int(headers["content-length"]))
        self.idle.append((reader, writer))
        status = int(lines[0].split()[1])
        if status != 200:
            raise HTTPStatusError(status, headers)
        text: str = json.loads(data)["text"]
        return text

    def generate(self, **kw: Any) -> str:  # the protocol's sync path (unused by the engine)
        return asyncio.run(self.agenerate(**kw))


def measure(client: Any, prompts: list[str], concurrency: int) -> tuple[float, RetryReport, int]:
    """Wall time of ``generate_all`` on ``prompts`` after one warm-up round that opens the client's
    connections (a real client keeps its pool between calls). Async clients run both in one loop."""
    warm = [GenerationRequest(f"warm-{i}") for i in range(concurrency)]
    requests = [GenerationRequest(p, context=p) for p in prompts]
    report = RetryReport()

    async def run() -> tuple[float, list[Outcome]]:
        await agenerate_all(client, warm, max_concurrency=concurrency, progress=False)
        start = time.perf_counter()
        outs = await agenerate_all(client, requests, max_concurrency=concurrency, report=report, progress=False)
        return time.perf_counter() - start, outs

    if isinstance(client, AsyncClient):
        wall, outcomes = asyncio.run(run())
    else:
        generate_all(client, warm, max_concurrency=concurrency, progress=False)
        start = time.perf_counter()
        outcomes = generate_all(client, requests, max_concurrency=concurrency, report=report, progress=False)
        wall = time.perf_counter() - start
    wrong = sum(o.text != f"<answer>{p}</answer>" for o, p in zip(outcomes, prompts, strict=True))
    return wall, report, wrong


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    if args.serve:
        serve(latency)
        return
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency-ms", str(args.latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline())
    n, rows, ratios, ok = args.n, [], [], True
    try:
        for run, concurrency in enumerate(args.concurrency):
            for label, make in (("threads", ThreadClient), ("async", AsyncClient)):
                prompts = [f"{label}{run}-p{i}" for i in range(n)]
                wall, rep, wrong = measure(make(port), prompts, concurrency)
                ideal = math.ceil(n / concurrency) * latency
                ratios.append(wall / ideal)
                ok &= wrong == 0 and rep.total_failures == 0
                rows.append(
                    f"C={concurrency:<2} {label:<7} wall {wall:6.2f} s  ideal {ideal:6.2f} s  ratio {wall / ideal:.3f}"
                )
        for label, make in (("threads", ThreadClient), ("async", AsyncClient)):
            prompts = [f"{label}-r{i}" + ("!429" if i % 10 == 0 else "") for i in range(n)]
            wall, rep, wrong = measure(make(port), prompts, 32)
            ideal = math.ceil(n / 32) * latency
            ok &= wrong == 0 and rep.total_failures == 0 and rep.retries == n // 10
            rows.append(
                f"C=32 {label:<7} 10% 429 wall {wall:6.2f} s  ideal {ideal:6.2f} s  ratio {wall / ideal:.3f}  "
                f"retries {rep.retries}, unscored {wrong}"
            )
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    report(
        "eval_concurrency",
        max(ratios),
        "x ideal (ceil(N/C)*L)",
        "<",
        1.2,
        {"N": n, "L_ms": args.latency_ms, "runs": rows},
        ok=ok,
    )


if __name__ == "__main__":
    main()
