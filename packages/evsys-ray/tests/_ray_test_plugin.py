"""A test-only plugin: an algorithm that kills its own worker process (what the OOM killer does).

Ray workers import it by name (``executor.params.plugins``); the tests put this folder on their path."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from evsys_sdk import hookimpl
from evsys_sdk.builtins.mock import MockSFT
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


class InterruptOnce:
    """Sends SIGINT to the driver (as Ctrl-C would) unless ``marker`` exists, then waits to be cancelled;
    with the marker present it trains like mock_sft, so a resumed experiment completes."""

    name: ClassVar[str] = "interrupt_once"

    class Config(StrictModel):
        driver_pid: int
        marker: str

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        marker = Path(self.config.marker)
        if marker.exists():
            return MockSFT(max_steps=2).train(ctx)
        marker.touch()
        os.kill(self.config.driver_pid, signal.SIGINT)
        time.sleep(600)  # the driver cancels this task when it handles the interrupt
        raise AssertionError("the driver did not cancel this arm")


@hookimpl
def evsys_register_algorithms(registry: Any) -> None:
    registry.add(Crash)
    registry.add(InterruptOnce)
