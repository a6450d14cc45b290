"""evsys-dashboard: the dashboard tracking client (offline mirror, sync) and the dashboard server.

``import evsys_dashboard`` loads neither httpx nor the server stack: the client imports httpx when an
online client is built, and the server lives in ``evsys_dashboard.server`` (the ``[server]`` extra).
"""

from __future__ import annotations

from evsys_dashboard.client import DashboardClient
from evsys_dashboard.constants import API_PREFIX
from evsys_dashboard.errors import DashboardClientError, DashboardUnavailableError, EvsysAuthError
from evsys_dashboard.run import ExperimentRun

__version__ = "0.1.0"
__all__ = [
    "API_PREFIX",
    "DashboardClient",
    "DashboardClientError",
    "DashboardUnavailableError",
    "EvsysAuthError",
    "ExperimentRun",
    "__version__",
]
