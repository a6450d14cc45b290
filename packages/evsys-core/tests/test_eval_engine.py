from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from evsys_sdk.eval import (
    CompletionCache,
    GenerationRequest,
    RateLimiter,
    RetryPolicy,
    RetryReport,
    agenerate_all,
    client_identity,
    generate_all,
)
from evsys_sdk.spec.protocols import AsyncInferenceClient, BatchInferenceClient, InferenceClient


class Limited(Exception):
    def __init__(self, retry_after: float):
        super().__init__("429 too many requests")
        self.status_code = 429
        self.retry_after = retry_after


class Recorder:
    """Injected async/sync sleep: records waits, never sleeps."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, s: float) -> None:
        self.waits.append(s)

    async def asleep(self, s: float) -> None:
        self.waits.append(s)


def policy(rec: Recorder, **kw: Any) -> RetryPolicy:
    return RetryPolicy(sleep=rec.sleep, asleep=rec.asleep, jitter=0.0, **kw)


def reqs(n: int, **kw: Any) -> list[GenerationRequest]:
    return [GenerationRequest(f"p{i}", context=f"c{i}", **kw) for i in range(n)]


class EchoClient:
    """Sync client; tracks how many calls are in flight at once."""

    name: ClassVar[str] = "echo"

    def __init__(self, barrier: threading.Barrier | None = None, fail: dict[str, list[BaseException]] | None = None):
        self.barrier = barrier
        self.fail = fail or {}
        self.lock = threading.Lock()
        self.inflight = self.max_inflight = 0
        self.calls: list[dict[str, Any]] = []

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        with self.lock:
            self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "stop": stop})
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            errors = self.fail.get(prompt)
            error = errors.pop(0) if errors else None
        try:
            if error is not None:
                raise error
            if self.barrier is not None:
                self.barrier.wait()
            return f"out:{prompt}"
        finally:
            with self.lock:
                self.inflight -= 1


class AsyncClient:
    name: ClassVar[str] = "async_echo"

    def __init__(self, fail: dict[str, list[BaseException]] | None = None) -> None:
        self.inflight = self.max_inflight = 0
        self.fail = fail or {}
        self.threads: set[int] = set()
        self.sync_calls = 0

    def generate(self, **kw: Any) -> str:  # must not be used when agenerate exists
        self.sync_calls += 1
        return "sync"

    async def agenerate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        self.threads.add(threading.get_ident())
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            errors = self.fail.get(prompt)
            if errors:
                raise errors.pop(0)
            return f"async:{prompt}"
        finally:
            self.inflight -= 1


class BatchClient:
    name: ClassVar[str] = "batch_echo"

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], int]] = []
        self.single = 0

    def generate(self, **kw: Any) -> str:
        self.single += 1
        return "single"

    def generate_batch(
        self, *, prompts: list[str], max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> list[str]:
        self.batches.append((list(prompts), max_tokens))
        return [f"b:{p}" for p in prompts]


def test_protocols_recognise_the_optional_paths() -> None:
    assert isinstance(AsyncClient(), AsyncInferenceClient) and isinstance(AsyncClient(), InferenceClient)
    assert isinstance(BatchClient(), BatchInferenceClient)
    assert not isinstance(EchoClient(), AsyncInferenceClient) and not isinstance(EchoClient(), BatchInferenceClient)


def test_sync_client_runs_on_threads_up_to_max_concurrency_in_order() -> None:
    # A barrier of 4 only opens when 4 calls are in flight together: proves the concurrency.
    client = EchoClient(barrier=threading.Barrier(4, timeout=10))
    outcomes = generate_all(client, reqs(12), max_concurrency=4, progress=False)
    assert [o.text for o in outcomes] == [f"out:p{i}" for i in range(12)]
    assert all(o.ok and o.attempts == 1 for o in outcomes)
    assert client.max_inflight == 4


def test_sampling_params_reach_the_client() -> None:
    client = EchoClient()
    generate_all(client, [GenerationRequest("x", max_tokens=7, temperature=0.5, stop=("</a>",))], progress=False)
    assert client.calls == [{"prompt": "x", "max_tokens": 7, "temperature": 0.5, "stop": ["</a>"]}]


def test_async_client_is_awaited_on_one_loop_with_bounded_concurrency() -> None:
    client = AsyncClient()
    outcomes = generate_all(client, reqs(30), max_concurrency=5, progress=False)
    assert [o.text for o in outcomes] == [f"async:p{i}" for i in range(30)]
    assert client.max_inflight == 5 and client.sync_calls == 0 and len(client.threads) == 1


def test_batch_client_gets_chunks_grouped_by_sampling_params() -> None:
    client = BatchClient()
    requests = [*reqs(5), *[GenerationRequest(f"q{i}", max_tokens=9) for i in range(2)]]
    outcomes = generate_all(client, requests, batch_size=2, progress=False)
    assert [o.text for o in outcomes] == [f"b:p{i}" for i in range(5)] + ["b:q0", "b:q1"]
    assert sorted(client.batches) == sorted(
        [(["p0", "p1"], 256), (["p2", "p3"], 256), (["p4"], 256), (["q0", "q1"], 9)]
    )
    assert client.single == 0
    generate_all(client, reqs(2), batch_size=1, progress=False)  # batch_size 1: one prompt per call
    assert client.single == 2


def test_batch_of_wrong_length_is_a_programming_error() -> None:
    class Broken(BatchClient):
        def generate_batch(self, **kw: Any) -> list[str]:
            return ["only one"]

    with pytest.raises(TypeError, match="returned 1 for 2 prompts"):
        generate_all(Broken(), reqs(2), batch_size=2, progress=False)


@pytest.mark.parametrize("make", [EchoClient, AsyncClient])
def test_transient_failures_are_retried_and_every_prompt_is_scored(make: Any) -> None:
    fail = {f"p{i}": [Limited(retry_after=0.75)] for i in range(0, 20, 10)}
    fail["p5"] = [ConnectionResetError("reset"), TimeoutError("slow")]
    client = make(fail=fail)
    rec, report = Recorder(), RetryReport()
    outcomes = generate_all(client, reqs(20), retry=policy(rec, backoff_base=0.01), report=report, progress=False)
    assert all(o.ok for o in outcomes) and [o.text.split(":")[1] for o in outcomes] == [f"p{i}" for i in range(20)]
    assert [o.attempts for o in outcomes][:6] == [2, 1, 1, 1, 1, 3]
    assert report.total_failures == 0 and report.retries == 4
    assert sorted(rec.waits) == [0.01, 0.02, 0.75, 0.75]  # Retry-After honoured, backoff otherwise


def test_exhausted_and_permanent_failures_are_recorded_not_raised() -> None:
    client = EchoClient(fail={"p1": [ConnectionError("down")] * 9, "p2": [ValueError("400 bad request")]})
    rec, report = Recorder(), RetryReport()
    outcomes = generate_all(client, reqs(4), retry=policy(rec, max_attempts=3), report=report, progress=False)
    assert [o.error for o in outcomes] == [None, "retry_exhausted", "error:ValueError", None]
    assert [o.attempts for o in outcomes] == [1, 3, 1, 1] and outcomes[1].text == ""
    assert {(f.context, f.exception_type, f.attempts) for f in report.failures} == {
        ("c1", "ConnectionError", 3),
        ("c2", "ValueError", 1),
    }


def test_programming_errors_abort_the_run() -> None:
    client = EchoClient(fail={"p0": [TypeError("generate() got an unexpected keyword")]})
    with pytest.raises(TypeError, match="unexpected keyword"):
        generate_all(client, reqs(3), progress=False)


def test_rate_limiter_spacing_and_pause() -> None:
    now = [100.0]
    limiter = RateLimiter(10.0, burst=2, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.1, 0.2])
    now[0] += 1.0  # idle time refills the bucket
    assert limiter.reserve() == 0.0
    limiter.pause(5.0)
    assert limiter.reserve() == pytest.approx(5.0 - 0.1)
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_rate_limiter_is_used_for_every_attempt() -> None:
    rec = Recorder()
    limiter = RateLimiter(1000.0, clock=lambda: 0.0, sleep=rec.sleep, asleep=rec.asleep)  # a frozen clock
    generate_all(EchoClient(), reqs(4), max_concurrency=1, rate_limiter=limiter, progress=False)
    assert rec.waits == pytest.approx([0.001, 0.002, 0.003])
    limiter.acquire()
    assert rec.waits[-1] == pytest.approx(0.004)


def test_generate_all_inside_a_running_loop() -> None:
    async def main() -> list[str]:
        sync_result = generate_all(EchoClient(), reqs(3), progress=False)
        async_result = await agenerate_all(AsyncClient(), reqs(3), progress=False)
        return [o.text for o in sync_result + async_result]

    assert asyncio.run(main()) == ["out:p0", "out:p1", "out:p2", "async:p0", "async:p1", "async:p2"]


def test_progress_line_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    generate_all(EchoClient(), reqs(3), progress=True, label="unit")
    err = capsys.readouterr().err
    assert "[3/3] unit" in err and "failed=0" in err and err.endswith("\n")
    generate_all(EchoClient(), reqs(3), progress=None)  # not a terminal: silent
    assert capsys.readouterr().err == ""


def test_invalid_concurrency() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        generate_all(EchoClient(), reqs(1), max_concurrency=0)


class Configured:
    name: ClassVar[str] = "configured"

    class Config(BaseModel):
        model: str = "m"
        api_key: str = ""
        api_key_env: str = "X_API_KEY"
        headers: dict[str, str] = {}

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.calls = 0

    def generate(self, *, prompt: str, **kw: Any) -> str:
        self.calls += 1
        if prompt == "boom":
            raise ValueError("permanent")
        return f"{self.config.model}:{prompt}:{kw['temperature']}"


def test_client_identity_drops_secrets() -> None:
    ident = client_identity(Configured(api_key="sk-secret", headers={"Authorization": "Bearer t", "X-Tag": "a"}))
    assert ident == {
        "kind": "configured",
        "config": {"model": "m", "api_key_env": "X_API_KEY", "headers": {"X-Tag": "a"}},
    }
    assert "sk-secret" not in json.dumps(ident)
    assert client_identity(EchoClient()) == {"kind": "echo"}


def test_cache_resends_only_what_is_missing(tmp_path: Path) -> None:
    requests = [GenerationRequest(p, temperature=0.7, sample=s) for p in ("a", "boom", "c") for s in range(2)]
    first = Configured(api_key="sk-secret")
    outcomes = generate_all(first, requests, cache=CompletionCache(tmp_path), progress=False)
    assert first.calls == 6 and [o.ok for o in outcomes] == [True, True, False, False, True, True]
    assert "sk-secret" not in "".join(p.read_text() for p in tmp_path.iterdir())

    again = Configured(api_key="another-key")  # the key is not part of the identity
    outcomes = generate_all(again, requests, cache=CompletionCache(tmp_path), progress=False)
    assert again.calls == 2  # only the two failed samples are sent again
    assert [o.cached for o in outcomes] == [True, True, False, False, True, True]
    assert outcomes[0].text == "m:a:0.7" and outcomes[0].attempts == 0

    other_model = Configured(model="other")
    generate_all(other_model, requests[:2], cache=CompletionCache(tmp_path), progress=False)
    assert other_model.calls == 2  # a different model never reads another's completions
    changed = Configured()
    generate_all(changed, [GenerationRequest("a", temperature=0.0)], cache=CompletionCache(tmp_path), progress=False)
    assert changed.calls == 1  # different sampling params: a miss


def test_cache_survives_a_torn_last_line(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path)
    shard = cache.shard({"kind": "x"})
    cache.put(shard, "k1", "v1", identity={"kind": "x"})
    cache.put(shard, "k2", "v2")
    path = tmp_path / f"{shard}.jsonl"
    path.write_text(path.read_text() + '{"k": "k3", "v": "trunc')  # a crash mid-write
    reloaded = CompletionCache(tmp_path)
    assert reloaded.get(shard, "k1") == "v1" and reloaded.get(shard, "k2") == "v2"
    assert reloaded.get(shard, "k3") is None and len(reloaded) == 2
    reloaded.put(shard, "k4", "v4")  # appended on a fresh line, not glued to the torn one
    assert CompletionCache(tmp_path).get(shard, "k4") == "v4"
    assert json.loads((tmp_path / f"{shard}.identity.json").read_text()) == {"kind": "x"}


class Halt(BaseException):
    """A BaseException subclass short of KeyboardInterrupt/SystemExit, as some libraries raise."""


ODD_ERRORS = [StopIteration(), StopAsyncIteration(), GeneratorExit(), Halt("halt"), asyncio.CancelledError()]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("make", [EchoClient, AsyncClient])
@pytest.mark.parametrize("error", ODD_ERRORS, ids=lambda e: type(e).__name__)
def test_any_client_exception_is_recorded_and_scoring_returns(make: Any, error: BaseException) -> None:
    client = make(fail={"p1": [error], "p2": [ValueError("bad")]})
    report = RetryReport()
    outcomes = generate_all(client, reqs(4), report=report, progress=False)
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[0].text.endswith(":p0") and outcomes[3].text.endswith(":p3")
    [odd, bad] = sorted(report.failures, key=lambda f: f.context)
    # A coroutine that raises StopIteration raises RuntimeError instead (PEP 479).
    coroutine_stop = make is AsyncClient and isinstance(error, StopIteration)
    assert (odd.context, odd.exception_type) == ("c1", "RuntimeError" if coroutine_stop else type(error).__name__)
    assert (bad.context, bad.exception_type) == ("c2", "ValueError")


@pytest.mark.timeout(30)
def test_odd_errors_from_a_batch_client_are_recorded() -> None:
    class Stopping(BatchClient):
        def generate_batch(self, **kw: Any) -> list[str]:
            raise StopIteration

    report = RetryReport()
    outcomes = generate_all(Stopping(), reqs(3), batch_size=3, report=report, progress=False)
    assert [o.error for o in outcomes] == ["error:StopIteration"] * 3 and report.total_failures == 3


@pytest.mark.timeout(30)
@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(2)], ids=lambda e: type(e).__name__)
def test_ctrl_c_and_exit_from_a_client_still_propagate(error: BaseException) -> None:
    with pytest.raises(type(error)):
        generate_all(EchoClient(fail={"p0": [error]}), reqs(2), progress=False)


@pytest.mark.timeout(30)
def test_odd_errors_are_recorded_from_inside_a_running_loop() -> None:
    async def main() -> list[Any]:
        report = RetryReport()
        outcomes = await agenerate_all(AsyncClient(fail={"p0": [Halt("x")]}), reqs(2), report=report, progress=False)
        sync = generate_all(EchoClient(fail={"p1": [StopIteration()]}), reqs(2), report=report, progress=False)
        return [o.ok for o in [*outcomes, *sync]] + [f.exception_type for f in report.failures]

    assert asyncio.run(main()) == [False, True, True, False, "Halt", "StopIteration"]
