"""Eval throughput of each frontier client through core's engine against the fake provider server.

    python packages/evsys-frontier/benchmarks/throughput.py [--n 200] [--latency 0.1] [--concurrency 16]

The server runs in its own process (as a real API would), so the client's CPU time is what is measured
against the ideal: ceil(N/C) rounds of L seconds (200 prompts at C=16 need 13 rounds, 1.3 s; N*L/C = 1.25 s
would need a 12.5th round). Budget (ARCHITECTURE 12): <= 1.2x ideal. Prints one line per client.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

from evsys_sdk.eval.engine import GenerationRequest, generate_all
from evsys_sdk.plugins.registry import registry

CLIENTS = [
    ("claude", {}),
    ("openai", {"api": "chat"}),
    ("openai", {"api": "responses"}),
    ("gemini", {}),
]


class _SyncOnly:
    """Hides ``agenerate`` so the engine calls ``generate`` on its thread pool."""

    def __init__(self, client: object) -> None:
        self.client = client
        self.name = "sync"

    def generate(self, **kwargs: object) -> str:
        return self.client.generate(**kwargs)  # type: ignore[attr-defined, no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per client")
    parser.add_argument(
        "--path", choices=["async", "threads"], default="async", help="agenerate, or generate on threads"
    )
    args = parser.parse_args()
    for env in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        os.environ[env] = "bench-key"
    server = subprocess.Popen(
        [sys.executable, "-m", "evsys_frontier.testing", "--latency", str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        ideal = math.ceil(args.n / args.concurrency) * args.latency
        worst = 0.0
        for kind, params in CLIENTS:
            base = url + "/v1" if kind == "openai" else url
            client = registry("inference_client").get(kind)(base_url=base, **params)
            requests = [GenerationRequest(f"prompt {i}", max_tokens=16) for i in range(args.n)]
            target = client if args.path == "async" else _SyncOnly(client)
            best, cpu = float("inf"), float("inf")
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                outcomes = generate_all(target, requests, max_concurrency=args.concurrency)
                best = min(best, time.perf_counter() - start)
                cpu = min(cpu, time.process_time() - start_cpu)
                assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
            worst = max(worst, best / ideal)
            label = kind + (f" ({params['api']})" if "api" in params else "")
            print(
                f"{label:20s} N={args.n} L={args.latency}s C={args.concurrency} {args.path}: {best:.3f}s, "
                f"ideal {ideal:.3f}s, ratio {best / ideal:.2f}, client CPU {1000 * cpu / args.n:.1f} ms/request"
            )
        print(f"worst ratio {worst:.2f} (budget 1.20)")
        return 0 if worst <= 1.2 else 1
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
