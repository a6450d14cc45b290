"""Errors of the frontier clients, and the mapping of each SDK's exceptions onto them.

Provider errors are re-raised as our own classes so that (1) the eval engine's retry layer reads one
shape (``status_code``, ``headers``, ``retry_after``) whatever the SDK, and (2) no message can carry an
API key: every message is redacted and the SDK exception (whose request holds the key) is not chained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evsys_sdk.base.errors import EvsysError

__all__ = [
    "FrontierError",
    "MissingAPIKeyError",
    "MissingSDKError",
    "ProviderAPIError",
    "ProviderConnectionError",
    "ProviderRateLimitError",
    "ProviderRequestError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "UnsupportedParameterError",
    "redact",
]

REDACTED = "***"


class FrontierError(EvsysError):
    """Base of evsys-frontier's errors."""


class MissingSDKError(FrontierError, ImportError):
    """The provider SDK is not installed; the message is the exact install command."""


class MissingAPIKeyError(FrontierError, RuntimeError):
    """No API key in the environment variable(s) the config names."""


class UnsupportedParameterError(FrontierError, TypeError):
    """A sampling parameter the installed SDK cannot send. A TypeError, like the SDK's own
    ``unexpected keyword``, so the eval engine aborts at once instead of recording one failure per prompt."""


class ProviderAPIError(FrontierError):
    """An error answer from the provider. ``status_code`` is the HTTP status (None for transport
    errors), ``headers`` the response headers, ``retry_after`` the wait the server asked for (seconds),
    ``provider_error`` the SDK's exception class name, ``provider_message`` the provider's own text."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        provider_error: str = "",
        provider_message: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = dict(headers or {})
        if retry_after is not None:  # only set when known: the retry layer then prefers it to the headers
            self.retry_after = retry_after
        self.provider_error = provider_error
        self.provider_message = provider_message


class ProviderRequestError(ProviderAPIError):
    """A 4xx other than 408/429: the request itself is wrong (bad params, auth, unknown model). Not
    retried."""


class ProviderRateLimitError(ProviderAPIError):
    """429: retried after the server's Retry-After."""


class ProviderServerError(ProviderAPIError):
    """5xx (529 overloaded included) or 408: transient, retried."""


class ProviderTimeoutError(ProviderAPIError, TimeoutError):
    """The request timed out (``timeout_s``): transient, retried."""


class ProviderConnectionError(ProviderAPIError, ConnectionError):
    """The server could not be reached: transient, retried."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (of 4+ characters) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def _retry_after(headers: Mapping[str, str]) -> float | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = lowered.get(name)
        if raw is not None:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                return None  # an HTTP date: the retry layer parses it from the headers
    return None


def provider_error(
    *,
    label: str,
    status: int | None,
    headers: Mapping[str, str] | None,
    provider_error_name: str,
    provider_message: str,
    timeout: bool = False,
    secrets: Iterable[str] = (),
) -> ProviderAPIError:
    """The ProviderAPIError subclass for an SDK failure, with a redacted message."""
    secrets = list(secrets)
    message_text = redact(provider_message, secrets)
    hdrs = {k: redact(str(v), secrets) for k, v in (headers or {}).items()}
    kwargs: dict[str, Any] = {
        "status_code": status,
        "headers": hdrs,
        "retry_after": _retry_after(hdrs),
        "provider_error": provider_error_name,
        "provider_message": message_text,
    }
    if status is None:
        cls: type[ProviderAPIError] = ProviderTimeoutError if timeout else ProviderConnectionError
        what = "timed out" if timeout else "connection failed"
        return cls(f"{label}: {what} ({provider_error_name}): {message_text}", **kwargs)
    if status == 429:
        cls = ProviderRateLimitError
    elif status >= 500 or status == 408:
        cls = ProviderServerError
    else:
        cls = ProviderRequestError
    return cls(f"{label}: HTTP {status} {provider_error_name}: {message_text}", **kwargs)
