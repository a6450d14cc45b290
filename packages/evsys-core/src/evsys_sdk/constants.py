"""``evsys_sdk.constants``: the dashboard client's environment variables and defaults, at their
seed-documented path. They live in evsys-dashboard (``evsys_dashboard.constants``) and resolve here on
first use (an install hint while it is missing)."""

from __future__ import annotations

from evsys_sdk.base.lazy import plugin_getattr

_NAMES = (
    "API_PREFIX",
    "DEFAULT_API_URL",
    "DEFAULT_LOG_DIR",
    "ENV_API_KEY",
    "ENV_API_URL",
    "ENV_LOGGING_LEVEL",
    "ENV_LOG_DIR",
    "ENV_OFFLINE",
    "ENV_PROJECT_ID",
    "TRUTHY",
)
__all__ = list(_NAMES)
__getattr__ = plugin_getattr(__name__, "evsys_dashboard.constants", "evsys-dashboard", _NAMES)
