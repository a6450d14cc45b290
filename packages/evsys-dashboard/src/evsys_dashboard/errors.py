"""The dashboard's errors. Stdlib and core only: importing them never loads httpx."""

from __future__ import annotations

from typing import Any

from evsys_sdk.base.errors import EvsysError


class DashboardClientError(EvsysError):
    """The server refused a request (HTTP 4xx): the request itself is wrong, retrying will not help."""

    def __init__(self, status: int, body: Any, path: str):
        self.status = status
        self.body = body
        self.path = path
        text = body if isinstance(body, str) else repr(body)
        super().__init__(f"{path} → HTTP {status}: {text[:200]}")


class EvsysAuthError(EvsysError):
    """Online mode without an API key and/or project id."""


class DashboardUnavailableError(EvsysError):
    """A read (dataset, benchmark) needs the server, and the client is offline or the server is down or
    failing; ``status`` is the server's 5xx answer (None: offline or unreachable)."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)
