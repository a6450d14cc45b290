"""The dashboard server (the ``[server]`` extra: FastAPI + uvicorn)."""

from __future__ import annotations

from evsys_dashboard.server.app import create_app, serve

__all__ = ["create_app", "serve"]
