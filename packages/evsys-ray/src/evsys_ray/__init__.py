"""evsys-ray: run an experiment's arms as Ray tasks (``executor: {kind: ray}``)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["RayExecutor"]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":  # lazy: the config model needs pydantic, and users may only want the hooks
        from evsys_ray.executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module 'evsys_ray' has no attribute '{name}'")
