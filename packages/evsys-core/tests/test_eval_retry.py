from __future__ import annotations

import email.utils
import http.client
import io
import time
import urllib.error
from typing import Any

import pytest

from evsys_sdk.eval import RetryFailure, RetryPolicy, RetryReport, call_with_retry, is_transient, retry_after_of
from evsys_sdk.eval.retry import status_of


class StatusError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None, **attrs: Any):
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers or {}
        self.__dict__.update(attrs)


class Response:
    def __init__(self, status: int, headers: dict[str, str]):
        self.status_code = status
        self.headers = headers


class WrappedError(Exception):
    def __init__(self, response: Response):
        super().__init__("wrapped")
        self.response = response


def http_error(code: int, headers: dict[str, str] | None = None) -> urllib.error.HTTPError:
    msg = http.client.HTTPMessage()
    for k, v in (headers or {}).items():
        msg[k] = v
    return urllib.error.HTTPError("http://127.0.0.1/x", code, "err", msg, io.BytesIO(b""))


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError("reset"),
        ConnectionRefusedError("refused"),
        TimeoutError("slow"),
        http.client.RemoteDisconnected("gone"),
        urllib.error.URLError(ConnectionRefusedError("refused")),
        urllib.error.URLError(TimeoutError("timed out")),
        http_error(429),
        http_error(503),
        http_error(500),
        StatusError(429),
        StatusError(502),
        WrappedError(Response(504, {})),
        type("APIConnectionError", (Exception,), {})("sdk connection error"),
        type("ReadTimeout", (type("TimeoutException", (Exception,), {}),), {})("httpx-style timeout"),
    ],
)
def test_transient_errors(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("k"),
        http_error(400),
        http_error(404),
        StatusError(401),
        WrappedError(Response(422, {})),
        urllib.error.URLError("unknown url type"),
        RuntimeError("model exploded"),
    ],
)
def test_permanent_errors(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_status_of_reads_common_attributes() -> None:
    assert status_of(http_error(418)) == 418
    assert status_of(WrappedError(Response(503, {}))) == 503
    assert status_of(StatusError(429)) == 429
    assert status_of(OSError(2, "no such file")) is None  # errno is not a status
    assert status_of(type("E", (Exception,), {"status": True})()) is None  # bools are not statuses


def test_retry_after_sources() -> None:
    assert retry_after_of(StatusError(429, retry_after=2.5)) == 2.5
    assert retry_after_of(StatusError(429, {"Retry-After": "3"})) == 3.0
    assert retry_after_of(StatusError(429, {"retry-after": "4"})) == 4.0
    assert retry_after_of(StatusError(429, {"retry-after-ms": "250"})) == 0.25
    assert retry_after_of(WrappedError(Response(429, {"Retry-After": "7"}))) == 7.0
    assert retry_after_of(http_error(429, {"Retry-After": "5"})) == 5.0
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after_of(StatusError(503, {"Retry-After": date}), now=lambda: 1_000_000.0) == pytest.approx(30.0)
    assert retry_after_of(StatusError(503, {"Retry-After": "soon"})) is None
    assert retry_after_of(ValueError("x")) is None


def flaky(failures: list[BaseException], result: str = "ok") -> Any:
    calls: list[tuple[Any, ...]] = []

    def fn(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        if failures:
            raise failures.pop(0)
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def test_backoff_schedule_and_exhaustion_report() -> None:
    sleeps: list[float] = []
    report = RetryReport()
    fn = flaky([ConnectionError("down")] * 10)
    assert call_with_retry(fn, "a", key=1, report=report, context="row-1", sleep=sleeps.append) is None
    assert sleeps == [1.0, 2.0, 4.0, 8.0]  # no sleep after the last attempt
    assert fn.calls == [(("a",), {"key": 1})] * 5
    assert report.total_failures == 1 and report.retries == 4
    assert report.failures == [RetryFailure("row-1", "ConnectionError", "down", 5)]
    assert report.as_dict() == {
        "total_failures": 1,
        "by_exception_type": {"ConnectionError": 1},
        "failures": [
            {"context": "row-1", "exception_type": "ConnectionError", "exception_message": "down", "attempts": 5}
        ],
    }


def test_backoff_cap_and_success_after_retries() -> None:
    sleeps: list[float] = []
    fn = flaky([TimeoutError()] * 3, result="done")
    out = call_with_retry(fn, max_attempts=6, backoff_base=0.5, backoff_cap=1.0, sleep=sleeps.append)
    assert out == "done" and sleeps == [0.5, 1.0, 1.0]


def test_permanent_error_propagates_without_retry() -> None:
    sleeps: list[float] = []
    fn = flaky([ValueError("bad input")])
    with pytest.raises(ValueError, match="bad input"):
        call_with_retry(fn, sleep=sleeps.append)
    assert sleeps == [] and len(fn.calls) == 1


def test_custom_retriable() -> None:
    sleeps: list[float] = []
    assert call_with_retry(flaky([KeyError("x")]), retriable=(KeyError,), sleep=sleeps.append) == "ok"
    assert call_with_retry(flaky([KeyError("x")]), retriable=lambda e: True, sleep=sleeps.append) == "ok"
    with pytest.raises(ConnectionError):
        call_with_retry(flaky([ConnectionError()]), retriable=(KeyError,), sleep=sleeps.append)


def test_retry_after_is_honoured_and_capped() -> None:
    sleeps: list[float] = []
    errors: list[BaseException] = [StatusError(429, {"Retry-After": "9"}), StatusError(503, {"Retry-After": "500"})]
    assert call_with_retry(flaky(errors), sleep=sleeps.append) == "ok"
    assert sleeps == [9.0, 120.0]  # what the server asked, capped at max_retry_after
    sleeps.clear()
    errors = [StatusError(429, {"retry-after-ms": "50"})]
    assert call_with_retry(flaky(errors), sleep=sleeps.append) == "ok"
    assert sleeps == [0.05]  # shorter than the 1 s backoff: the server knows best


def test_jitter_shortens_backoff_within_bounds() -> None:
    policy = RetryPolicy(backoff_base=2.0, jitter=0.5, rng=lambda: 1.0)
    assert policy.delay(1) == 1.0 and policy.delay(2) == 2.0
    policy = RetryPolicy(backoff_base=2.0, jitter=0.5, rng=lambda: 0.0)
    assert policy.delay(3) == 8.0
    # Retry-After wins over a jittered backoff
    assert RetryPolicy(jitter=1.0, rng=lambda: 1.0).delay(1, StatusError(429, retry_after=0.3)) == 0.3


def test_default_sleep_is_looked_up_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    assert call_with_retry(flaky([ConnectionError()] * 2), backoff_base=0.25) == "ok"
    assert sleeps == [0.25, 0.5]


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)


def test_single_attempt_records_without_sleeping() -> None:
    sleeps: list[float] = []
    report = RetryReport()
    assert call_with_retry(flaky([ConnectionError("x")]), max_attempts=1, report=report, sleep=sleeps.append) is None
    assert sleeps == [] and report.failures[0].attempts == 1
