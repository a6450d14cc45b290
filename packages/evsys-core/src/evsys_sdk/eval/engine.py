"""The concurrency engine shared by the eval harness and ``Benchmark.score``.

``generate_all(client, requests, ...)`` sends every request through one asyncio loop, at most
``max_concurrency`` at once, and returns one ``Outcome`` per request, in request order:

* a client with ``agenerate`` (a coroutine) is awaited directly;
* a client with only ``generate`` runs on a thread pool of ``max_concurrency`` threads;
* with ``batch_size > 1`` and a ``generate_batch`` method, requests sharing sampling params go in
  chunks of ``batch_size`` (at most ``max_concurrency // batch_size`` chunks in flight).

Every call is retried under a ``RetryPolicy``; a request waiting out its backoff gives its slot to
others. An optional ``RateLimiter`` (shareable between runs and threads) spaces out calls, and a
Retry-After from the server pauses it for everyone. A request that exhausts its retries, or fails
with a non-transient error, is recorded in the ``RetryReport`` and never aborts the run, whatever the
client raised (``StopIteration`` and other ``BaseException`` subclasses included); only programming
errors (TypeError, AttributeError, NotImplementedError...), KeyboardInterrupt and SystemExit propagate.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from evsys_sdk.eval.cache import CompletionCache, client_identity
from evsys_sdk.eval.retry import RetryPolicy, RetryReport, retry_after_of

__all__ = [
    "PROGRAMMING_ERRORS",
    "GenerationRequest",
    "Outcome",
    "RateLimiter",
    "agenerate_all",
    "generate_all",
]

T = TypeVar("T")
# Errors that mean the code is wrong, not the call: they abort the run instead of being recorded.
PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    NameError,
    NotImplementedError,
    AssertionError,
    ImportError,
)


class _Raised(Exception):
    """Carries what a client raised out of its worker thread: a ``StopIteration`` set on the asyncio
    future would never resolve it (the await hangs), and a non-Exception would escape the engine."""

    def __init__(self, error: BaseException):
        super().__init__(repr(error))
        self.error = error


def _guarded(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    """``fn(**kwargs)`` on a worker thread, anything it raises but KeyboardInterrupt/SystemExit wrapped."""
    try:
        return fn(**kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise _Raised(exc) from None


def _ours(exc: BaseException) -> bool:
    """Whether ``exc`` stops the engine rather than being a failure of one call: Ctrl-C, exit, or the
    cancellation of this task (a client's own CancelledError, with nobody cancelling, is its failure)."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return True
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


@dataclass(frozen=True)
class GenerationRequest:
    """One completion to fetch. ``sample`` tells repeated samples of one prompt apart (cache key);
    ``context`` names the request in the retry report."""

    prompt: str
    max_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] | None = None
    sample: int = 0
    context: str = ""

    def sampling(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": list(self.stop) if self.stop is not None else None,
        }


