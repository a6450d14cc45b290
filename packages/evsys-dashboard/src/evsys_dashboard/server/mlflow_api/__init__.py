"""MLflow's tracking REST API on the dashboard server: MLflow clients log into evsys's records.

``MLFLOW_TRACKING_URI=http://<host>:<port>/mlflow`` with ``MLFLOW_TRACKING_TOKEN=<API key>``; see
``routes`` for the endpoints and ``records`` for how MLflow's entities map onto evsys's.
"""

from __future__ import annotations

from evsys_dashboard.server.mlflow_api.routes import KEYED, mlflow_router

__all__ = ["KEYED", "mlflow_router"]
