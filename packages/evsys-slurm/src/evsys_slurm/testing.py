"""A test algorithm for preemption and requeue: it counts steps, saves a ``state-N`` checkpoint after
each and, given ``model.load_checkpoint_path``, resumes after the step saved there. Register this hooks
module on the driver and list it in the executor's ``plugins`` param (like ``evsys_sdk.testing.executors``)::

    executor: {kind: slurm, params: {plugins: [evsys_slurm.testing]}}
    run: {algorithm: {kind: resumable_count, params: {steps: 20, step_seconds: 0.2}}, backend: {kind: mock}, ...}

Its metrics say where each attempt began: ``first_step`` (1 when it never resumed) and ``total_steps``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.plugins.hookspecs import hookimpl
from evsys_sdk.spec.config import StrictModel

if TYPE_CHECKING:
    from evsys_sdk.spec.protocols import RunContext, RunResult

TESTING_PLUGIN = __name__


class ResumableCount:
    """``steps`` steps of ``step_seconds`` each, a ``state-N`` checkpoint after every step."""

    name: ClassVar[str] = "resumable_count"

    class Config(StrictModel):
        steps: int = Field(default=10, ge=1, le=10_000, description="steps to count")
        step_seconds: float = Field(default=0.1, ge=0, le=60, description="wall time of each step")
        seed: int = Field(default=42, description="unused: the run's seed lands here")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_sdk.spec.protocols import RunResult

        handles = ctx.extras.get("backend_handles") or {}
        model = handles.get("model") if isinstance(handles, dict) else {}
        resume = (model or {}).get("load_checkpoint_path")
        done = json.loads((Path(resume) / "state.json").read_text())["step"] if resume else 0
        artifacts: dict[str, str] = {}
        for step in range(done + 1, self.config.steps + 1):
            time.sleep(self.config.step_seconds)
            ctx.log_store.log_metrics({"train/loss": 1.0 / step}, step)
            path = Path(ctx.output_dir) / f"state-{step}"
            atomic_write_json(path / "state.json", {"step": step})
            ctx.log_store.log_artifact(f"state-{step}", str(path), kind="checkpoint")
            artifacts[f"state-{step}"] = str(path)
        metrics = {"first_step": float(done + 1), "total_steps": float(self.config.steps)}
        return RunResult(ctx.run_id, "completed", metrics=metrics, artifacts=artifacts)


@hookimpl
def evsys_register_algorithms(registry: Any) -> None:
    registry.add(ResumableCount)


def add_testing_plugin(host: Any) -> Any:
    """Registers ``resumable_count`` on the driver's ``host`` under the name workers load it by."""
    host.add_plugin(sys.modules[__name__], TESTING_PLUGIN)
    return host
