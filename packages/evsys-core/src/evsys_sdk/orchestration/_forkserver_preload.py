"""Imported once by the ``process`` executor's fork server: every worker forked from it starts with
the runner imported and the plugins discovered, instead of paying for both per arm."""

from __future__ import annotations

# Imported for their side effect: loaded once here, inherited by every fork.
import evsys_sdk.orchestration.arm
import evsys_sdk.run.runner  # noqa: F401
from evsys_sdk.base.logger import get_logger
from evsys_sdk.plugins import host as plugins

try:
    plugins.current_host().ensure_loaded()
except Exception:  # the server must come up anyway; each fork starts afresh and reports the error itself
    get_logger("executors").warning("plugin discovery in the fork server failed", exc_info=True)
    plugins._host = None
