"""The log store that discards everything: a ``RunContext``'s default and the registered ``null`` kind."""

from __future__ import annotations

from typing import Any, ClassVar

from evsys_sdk.spec.config import StrictModel


class NullLogStore:
    """Discards everything: the default for contexts built without a log store."""

    name: ClassVar[str] = "null"

    class Config(StrictModel):
        pass

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def log_scalar(self, key: str, value: float, step: int) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        pass

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        pass

    def close(self) -> None:
        pass
