"""The network guard: unit tests reach loopback only (ARCHITECTURE 11).

``network_guard()`` patches the socket entry points every client library goes through (``connect``,
``connect_ex``, ``sendto``, ``create_connection``, ``getaddrinfo``), so a stray call to a real host
fails at once with a clear ``NetworkAccessError`` instead of hanging on a timeout or passing by luck on a
machine that happens to be online. Loopback (127.0.0.0/8, ::1, ``localhost``) and Unix sockets stay
allowed, so fake servers on 127.0.0.1 keep working. Stdlib only: usable outside pytest.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["NetworkAccessError", "network_guard"]


class NetworkAccessError(RuntimeError):
    """A test tried to reach a non-loopback address.

    Deliberately not an ``OSError``: client code that retries or swallows connection errors must not
    mistake the guard for a flaky network and hide the call.
    """


_MISSING = object()
_lock = threading.Lock()


def _is_local(host: object) -> bool:
    if host is None:  # getaddrinfo(None, port): the local wildcard, used to bind servers
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False  # a host name other than localhost would be resolved by DNS
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # The unspecified address (0.0.0.0, ::) never leaves the machine either: servers bind to it.
    return ip.is_loopback or ip.is_unspecified


def _check_address(address: object) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    if isinstance(address, tuple) and address and _is_local(address[0]):
        return
    target = f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) > 1 else repr(address)
    raise NetworkAccessError(
        f"network access to {target} blocked by the evsys network guard: unit tests may reach loopback "
        "only (127.0.0.0/8, ::1, localhost); serve a fake on 127.0.0.1 or use an in-process fake client"
    )


def _guard_connect(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check_address(address)
        return real(self, address)

    return connect


def _guard_sendto(real: Callable[..., Any]) -> Callable[..., Any]:
    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and args:
            _check_address(args[-1])  # sendto(data, address) or sendto(data, flags, address)
        return real(self, data, *args)

    return sendto


def _guard_create_connection(real: Callable[..., Any]) -> Callable[..., Any]:
    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        _check_address(address)
        return real(address, *args, **kwargs)

    return create_connection


def _guard_getaddrinfo(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        _check_address((host, port))
        return real(host, port, *args, **kwargs)

    return getaddrinfo


_SOCKET_METHODS = {"connect": _guard_connect, "connect_ex": _guard_connect, "sendto": _guard_sendto}
_MODULE_FUNCTIONS = {"create_connection": _guard_create_connection, "getaddrinfo": _guard_getaddrinfo}


@contextmanager
def network_guard() -> Iterator[None]:
    """Block every non-loopback connection for the duration of the block (nestable, not per thread:
    sockets opened by worker threads are guarded too)."""
    saved_methods = {name: socket.socket.__dict__.get(name, _MISSING) for name in _SOCKET_METHODS}
    saved_functions = {name: getattr(socket, name) for name in _MODULE_FUNCTIONS}
    with _lock:
        for name, wrap in _SOCKET_METHODS.items():
            setattr(socket.socket, name, wrap(getattr(socket.socket, name)))
        for name, wrap in _MODULE_FUNCTIONS.items():
            setattr(socket, name, wrap(saved_functions[name]))
    try:
        yield
    finally:
        with _lock:
            for name, method in saved_methods.items():
                if method is _MISSING:
                    delattr(socket.socket, name)  # the method was inherited from _socket.socket
                else:
                    setattr(socket.socket, name, method)
            for name, function in saved_functions.items():
                setattr(socket, name, function)
