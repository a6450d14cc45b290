"""The server's front door, before FastAPI reads a byte of the body: the Host allow-list, the API key of
requests to the keyed APIs (the SDK's, MLflow's), and the request size limit.

A pure ASGI middleware, so an unauthenticated or oversized request is answered (401, 413) from its
headers alone: the body is never read, let alone parsed. Each API gets its refusals in its own words
(``KeyedApi.error``): the SDK's ``{"error": ...}``, MLflow's ``{"error_code": ..., "message": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evsys_dashboard.server.db import ServerDB

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024  # serve --max-body-mb
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PROJECT_KEY = "evsys.project"  # where the request's project is left in the ASGI scope
KEYED_METHODS = frozenset({"GET", "HEAD", "POST"})  # the SDK routes' methods; others answer 405 keyless


def plain_error(status: int, message: str) -> dict[str, Any]:
    return {"error": message}


@dataclass(frozen=True)
class KeyedApi:
    """Routes under ``prefix`` whose ``methods`` need an API key; ``error`` words a refusal as the API does."""

    prefix: str
    methods: frozenset[str] = KEYED_METHODS
    error: Callable[[int, str], dict[str, Any]] = plain_error


def allowed_hosts(bind: str | None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The loopback names, the bind address (unless a wildcard) and ``extra`` (``*`` allows any)."""
    names = {*LOOPBACK_NAMES, *(h.strip().lower() for h in extra if h.strip())}
    if bind and bind not in ("0.0.0.0", "::", ""):
        names.add(bind.lower())
    return frozenset(names)


def host_name(header: str) -> str:
    """The name of a Host header, without its port (``[::1]:8000`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def _answer(
    send: Send,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    error: Callable[[int, str], dict[str, Any]] = plain_error,
) -> None:
    body = json.dumps(error(status, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(
        self, app: ASGIApp, *, db: ServerDB, apis: Iterable[KeyedApi], hosts: frozenset[str], max_body_bytes: int
    ) -> None:
        self.app = app
        self.db = db
        self.apis = tuple(apis)
        self.hosts = hosts
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        api = next((a for a in self.apis if scope["path"].startswith(a.prefix)), None)
        error = api.error if api is not None else plain_error
        host = host_name(headers.get("host", ""))
        if "*" not in self.hosts and host not in self.hosts:
            hint = f"start the server with --allowed-host {host}" if host else "send a Host header"
            await _answer(send, 400, f"host {host!r} is not allowed here ({hint})", error=error)
            return
        if api is not None and scope["method"] in api.methods:
            auth = headers.get("authorization", "")
            scheme, _, key = auth.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                message = "missing API key: send Authorization: Bearer <key>"
                await _answer(send, 401, message, {"WWW-Authenticate": "Bearer"}, error)
                return
            project, refused, due = self.db.check_key(key.strip())  # one indexed read on a read-only connection
            if project is None:
                await _answer(send, 401, refused, {"WWW-Authenticate": "Bearer"}, error)
                return
            if due:
                await run_in_threadpool(self.db.touch_key, key.strip())
            scope[PROJECT_KEY] = project
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, "Content-Length must be a number of bytes", error=error)
                return
            if int(length) > self.max_body_bytes:
                await _answer(send, 413, self._too_large(int(length)), error=error)
                return
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            receive = await self._buffered(receive, send, error)
            if receive is None:
                return
        await self.app(scope, receive, send)

    def _too_large(self, size: int | None) -> str:
        got = f"{size} bytes" if size is not None else "more"
        return f"request body of {got} is over the limit of {self.max_body_bytes} bytes (serve --max-body-mb)"

    async def _buffered(
        self, receive: Receive, send: Send, error: Callable[[int, str], dict[str, Any]]
    ) -> Receive | None:
        """A body sent without Content-Length, read up to the limit (413 past it) and replayed to the app."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                await _answer(send, 413, self._too_large(None), error=error)
                return None
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        return replayed


def request_project(scope: Mapping[str, Any]) -> str | None:
    project: str | None = scope.get(PROJECT_KEY)
    return project