@dataclass
class Outcome:
    """A request's result: ``text`` ("" when it failed), ``error`` ("retry_exhausted" or
    "error:<ExceptionType>") and how many attempts it took (0 for a cache hit)."""

    text: str = ""
    error: str | None = None
    attempts: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class RateLimiter:
    """At most ``rate`` calls per second on average, bursts of up to ``burst`` (GCRA token bucket).

    One instance can be shared by several runs, threads and event loops (it keeps no loop state).
    ``pause(seconds)`` holds every caller back, e.g. after a 429 with Retry-After.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        asleep: Callable[[float], Awaitable[None]] | None = None,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError(f"RateLimiter needs rate > 0 and burst >= 1 (got rate={rate}, burst={burst})")
        self.interval = 1.0 / rate
        self._tolerance = (burst - 1) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self._lock = threading.Lock()
        self._tat = clock()  # theoretical arrival time of the next call

    def reserve(self) -> float:
        """Take a slot; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            self._tat = tat + self.interval
            return max(0.0, tat - self._tolerance - now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._tat = max(self._tat, self._clock() + seconds)

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            (self._sleep or time.sleep)(wait)

    async def acquire_async(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await (self._asleep or asyncio.sleep)(wait)


class _Progress:
    """``[done/total] label  failed=F retries=R  rate/s`` on one terminal line; silent when piped."""

    def __init__(self, total: int, label: str, enabled: bool | None, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.enabled = (self.stream.isatty() if enabled is None else enabled) and total > 0
        self.total, self.label, self.done, self.failed = total, label, 0, 0
        self._start = self._last = time.monotonic()

    def update(self, outcome: Outcome, report: RetryReport) -> None:
        self.done += 1
        self.failed += not outcome.ok
        if not self.enabled:
            return
        now = time.monotonic()
        if self.done < self.total and now - self._last < 0.1:
            return
        self._last = now
        rate = self.done / max(now - self._start, 1e-9)
        self.stream.write(
            f"\r\x1b[K[{self.done}/{self.total}] {self.label}  failed={self.failed} "
            f"retries={report.retries}  {rate:.1f}/s"
        )
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


@dataclass
class _Run:
    client: Any
    policy: RetryPolicy
    report: RetryReport
    limiter: RateLimiter | None
    sem: asyncio.Semaphore
    pool: ThreadPoolExecutor | None
    progress: _Progress
    cache: CompletionCache | None = None
    shard: str = ""
    identity: dict[str, Any] = field(default_factory=dict)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await (self.policy.asleep or asyncio.sleep)(seconds)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> tuple[T | None, BaseException | None, int]:
        """Call with retries: (value, None, attempts) or (None, last error, attempts)."""
        for attempt in range(1, self.policy.max_attempts + 1):
            async with self.sem:
                if self.limiter is not None:
                    await self.limiter.acquire_async()
                try:
                    return await fn(), None, attempt
                except BaseException as exc:
                    if _ours(exc):
                        raise
                    error = exc.error if isinstance(exc, _Raised) else exc
                    if isinstance(error, PROGRAMMING_ERRORS):
                        raise error from None
            if not self.policy.should_retry(error) or attempt == self.policy.max_attempts:
                return None, error, attempt
            self.report.note_retry()
            server_wait = retry_after_of(error)
            if self.limiter is not None and server_wait:
                self.limiter.pause(min(server_wait, self.policy.max_retry_after))
            await self._sleep(self.policy.delay(attempt, error))
        raise AssertionError("unreachable")  # pragma: no cover

    def in_thread(self, fn: Callable[..., T], **kwargs: Any) -> Callable[[], Awaitable[T]]:
        def run() -> Awaitable[T]:
            return asyncio.get_running_loop().run_in_executor(self.pool, _guarded, fn, kwargs)

        return run

    def finish(self, outcome: Outcome, req: GenerationRequest, error: BaseException | None) -> Outcome:
        if error is not None:
            self.report.record(req.context, error, outcome.attempts)
            retried = self.policy.should_retry(error)
            outcome.error = "retry_exhausted" if retried else f"error:{type(error).__name__}"
        elif self.cache is not None:
            key = self.cache.key(req.prompt, req.sampling(), req.sample)
            self.cache.put(self.shard, key, outcome.text, identity=self.identity)
        self.progress.update(outcome, self.report)
        return outcome

    async def one(self, req: GenerationRequest) -> Outcome:
        agenerate = getattr(self.client, "agenerate", None)
        kwargs = {"prompt": req.prompt, **req.sampling()}
        if agenerate is not None and inspect.iscoroutinefunction(agenerate):
            fn: Callable[[], Awaitable[Any]] = lambda: agenerate(**kwargs)  # noqa: E731
        else:
            fn = self.in_thread(self.client.generate, **kwargs)
        text, error, attempts = await self.call(fn)
        return self.finish(Outcome(text=_as_text(text), attempts=attempts), req, error)

    async def batch(self, reqs: list[GenerationRequest]) -> list[Outcome]:
        first = reqs[0]
        fn = self.in_thread(self.client.generate_batch, prompts=[r.prompt for r in reqs], **first.sampling())
        texts, error, attempts = await self.call(fn)
        if error is None and (not isinstance(texts, list | tuple) or len(texts) != len(reqs)):
            what = len(texts) if isinstance(texts, list | tuple) else type(texts).__name__
            raise TypeError(f"{type(self.client).__name__}.generate_batch returned {what} for {len(reqs)} prompts")
        got = list(texts) if texts is not None and error is None else [""] * len(reqs)
        return [
            self.finish(Outcome(text=_as_text(t), attempts=attempts), r, error) for t, r in zip(got, reqs, strict=True)
        ]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"an inference client returned {type(value).__name__}, expected str")
    return value


def _chunks(reqs: list[tuple[int, GenerationRequest]], size: int) -> list[list[tuple[int, GenerationRequest]]]:
    groups: dict[tuple[Any, ...], list[tuple[int, GenerationRequest]]] = {}
    for item in reqs:
        r = item[1]
        groups.setdefault((r.max_tokens, r.temperature, r.stop), []).append(item)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


async def agenerate_all(
    client: Any,
    requests: Sequence[GenerationRequest],
    *,
    max_concurrency: int = 16,
    batch_size: int = 1,
    retry: RetryPolicy | None = None,
    rate_limiter: RateLimiter | None = None,
    cache: CompletionCache | None = None,
    report: RetryReport | None = None,
    progress: bool | None = None,
    label: str = "generate",
) -> list[Outcome]:
    """The async form of ``generate_all`` (for callers already inside an event loop)."""
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    report = report if report is not None else RetryReport()
    outcomes: list[Outcome | None] = [None] * len(requests)
    todo: list[tuple[int, GenerationRequest]] = []
    shard, identity = "", {}
    if cache is not None:
        identity = client_identity(client)
        shard = cache.shard(identity)
    for i, req in enumerate(requests):
        hit = cache.get(shard, cache.key(req.prompt, req.sampling(), req.sample)) if cache is not None else None
        if hit is not None:
            outcomes[i] = Outcome(text=hit, cached=True)
        else:
            todo.append((i, req))
    batched = batch_size > 1 and callable(getattr(client, "generate_batch", None))
    slots = max(1, max_concurrency // batch_size) if batched else max_concurrency
    needs_threads = batched or not inspect.iscoroutinefunction(getattr(client, "agenerate", None))
    pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="evsys-eval") if needs_threads and todo else None
    run = _Run(
        client=client,
        policy=retry or RetryPolicy(),
        report=report,
        limiter=rate_limiter,
        sem=asyncio.Semaphore(slots),
        pool=pool,
        progress=_Progress(len(todo), label, progress),
        cache=cache,
        shard=shard,
        identity=identity,
    )

    async def one(i: int, req: GenerationRequest) -> None:
        outcomes[i] = await run.one(req)

    async def chunk(items: list[tuple[int, GenerationRequest]]) -> None:
        for (i, _), outcome in zip(items, await run.batch([r for _, r in items]), strict=True):
            outcomes[i] = outcome

    jobs = [chunk(c) for c in _chunks(todo, batch_size)] if batched else [one(i, r) for i, r in todo]
    try:
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [o if o is not None else Outcome(error="cancelled") for o in outcomes]


def generate_all(
    client: Any,
    requests: Sequence[GenerationRequest],
    *,
    max_concurrency: int = 16,
    batch_size: int = 1,
    retry: RetryPolicy | None = None,
    rate_limiter: RateLimiter | None = None,
    cache: CompletionCache | None = None,
    report: RetryReport | None = None,
    progress: bool | None = None,
    label: str = "generate",
) -> list[Outcome]:
    """One ``Outcome`` per request, in order (see the module docstring). ``progress=None`` shows a
    progress line when stderr is a terminal. Safe to call from inside a running event loop (the
    work then runs on a helper thread with its own loop)."""
    coro = agenerate_all(
        client,
        requests,
        max_concurrency=max_concurrency,
        batch_size=batch_size,
        retry=retry,
        rate_limiter=rate_limiter,
        cache=cache,
        report=report,
        progress=progress,
        label=label,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name="evsys-eval-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: list[Outcome] = box["value"]
    return result
