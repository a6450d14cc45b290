"""evsys-ray: run an experiment's arms as Ray tasks (``executor: {kind: ray}``)."""

from __future__ import annotations

from evsys_sdk.base.lazy import lazy_getattr

__version__ = "0.1.0"
__all__ = ["RayExecutor"]

# lazy: the config model needs pydantic, and users may only want the hooks
__getattr__ = lazy_getattr(__name__, {"RayExecutor": "evsys_ray.executor"})
