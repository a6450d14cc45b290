"""A test-only plugin: an algorithm that kills its own worker process (what the OOM killer does).

Ray workers import it by name (``executor.params.plugins``); the tests put this folder on their path."""

from __future__ import annotations

import os
import signal
from typing import Any, ClassVar

from evsys_sdk import hookimpl
from evsys_sdk.config import StrictModel
from evsys_sdk.protocols import RunContext, RunResult


class Crash:
    name: ClassVar[str] = "crash"

    class Config(StrictModel):
        pass

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


@hookimpl
def evsys_register_algorithms(registry: Any) -> None:
    registry.add(Crash)
