"""Searches whose arms are the objective itself: the real ``Search`` (proposer, validation, journal,
ledger, promotion), with each arm scored by calling the function the mock arm would compute."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evsys_sdk.builtins.mock_landscape import landscape
from evsys_sdk.search.engine import Search
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.spec.results import ArmResult
from evsys_sdk.testing import search as kit
from evsys_sdk.tracking.store import LocalStore

Objective = Callable[[dict[str, Any], int], float]


class InstantSearch(Search):
    """``Search`` with every arm replaced by ``objective(params, seed)``."""

    objective: Objective

    def _experiment(
        self, executor: Any, cfg: ExperimentConfig, *, resume: bool, stop_at: dict[str, int] | None = None
    ) -> list[ArmResult]:
        arms = []
        for run in cfg.all_runs():
            for seed in cfg.repeat_seeds(run):
                params = {**run.algorithm.params, "seed": seed}
                grouped = cfg.n_repeats > 1
                arms.append(
                    ArmResult(
                        name=f"{run.name}__s{seed}" if grouped else run.name,
                        run_config=run,
                        status="completed",
                        metrics={"score": self.objective(params, seed)},
                        train_seconds=0.0,
                        group_name=run.name if grouped else None,
                    )
                )
        return arms


def run_search(config: dict[str, Any], objective: Objective, cls: type[InstantSearch] = InstantSearch) -> Search:
    with tempfile.TemporaryDirectory() as tmp:
        config = {**config, "output_dir": str(Path(tmp) / "out")}
        search = cls(ExperimentConfig.model_validate(config), store=LocalStore(Path(tmp) / "db"))
        search.objective = objective
        search.run()
        return search


def mock_objective(params: dict[str, Any], seed: int) -> float:
    return landscape(params, seed)


def synthetic_objective(params: dict[str, Any], seed: int) -> float:
    return kit.score(kit.SyntheticConfig(**params))


__all__ = ["InstantSearch", "mock_objective", "run_search", "synthetic_objective"]
