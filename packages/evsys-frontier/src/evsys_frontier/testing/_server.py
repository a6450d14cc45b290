"""A loopback HTTP server speaking the Anthropic Messages, OpenAI Chat Completions and Responses, and
Gemini generateContent wire formats, with scripted faults and request recording. Stdlib only."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["FakePrompt", "FakeProviderServer", "Fault", "RecordedRequest", "echo_responder"]

Provider = Literal["anthropic", "openai_chat", "openai_responses", "gemini"]
_GEMINI_PATH = re.compile(r"/(v1\w*)/models/([^/:]+):generateContent$")

# (anthropic error type, openai error type, gemini status) per HTTP status.
_ERROR_NAMES: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    401: ("authentication_error", "invalid_api_key", "UNAUTHENTICATED"),
    403: ("permission_error", "permission_denied", "PERMISSION_DENIED"),
    404: ("not_found_error", "not_found", "NOT_FOUND"),
    408: ("timeout_error", "timeout", "DEADLINE_EXCEEDED"),
    429: ("rate_limit_error", "rate_limit_exceeded", "RESOURCE_EXHAUSTED"),
    500: ("api_error", "server_error", "INTERNAL"),
    503: ("api_error", "server_error", "UNAVAILABLE"),
    529: ("overloaded_error", "server_error", "UNAVAILABLE"),
}


@dataclass(frozen=True)
class Fault:
    """What the server does to the next matching request instead of (or before) answering it.

    ``status`` None only delays (``delay_s``) and then answers normally, e.g. to trip a client timeout.
    ``body`` None sends the provider's own error shape; ``provider`` None matches any provider.
    """

    status: int | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    provider: Provider | None = None
    message: str = "scripted fault"


@dataclass(frozen=True)
class FakePrompt:
    """A request as the responder sees it, whatever the wire format."""

    provider: Provider
    model: str
    prompt: str  # the text of the last user turn
    system: str | None
    max_tokens: int | None
    stop: list[str]
    temperature: float | None


@dataclass(frozen=True)
class RecordedRequest:
    provider: Provider | None  # None for a path no provider serves (answered 404)
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


def echo_responder(p: FakePrompt) -> str:
    """The default reply: deterministic and easy to assert on."""
    return f"You said: {p.prompt}"


def _words(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    """Text of a message's content in any of the three formats (string, blocks, parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(part) for part in content)
    if isinstance(content, dict):
        for key in ("text", "content", "parts"):
            if key in content:
                return _text_of(content[key])
    return ""


