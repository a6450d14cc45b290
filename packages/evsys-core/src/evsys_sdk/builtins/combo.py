"""``combo``: chain algorithm phases; each phase starts from the previous phase's final checkpoint.

The phases share one step timeline (``evsys_sdk.spec.phases``): phase 2's first step follows phase 1's
last, and every training row carries its ``phase``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.phases import phase_context
from evsys_sdk.spec.protocols import RunContext, RunResult


class ComboPhase(StrictModel):
    kind: str = Field(min_length=1, description="the phase's algorithm or family (sft, rl, ...)")
    config: dict[str, Any] = Field(default_factory=dict, description="the phase algorithm's params")
    name: str | None = Field(default=None, description="label of the phase (default: phase<i>_<kind>)")


class ComboAlgorithm:
    name: ClassVar[str] = "combo"

    class Config(StrictModel):
        phases: list[ComboPhase] = Field(
            min_length=1, description="the phases in order; each starts from the previous one's final checkpoint"
        )
        fail_fast: bool = Field(default=True, description="stop at the first phase that fails")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_sdk.plugins.registry import registry, resolve_algorithm

        phases = self.config.phases
        ctx.log_store.log_hyperparams(
            {"algorithm": self.name, "n_phases": len(phases), "phases": [p.kind for p in phases]}
        )
        backend_kind = ctx.run_config.backend.kind
        metrics: dict[str, float] = {}
        artifacts: dict[str, str] = {}
        failures: list[str] = []
        init_checkpoint = ctx.extras.get("init_checkpoint")
        offset = 0  # the global step the next phase starts after
        for i, phase in enumerate(phases, start=1):
            label = phase.name or f"phase{i}_{phase.kind}"
            try:
                cls = registry("algorithm").get(resolve_algorithm(phase.kind, backend_kind))
                # A phase without a seed of its own trains with the run's: seeded repeats reach every phase.
                seeded = "seed" in getattr(getattr(cls, "Config", None), "model_fields", {})
                algo = cls(**{**({"seed": ctx.run_config.seed} if seeded else {}), **phase.config})
            except Exception as exc:  # a bad phase is this run's failure, not a crash of the sweep
                failures.append(f"phase {label} could not be constructed: {exc}")
                if self.config.fail_fast:
                    break
                continue
            phase_dir = Path(ctx.output_dir) / label
            phase_dir.mkdir(parents=True, exist_ok=True)
            sub, timeline = phase_context(
                ctx,
                phase=i,
                offset=offset,
                run_id=f"{ctx.run_id}/{label}",
                output_dir=str(phase_dir),
                extras={**ctx.extras, "combo_phase": label, "init_checkpoint": init_checkpoint},
            )
            try:
                result = algo.train(sub)
            except Exception as exc:
                result = RunResult(sub.run_id, "failed", error=f"phase {label} crashed: {type(exc).__name__}: {exc}")
            offset = timeline.last_step
            metrics.update({f"{label}/{k}": v for k, v in result.metrics.items()})
            artifacts.update({f"{label}/{k}": v for k, v in result.artifacts.items()})
            init_checkpoint = result.artifacts.get("final_checkpoint", init_checkpoint)
            if result.status != "completed":
                failures.append(result.error or f"phase {label} ended {result.status}")
                if self.config.fail_fast:
                    break
        # The chain's outputs are its last phase's: expose them under the keys every algorithm uses.
        for key in ("final_checkpoint", "state-final"):
            produced = [v for k, v in artifacts.items() if k.endswith(f"/{key}")]
            if produced:
                artifacts[key] = produced[-1]
        if failures:
            return RunResult(ctx.run_id, "failed", metrics, artifacts, error="; ".join(failures))
        return RunResult(ctx.run_id, "completed", metrics, artifacts)
