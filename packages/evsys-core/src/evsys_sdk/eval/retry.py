"""The retry layer: which errors are transient, how long to wait, and where exhausted calls are recorded.

Transient errors are connection and timeout errors (builtin, urllib, http.client, and the classes of
httpx / requests / the vendor SDKs, recognised by class name so none of them is imported) and HTTP
408/425/429/5xx answers, whose status is read from ``status_code``, ``status``, ``code`` or
``response.status_code``. A ``Retry-After`` is read from an exception's ``retry_after`` attribute or
from its (or its response's) headers (``retry-after-ms``, ``retry-after`` in seconds or as an HTTP
date). Exhausted calls are recorded in a ``RetryReport`` instead of raising.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import threading
import time
import urllib.error
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "RetryFailure",
    "RetryPolicy",
    "RetryReport",
    "call_with_retry",
    "is_transient",
    "retry_after_of",
    "status_of",
]

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 425, 429})
# Class names (anywhere in the MRO) of transient errors in libraries core does not import:
# httpx (TimeoutException, NetworkError, RemoteProtocolError), requests (ConnectionError, Timeout),
# openai/anthropic (APIConnectionError, APITimeoutError), google (ServiceUnavailable, DeadlineExceeded).
TRANSIENT_NAMES = frozenset(
    {
        "TimeoutException",
        "NetworkError",
        "RemoteProtocolError",
        "ConnectionError",
        "Timeout",
        "APIConnectionError",
        "APITimeoutError",
        "ServiceUnavailable",
        "DeadlineExceeded",
    }
)
Retriable = Callable[[BaseException], bool] | tuple[type[BaseException], ...]


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any."""
    holders = (exc, getattr(exc, "response", None))
    for holder in holders:
        if holder is None:
            continue
        for attr in ("status_code", "status", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def _headers(exc: BaseException) -> Any:
    for holder in (exc, getattr(exc, "response", None)):
        headers = getattr(holder, "headers", None) if holder is not None else None
        if headers is not None and hasattr(headers, "get"):
            return headers
    return None


def _header(headers: Any, name: str) -> str | None:
    for key in (name, name.title(), name.upper()):
        value = headers.get(key)
        if value is not None:
            return str(value)
    if isinstance(headers, Mapping):  # a plain dict in some other casing
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name:
                return str(value)
    return None


def retry_after_of(exc: BaseException, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asked us to wait, from ``exc.retry_after`` or a Retry-After header."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, float(value))
    headers = _headers(exc)
    if headers is None:
        return None
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection/timeout errors and HTTP 408/425/429/5xx."""
    if isinstance(exc, ConnectionError | TimeoutError | http.client.IncompleteRead | http.client.RemoteDisconnected):
        return True
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return isinstance(reason, BaseException) and is_transient(reason)
    status = status_of(exc)
    if status is not None:
        return status in TRANSIENT_STATUS or status >= 500
    return any(cls.__name__ in TRANSIENT_NAMES for cls in type(exc).__mro__)


def _retriable_fn(retriable: Retriable | None) -> Callable[[BaseException], bool]:
    if retriable is None:
        return is_transient
    if isinstance(retriable, tuple):
        types = retriable
        return lambda exc: isinstance(exc, types)
    return retriable


@dataclass(frozen=True)
class RetryFailure:
    """One call that never succeeded."""

    context: str
    exception_type: str
    exception_message: str
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "exception_type": self.exception_type,
            "exception_message": self.exception_message,
            "attempts": self.attempts,
        }


@dataclass
class RetryReport:
    """Calls that failed for good (thread-safe). ``total_failures`` counts them."""

    failures: list[RetryFailure] = field(default_factory=list)
    retries: int = 0  # failed attempts that were retried (successful in the end or not)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total_failures(self) -> int:
        return len(self.failures)

    def record(self, context: str, exc: BaseException, attempts: int) -> RetryFailure:
        failure = RetryFailure(context, type(exc).__name__, str(exc), attempts)
        with self._lock:
            self.failures.append(failure)
        return failure

    def note_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def by_exception_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.failures:
            counts[f.exception_type] = counts.get(f.exception_type, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_failures": self.total_failures,
            "by_exception_type": self.by_exception_type(),
            "failures": [f.as_dict() for f in self.failures],
        }


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry: up to ``max_attempts`` tries; after failed try n wait what the server asked for
    (Retry-After, capped at ``max_retry_after``) or else ``min(cap, base * 2**(n-1))``, shortened by up
    to ``jitter`` (a fraction) at random. ``sleep`` (sync callers) and
    ``asleep`` (the async engine) are injectable; None means ``time.sleep`` / ``asyncio.sleep``, looked
    up at call time (so tests can patch them)."""

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 16.0
    jitter: float = 0.5
    max_retry_after: float = 120.0
    retriable: Retriable | None = None
    sleep: Callable[[float], None] | None = None
    asleep: Callable[[float], Awaitable[None]] | None = None
    rng: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")

    def should_retry(self, exc: BaseException) -> bool:
        return _retriable_fn(self.retriable)(exc)

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        backoff = float(min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1)))
        if self.jitter:
            backoff *= 1.0 - self.jitter * self.rng()
        server = retry_after_of(exc) if exc is not None else None
        return backoff if server is None else min(server, self.max_retry_after)

    def do_sleep(self, seconds: float) -> None:
        if seconds > 0:
            (self.sleep or time.sleep)(seconds)


def call_with_retry(
    fn: Callable[..., T],
    *args: Any,
    max_attempts: int = 5,
    backoff_base: float = 1.0,
    backoff_cap: float = 16.0,
    retriable: Retriable | None = None,
    report: RetryReport | None = None,
    context: str = "",
    jitter: float = 0.0,
    sleep: Callable[[float], None] | None = None,
    **kwargs: Any,
) -> T | None:
    """``fn(*args, **kwargs)``, retried on transient errors; None once ``max_attempts`` tries failed
    (recorded in ``report``). Other errors propagate at once. Without jitter the waits are
    1, 2, 4, 8 s for 5 attempts (no wait after the last), or what the server asks in a Retry-After."""
    policy = RetryPolicy(
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
        jitter=jitter,
        retriable=retriable,
        sleep=sleep,
    )
    return retry_sync(policy, lambda: fn(*args, **kwargs), report=report, context=context)


def retry_sync(
    policy: RetryPolicy, call: Callable[[], T], *, report: RetryReport | None = None, context: str = ""
) -> T | None:
    """Run ``call`` under ``policy``; None when exhausted (recorded in ``report``)."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not policy.should_retry(exc):
                raise
            if attempt == policy.max_attempts:
                if report is not None:
                    report.record(context, exc, attempt)
                return None
            if report is not None:
                report.note_retry()
            policy.do_sleep(policy.delay(attempt, exc))
    raise AssertionError("unreachable")  # pragma: no cover
