"""The clients under core's eval engine: retries with Retry-After, exhaustion into the RetryReport,
fail-fast 4xx, bounded concurrency, and a scaled-down throughput check."""

from __future__ import annotations

import time

import pytest
from conftest import build_client

from evsys_frontier.testing import FakeProviderServer
from evsys_sdk.eval.benchmark import Benchmark
from evsys_sdk.eval.engine import GenerationRequest, generate_all
from evsys_sdk.eval.retry import RetryPolicy, RetryReport


class Sleeps:
    """Records the engine's backoff waits instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _policy(sleeps: Sleeps, attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, backoff_base=0.01, jitter=0.0, asleep=sleeps, max_retry_after=30.0)


def test_429_then_success_waits_what_the_server_asked(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)
    server.fail(429, retry_after=12)
    sleeps, report = Sleeps(), RetryReport()
    [out] = generate_all(client, [GenerationRequest("hi")], retry=_policy(sleeps), report=report)
    assert out.ok and out.text == "You said: hi" and out.attempts == 2
    assert sleeps.waits == [12.0]  # the Retry-After, not the 0.01 s backoff
    assert report.retries == 1 and report.total_failures == 0


def test_retry_after_is_capped(server: FakeProviderServer) -> None:
    client = build_client("claude", server)
    server.fail(429, retry_after=3600)
    sleeps = Sleeps()
    [out] = generate_all(client, [GenerationRequest("hi")], retry=_policy(sleeps))
    assert out.ok and sleeps.waits == [30.0]


def test_5xx_exhaustion_lands_in_the_retry_report(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)
    status = 529 if provider == "claude" else 503
    server.fail(status, times=3, message="overloaded, try later")
    sleeps, report = Sleeps(), RetryReport()
    [out] = generate_all(client, [GenerationRequest("a", context="t1")], retry=_policy(sleeps), report=report)
    assert out.error == "retry_exhausted" and out.attempts == 3 and len(server.requests) == 3
    assert report.as_dict()["by_exception_type"] == {"ProviderServerError": 1}
    [failure] = report.failures
    assert failure.context == "t1" and failure.attempts == 3
    assert f"HTTP {status}" in failure.exception_message and "overloaded, try later" in failure.exception_message


def test_4xx_is_recorded_without_retries(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)
    server.fail(422, message="max_tokens too large")
    sleeps, report = Sleeps(), RetryReport()
    [out] = generate_all(client, [GenerationRequest("a")], retry=_policy(sleeps), report=report)
    assert out.error == "error:ProviderRequestError" and out.attempts == 1 and sleeps.waits == []
    assert "max_tokens too large" in report.failures[0].exception_message


def test_timeouts_are_retried(server: FakeProviderServer) -> None:
    client = build_client("openai", server, timeout_s=0.15)
    server.delay(0.5)
    sleeps, report = Sleeps(), RetryReport()
    [out] = generate_all(client, [GenerationRequest("a")], retry=_policy(sleeps), report=report)
    assert out.ok and out.attempts == 2 and report.retries == 1


def test_unsupported_temperature_aborts_instead_of_failing_every_prompt(server: FakeProviderServer) -> None:
    client = build_client("claude", server)
    with pytest.raises(TypeError, match="no temperature parameter"):
        generate_all(client, [GenerationRequest("a", temperature=0.9)] * 5)
    assert server.requests == []


def test_concurrency_is_bounded_and_overlapping() -> None:
    with FakeProviderServer(latency_s=0.1) as srv:
        client = build_client("claude", srv)
        start = time.monotonic()
        outs = generate_all(client, [GenerationRequest(f"p{i}") for i in range(12)], max_concurrency=4)
        elapsed = time.monotonic() - start
        assert all(o.ok for o in outs)
        # 3 waves of 4 at 0.1 s each; serial would take 1.2 s.
        assert 0.29 <= elapsed < 0.8, elapsed
        arrivals = sorted(r.at for r in srv.requests)
        assert arrivals[4] - arrivals[0] >= 0.09  # the 5th request waited for a free slot


def test_benchmark_score_reports_failures_and_usage(server: FakeProviderServer) -> None:
    client = build_client("gemini", server)
    rows = [
        {
            "task_id": f"t{i}",
            "instruction": f"word{i}",
            "verifier": {"kind": "in_process", "fn_name": "contains", "expected": f"word{i}"},
        }
        for i in range(4)
    ]
    server.fail(400, message="blocked prompt")
    score = Benchmark.from_iterable("b", rows).score(client, max_concurrency=1, retry=RetryPolicy(max_attempts=2))
    assert score.metrics["mean_reward"] == 0.75
    assert score.retry_report["total_failures"] == 1
    assert client.usage["requests"] == 3
    usage = {k: v for k, v in score.metrics.items() if k.startswith("usage")}
    assert usage.keys() == {"usage/requests", "usage/input_tokens", "usage/output_tokens"}  # prefixed once
    assert usage["usage/requests"] == 3.0
