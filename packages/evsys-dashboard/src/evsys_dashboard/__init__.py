"""evsys-dashboard: the dashboard tracking client (offline mirror, sync) and the dashboard server.

``import evsys_dashboard`` loads neither httpx nor the server stack: the client imports httpx when an
online client is built, and the server lives in ``evsys_dashboard.server`` (the ``[server]`` extra).
"""

from __future__ import annotations

from evsys_sdk.base.lazy import lazy_getattr

__version__ = "0.1.0"
_WHERE = {
    "API_PREFIX": "evsys_dashboard.constants",
    "DashboardClient": "evsys_dashboard.client",
    "DashboardClientError": "evsys_dashboard.errors",
    "DashboardUnavailableError": "evsys_dashboard.errors",
    "EvsysAuthError": "evsys_dashboard.errors",
    "ExperimentRun": "evsys_dashboard.run",
}
__all__ = [*_WHERE, "__version__"]
# Names resolve at first use: evsys loads this package's hooks at plugin discovery (every `evsys` start).
__getattr__ = lazy_getattr(__name__, _WHERE)
