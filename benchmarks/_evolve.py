"""Searches whose arms are the objective itself: the real ``Search`` (proposer, validation, journal,
ledger, promotion), with each arm scored by calling the function the mock arm would compute."""

from __future__ import annotations

import heapq
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evsys_sdk.builtins.mock_landscape import landscape
from evsys_sdk.orchestration.experiment import Feed
from evsys_sdk.search.engine import Search
from evsys_sdk.spec.config import ExperimentConfig, RunConfig
from evsys_sdk.spec.results import ArmResult
from evsys_sdk.testing import search as kit
from evsys_sdk.tracking.store import LocalStore

Objective = Callable[[dict[str, Any], int], float]


class InstantSearch(Search):
    """``Search`` with every arm replaced by ``objective(params, seed)``. Jobs end in virtual time: a job
    takes ``duration(run, stop)`` from when it is dispatched (0 by default: in dispatch order), and
    ``wall`` is when the last one ended; the search refills places as they end, as with a real executor."""

    objective: Objective
    wall: float = 0.0

    def duration(self, run: RunConfig, stop: int | None) -> float:
        return 0.0

    def arms(self, cfg: ExperimentConfig, run: RunConfig, stop: int | None) -> list[ArmResult]:
        arms = []
        for seed in cfg.repeat_seeds(run):
            params = {**run.algorithm.params, "seed": seed}
            grouped = cfg.n_repeats > 1
            arms.append(
                ArmResult(
                    name=f"{run.name}__s{seed}" if grouped else run.name,
                    run_config=run.model_copy(update={"seed": seed}),
                    status="completed",
                    metrics={"score": self.objective(params, seed)},
                    train_seconds=0.0,
                    group_name=run.name if grouped else None,
                )
            )
        return arms

    def _experiment(
        self,
        executor: Any,
        cfg: ExperimentConfig,
        *,
        resume: bool,
        stop_at: dict[str, int] | None = None,
        feed: Feed | None = None,
    ) -> list[ArmResult]:
        stops, order = dict(stop_at or {}), itertools.count()
        running: list[tuple[float, int, RunConfig]] = []

        def dispatch(run: RunConfig, now: float) -> None:
            heapq.heappush(running, (now + self.duration(run, stops.get(run.name)), next(order), run))

        for run in cfg.all_runs():
            dispatch(run, self.wall)
        out = []
        while running:
            self.wall, _, run = heapq.heappop(running)
            for arm in self.arms(cfg, run, stops.get(run.name)):
                out.append(arm)
                for new, stop in feed(arm) if feed is not None else []:
                    if stop is not None:
                        stops[new.name] = stop
                    dispatch(new, self.wall)
        return out


class Synchronous:
    """Mixed in before a ``Search``: generation-synchronous, the way evsys searched before places were
    refilled as jobs end: no job starts until every job in flight has ended, then a whole generation."""

    def _refill(self) -> list[Any]:
        return [] if self.state.inflight else super()._refill()  # type: ignore[misc]


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


__all__ = ["InstantSearch", "Synchronous", "mock_objective", "run_search", "synthetic_objective"]