def _last_user(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role", "user") == "user":
            return _text_of(message.get("content", message.get("parts")))
    return ""


def _stops(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [s for s in value or [] if isinstance(s, str)]


class FakeProviderServer:
    """``with FakeProviderServer() as srv:`` then point a client at ``srv.url`` (Anthropic, Gemini) or
    ``srv.openai_url`` (OpenAI, which needs the ``/v1``).

    Every request is recorded in ``requests``; faults scripted with ``fail``/``delay`` are consumed one
    per matching request, in order. ``latency_s`` delays every answer; ``api_key`` (when set) is
    checked the way each provider sends it, answering 401 otherwise. ``responder`` turns a
    ``FakePrompt`` into the reply text; the server then applies ``max_tokens`` (in words) and the stop
    sequences, as a real provider would.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        api_key: str | None = None,
        responder: Callable[[FakePrompt], str] = echo_responder,
        port: int = 0,
    ) -> None:
        self.latency_s = latency_s
        self.port = port
        self.api_key = api_key
        self.responder = responder
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeProviderServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        httpd = _Server(("127.0.0.1", self.port), handler)
        self._httpd = httpd
        self._stopping.clear()
        # A short poll interval: stop() waits for the serve loop to notice, once per test.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="evsys-fake-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping out a latency
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running: use it as a context manager or call start()")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    # scripting

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        delay_s: float = 0.0,
        headers: dict[str, str] | None = None,
        body: Any = None,
        provider: Provider | None = None,
        message: str = "scripted fault",
    ) -> FakeProviderServer:
        """Answer the next ``times`` matching requests with ``status`` (429 with ``retry_after``...)."""
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["retry-after"] = str(retry_after)
        if retry_after_ms is not None:
            hdrs["retry-after-ms"] = str(retry_after_ms)
        fault = Fault(status, delay_s, hdrs, body, provider, message)
        with self._lock:
            self._faults.extend([fault] * times)
        return self

    def delay(self, seconds: float, *, times: int = 1, provider: Provider | None = None) -> FakeProviderServer:
        """Hold the next ``times`` matching requests ``seconds`` before answering them normally."""
        with self._lock:
            self._faults.extend([Fault(None, seconds, provider=provider)] * times)
        return self

    def clear(self) -> None:
        """Forget scripted faults and recorded requests."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, provider: Provider) -> list[RecordedRequest]:
        return [r for r in self.requests if r.provider == provider]

    # used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_fault(self, provider: Provider) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.provider is None or fault.provider == provider:
                    del self._faults[i]
                    return fault
        return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once under high concurrency

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on keep-alive clients: a stopped server must not go on answering them."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out hang up mid-answer; that is expected, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProviderServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle plus the client's delayed ACK
        # would add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack()

    def _quickack(self) -> None:
        # Clients send headers and body in two writes; their Nagle holds the body until our ACK of the
        # headers, which Linux delays by up to 40 ms unless quick-ACK is re-armed before each read.
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None:
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            except OSError:
                pass

    def handle_one_request(self) -> None:
        self._quickack()
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(404, {"error": {"message": f"no route for GET {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0]
        provider = _route(path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(RecordedRequest(provider, "POST", self.path, headers, body, time.monotonic()))
        if provider is None:
            self._send(404, {"error": {"message": f"no route for POST {path}"}})
            return
        fault = self.fake._next_fault(provider)
        self.fake._sleep(self.fake.latency_s + (fault.delay_s if fault else 0.0))
        if fault is not None and fault.status is not None:
            err = fault.body if fault.body is not None else _error_body(provider, fault.status, fault.message)
            self._send(fault.status, err, fault.headers)
            return
        if self.fake.api_key is not None and not _authorized(provider, headers, self.path, self.fake.api_key):
            self._send(401, _error_body(provider, 401, "invalid x-api-key"))
            return
        if not isinstance(body, dict):
            self._send(400, _error_body(provider, 400, "the body must be a JSON object"))
            return
        self._send(200, _answer(provider, path, body, self.fake.responder))

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _route(path: str) -> Provider | None:
    if path.endswith("/v1/messages"):
        return "anthropic"
    if path.endswith("/chat/completions"):
        return "openai_chat"
    if path.endswith("/responses"):
        return "openai_responses"
    if _GEMINI_PATH.search(path):
        return "gemini"
    return None


def _authorized(provider: Provider, headers: dict[str, str], raw_path: str, key: str) -> bool:
    bearer = headers.get("authorization") == f"Bearer {key}"
    if provider == "anthropic":
        return bearer or headers.get("x-api-key") == key
    if provider == "gemini":
        return headers.get("x-goog-api-key") == key or f"key={key}" in raw_path
    return bearer


def _error_body(provider: Provider, status: int, message: str) -> dict[str, Any]:
    names = _ERROR_NAMES.get(status, ("api_error", "server_error" if status >= 500 else "invalid_request_error", ""))
    if provider == "anthropic":
        return {"type": "error", "error": {"type": names[0], "message": message}}
    if provider == "gemini":
        return {"error": {"code": status, "message": message, "status": names[2] or "UNKNOWN"}}
    return {"error": {"message": message, "type": names[1], "param": None, "code": names[1]}}


def _finish(text: str, max_tokens: int | None, stop: list[str]) -> tuple[str, str | None, bool]:
    """Apply stop sequences, then the word budget: (text, the stop that matched, truncated?)."""
    matched = None
    cut = len(text)
    for s in stop:
        if s and s in text and text.index(s) < cut:
            cut, matched = text.index(s), s
    text = text[:cut]
    words = text.split(" ")
    if max_tokens is not None and _words(text) > max_tokens:
        return " ".join(words[:max_tokens]), None, True
    return text, matched, False


def _system_text(value: Any) -> str | None:
    if value is None:
        return None
    return _text_of(value)


def _answer(provider: Provider, path: str, body: dict[str, Any], responder: Callable[[FakePrompt], str]) -> Any:
    if provider == "anthropic":
        return _anthropic(body, responder)
    if provider == "openai_chat":
        return _openai_chat(body, responder)
    if provider == "openai_responses":
        return _openai_responses(body, responder)
    match = _GEMINI_PATH.search(path)
    assert match is not None
    return _gemini(match.group(2), body, responder)


def _anthropic(body: dict[str, Any], responder: Callable[[FakePrompt], str]) -> dict[str, Any]:
    messages = body.get("messages") or []
    stop = _stops(body.get("stop_sequences"))
    system = _system_text(body.get("system"))
    p = FakePrompt(
        "anthropic",
        str(body.get("model", "")),
        _last_user(messages),
        system,
        body.get("max_tokens"),
        stop,
        body.get("temperature"),
    )
    text, matched, truncated = _finish(responder(p), p.max_tokens, stop)
    prompt_words = sum(_words(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": p.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if truncated else "stop_sequence" if matched else "end_turn",
        "stop_sequence": matched,
        "usage": {"input_tokens": prompt_words + _words(system or ""), "output_tokens": _words(text)},
    }


def _openai_chat(body: dict[str, Any], responder: Callable[[FakePrompt], str]) -> dict[str, Any]:
    messages = body.get("messages") or []
    system = next((_text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")), None)
    stop = _stops(body.get("stop"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    p = FakePrompt(
        "openai_chat",
        str(body.get("model", "")),
        _last_user(messages),
        system,
        max_tokens,
        stop,
        body.get("temperature"),
    )
    text, _, truncated = _finish(responder(p), max_tokens, stop)
    prompt_words = sum(_words(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": p.model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "length" if truncated else "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": text},
            }
        ],
        "usage": {"prompt_tokens": prompt_words, "completion_tokens": _words(text), "total_tokens": 0},
    }


def _openai_responses(body: dict[str, Any], responder: Callable[[FakePrompt], str]) -> dict[str, Any]:
    raw_input = body.get("input")
    max_tokens = body.get("max_output_tokens")
    p = FakePrompt(
        "openai_responses",
        str(body.get("model", "")),
        _last_user(raw_input),
        body.get("instructions"),
        max_tokens,
        [],
        body.get("temperature"),
    )
    text, _, truncated = _finish(responder(p), max_tokens, [])
    prompt_words = _words(_text_of(raw_input if isinstance(raw_input, str) else [_text_of(m) for m in raw_input or []]))
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 0,
        "model": p.model,
        "status": "incomplete" if truncated else "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_fake",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {"input_tokens": prompt_words, "output_tokens": _words(text), "total_tokens": 0},
    }


def _gemini(model: str, body: dict[str, Any], responder: Callable[[FakePrompt], str]) -> dict[str, Any]:
    contents = body.get("contents") or []
    config = body.get("generationConfig") or body.get("generation_config") or {}
    system_raw = body.get("systemInstruction") or body.get("system_instruction")
    stop = _stops(config.get("stopSequences", config.get("stop_sequences")))
    max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
    last = next((c for c in reversed(contents) if isinstance(c, dict) and c.get("role", "user") == "user"), {})
    p = FakePrompt(
        "gemini",
        model,
        _text_of(last.get("parts")),
        _system_text(system_raw),
        max_tokens,
        stop,
        config.get("temperature"),
    )
    text, _, truncated = _finish(responder(p), max_tokens, stop)
    prompt_words = sum(_words(_text_of(c.get("parts"))) for c in contents if isinstance(c, dict))
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "MAX_TOKENS" if truncated else "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_words,
            "candidatesTokenCount": _words(text),
            "totalTokenCount": prompt_words + _words(text),
        },
        "modelVersion": model,
    }
