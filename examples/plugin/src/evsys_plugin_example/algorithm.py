"""``constant_lr_toy``: a toy trainer whose loss shrinks by a constant learning-rate factor per step.

It needs no model, so it runs on any backend; it shows what evsys expects of a training algorithm:
a strict ``Config``, metrics logged per step, the in-loop validation callback, the time budget, and the standard
``final_checkpoint`` / ``state-final`` artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.protocols import RunContext, RunResult


class ConstantLrToy:
    name: ClassVar[str] = "constant_lr_toy"

    class Config(StrictModel):
        """Params of constant_lr_toy. StrictModel makes an unknown key (a YAML typo) an error."""

        learning_rate: float = Field(default=0.1, gt=0, lt=1, description="fraction of the loss removed per step")
        steps: int = Field(default=10, ge=1, description="training steps")
        initial_loss: float = Field(default=2.0, gt=0, description="the loss before the first step")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        cfg = self.config
        ctx.log_store.log_hyperparams({"algorithm": self.name, **cfg.model_dump()})
        loss = cfg.initial_loss
        for step in range(1, cfg.steps + 1):
            ctx.check_budget()  # stops the run once it is past run.max_seconds
            loss *= 1.0 - cfg.learning_rate
            ctx.log_store.log_metrics({"train/loss": loss}, step)
            ctx.validate(step)  # lets the experiment run in-loop benchmarks
        state = {"algorithm": self.name, "step": cfg.steps, "loss": loss}
        artifacts = {key: _save(Path(ctx.output_dir) / key, state) for key in ("final_checkpoint", "state-final")}
        ctx.log_store.log_artifact("final_checkpoint", artifacts["final_checkpoint"], kind="checkpoint")
        return RunResult(
            ctx.run_id,
            "completed",
            metrics={"train/final_loss": loss, "total_steps": float(cfg.steps)},
            artifacts=artifacts,
        )


def _save(directory: Path, state: dict[str, Any]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metadata.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return str(directory)
