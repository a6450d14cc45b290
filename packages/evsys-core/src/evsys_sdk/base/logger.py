"""The ``evsys`` logger: every evsys module logs through a child of it, to stderr.

The level defaults to ``EVSYS_LOGGING_LEVEL`` (a name such as ``DEBUG``, or a number), else WARNING.
The first ``get_logger`` call sets the logger up; the root logger is never touched. When the
application has configured the root logger, records reach its handlers by propagation and the evsys
handler stays quiet, so nothing prints twice and pytest's ``caplog`` sees every record.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TextIO

ROOT_LOGGER = "evsys"
LEVEL_ENV = "EVSYS_LOGGING_LEVEL"
DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_HANDLER_NAME = "evsys-stderr"
_LEVEL_NAMES = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")
_lock = threading.Lock()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the *current* ``sys.stderr``, so redirecting stderr after setup still works."""

    def emit(self, record: logging.LogRecord) -> None:
        owner = logging.getLogger(ROOT_LOGGER)
        if owner.propagate and logging.root.handlers:
            return  # the application's root handlers get this record by propagation
        self.stream = sys.stderr
        super().emit(record)


def _parse_level(value: str | int, source: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return value
    elif isinstance(value, str):
        text = value.strip().upper()
        if text.isdigit():
            return int(text)
        level = logging.getLevelNamesMapping().get(text)
        if level is not None:
            return level
    raise ValueError(
        f"{source}={value!r} is not a logging level; use one of {', '.join(_LEVEL_NAMES)} or a number >= 0"
    )


def _env_level() -> int:
    raw = os.environ.get(LEVEL_ENV, "").strip()
    return _parse_level(raw, LEVEL_ENV) if raw else logging.WARNING


def _own_handler(logger: logging.Logger) -> logging.Handler | None:
    # Found by name rather than class so a reloaded module still finds the handler it added before.
    return next((h for h in logger.handlers if h.get_name() == _HANDLER_NAME), None)


def configure_logger(level: str | int | None = None, *, fmt: str | None = None) -> logging.Logger:
    """(Re)configure the ``evsys`` logger: ``level`` (default: ``EVSYS_LOGGING_LEVEL``, else WARNING)
    and the stderr format ``fmt``. Calling it again replaces the settings; it never adds a handler twice."""
    resolved = _env_level() if level is None else _parse_level(level, "level")
    logger = logging.getLogger(ROOT_LOGGER)
    with _lock:
        handler = _own_handler(logger)
        if handler is None:
            handler = _StderrHandler(sys.stderr)
            handler.set_name(_HANDLER_NAME)
            logger.addHandler(handler)
        handler.setFormatter(logging.Formatter(fmt or DEFAULT_FORMAT))
        logger.setLevel(resolved)
    return logger


def get_logger(name: str | None = None) -> logging.Logger:
    """``evsys`` itself, or its child ``evsys.<name>`` (a name already under ``evsys.`` is kept)."""
    root = logging.getLogger(ROOT_LOGGER)
    if _own_handler(root) is None:
        configure_logger()
    if not name or name == ROOT_LOGGER or name.startswith(ROOT_LOGGER + "."):
        return root if not name else logging.getLogger(name)
    return logging.getLogger(f"{ROOT_LOGGER}.{name}")


def set_level(level: str | int) -> None:
    """Set the ``evsys`` logger's level (a name such as ``"INFO"``, or a number)."""
    resolved = _parse_level(level, "level")
    logger = logging.getLogger(ROOT_LOGGER)
    if _own_handler(logger) is None:
        configure_logger(resolved)  # so a later first get_logger cannot reset it to the env level
    else:
        logger.setLevel(resolved)
