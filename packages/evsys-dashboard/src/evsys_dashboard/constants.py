"""The dashboard client's settings: the environment variables it reads and their defaults (also at
the seed-documented path ``evsys_sdk.constants``)."""

from __future__ import annotations

API_PREFIX = "/api/dashboard/api"  # every SDK route lives under it, e.g. /sdk/experiments/
MLFLOW_PREFIX = "/mlflow"  # MLflow's tracking API: MLFLOW_TRACKING_URI=http://<host>:<port>/mlflow

ENV_API_URL = "EVSYS_API_URL"  # the server's base URL
ENV_API_KEY = "EVSYS_API_KEY"  # a key from `evsys dashboard create-key` (the server's Settings -> API keys)
ENV_PROJECT_ID = "EVSYS_PROJECT_ID"  # the project every write belongs to
ENV_LOG_DIR = "EVSYS_LOG_DIR"  # the local mirror
ENV_OFFLINE = "EVSYS_OFFLINE"  # record to the local mirror only, no credentials needed
ENV_LOGGING_LEVEL = "EVSYS_LOGGING_LEVEL"  # the client logger's level (name or number)

DEFAULT_API_URL = "http://localhost:8000"
DEFAULT_LOG_DIR = "./evsys_sdk"
TRUTHY = frozenset({"1", "true", "yes", "on"})  # values of EVSYS_OFFLINE that turn it on
