"""``evsys_sdk.dashboard_client``: the dashboard client's seed-documented path. The client lives in the
evsys-dashboard package; its names resolve here on first use (an install hint while it is missing)."""

from __future__ import annotations

from evsys_sdk.base.lazy import plugin_getattr

_NAMES = (
    "API_PREFIX",
    "DashboardClient",
    "DashboardClientError",
    "DashboardUnavailableError",
    "EvsysAuthError",
    "ExperimentRun",
)
__all__ = list(_NAMES)
__getattr__ = plugin_getattr(__name__, "evsys_dashboard", "evsys-dashboard", _NAMES)
