"""Backend ``tinker``: connects to the hosted service (or the offline emulator) and hands the
algorithms a connector plus the model's checkpoint settings."""

from __future__ import annotations

from typing import Any, ClassVar

from evsys_sdk.base.logger import get_logger
from evsys_tinker.config import TinkerBackendConfig

log = get_logger("tinker")


class TinkerBackend:
    name: ClassVar[str] = "tinker"
    Config: ClassVar[type[TinkerBackendConfig]] = TinkerBackendConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def prepare(self, *, model: dict[str, Any], run_dir: str) -> dict[str, Any]:
        from evsys_tinker.seam import connect

        connector = connect(self.config)
        return {
            "backend": "tinker",
            "connector": connector,
            "service_client": getattr(connector, "service", None),
            "emulator": self.config.emulator,
            "model_name": model.get("name"),
            "load_checkpoint_path": model.get("load_checkpoint_path"),
            "init_from_checkpoint": model.get("init_from_checkpoint"),
            "renderer_name": model.get("renderer_name"),
            "run_dir": run_dir,
        }

    def teardown(self, handles: dict[str, Any]) -> None:
        connector = handles.get("connector")
        if connector is None:
            return
        try:
            connector.close("success")
        except Exception:  # ending the session is bookkeeping: never fail a finished run over it
            log.warning("closing the Tinker session failed", exc_info=True)
