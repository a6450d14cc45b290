"""Synthetic objectives with known optima for testing and benchmarking searches (``evsys evolve``).

This module is a hooks module: add it to a plugin host (``host.add_plugin(search_kit, "search_kit")``)
and it registers the algorithm ``synthetic``, whose arms train nothing and report ``score`` = minus
the regret of their params against a known optimum, plus seed noise of ``noise`` standard deviations.
``objective`` picks the landscape: ``bowl`` (smooth: one optimum, every axis matters) or ``ridge``
(a narrow curved valley with a decoy plateau). Each arm appends ``start``/``end`` lines to ``arm_log``
(when given), so a test can count the arms that ran and check none ran twice; ``kill_at_arm`` SIGKILLs
the process running the arms once, as a crash would. It also registers the executor ``ordered``: every
arm submitted is in flight at once and they end in a fixed order (the smallest value of the algorithm
param ``by`` first, then by name), so a test of an asynchronous search (``search.parallel > 1``) controls
the order jobs end, the same on every run and on every resume.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from evsys_sdk.orchestration.executors import Executor
from evsys_sdk.plugins.hookspecs import hookimpl
from evsys_sdk.spec.config import StrictModel

if TYPE_CHECKING:
    from evsys_sdk.orchestration.arm import ArmTask
    from evsys_sdk.tracking.store import LocalStore

__all__ = [
    "OPTIMUM",
    "OrderedExecutor",
    "SyntheticAlgorithm",
    "SyntheticConfig",
    "crashed_copies",
    "experiment",
    "landscape_experiment",
    "regret",
    "score",
]

# The optimum of both objectives; ``regret(params) == 0`` there.
OPTIMUM_X, OPTIMUM_LR, OPTIMUM_DEPTH = 1.5, 1e-3, 5
OPTIMUM: dict[str, Any] = {"x": OPTIMUM_X, "learning_rate": OPTIMUM_LR, "depth": OPTIMUM_DEPTH, "activation": "gelu"}
_ACTIVATION = {"relu": 0.3, "gelu": 0.0, "tanh": 0.6, "sigmoid": 1.0}


def experiment(output_dir: str | Path, search: dict[str, Any], *, n_repeats: int = 1) -> dict[str, Any]:
    """An experiment config searching the synthetic ``bowl`` with the ``search`` block given
    (``metadata.success_metric`` is ``score``)."""
    return {
        "name": "evo",
        "output_dir": str(output_dir),
        "n_repeats": n_repeats,
        "base_seed": 0,
        "metadata": {"success_metric": "score"},
        "run": {
            "name": "syn",
            "data": {"source_kind": "in_memory", "rows": [{"q": 1}]},
            "model": {"name": "none"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": "synthetic", "params": {"objective": "bowl"}},
        },
        "search": search,
    }


def regret(objective: str, x: float, learning_rate: float, depth: int, activation: str) -> float:
    """How far below the optimum (0) these params score on ``objective``."""
    lr = math.log10(learning_rate) - math.log10(OPTIMUM_LR)
    if objective == "bowl":
        return (x - OPTIMUM_X) ** 2 / 4 + lr**2 + (depth - OPTIMUM_DEPTH) ** 2 / 8 + _ACTIVATION[activation]
    # ridge: the best x moves with the learning rate (a curved valley); far from it sits a flat plateau.
    valley = (x - OPTIMUM_X - 0.8 * lr) ** 2 * 4 + lr**2 / 2
    return min(valley, 2.5) + abs(depth - OPTIMUM_DEPTH) / 4 + _ACTIVATION[activation]


class SyntheticConfig(StrictModel):
    objective: Literal["bowl", "ridge"] = "bowl"
    noise: float = Field(default=0.0, ge=0, le=10, description="seed noise, standard deviation of the score")
    x: float = Field(default=-2.0, ge=-5, le=5)
    learning_rate: float = Field(default=1e-5, gt=0, le=1)
    depth: int = Field(default=1, ge=1, le=12)
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = "sigmoid"
    seed: int = 0
    arm_log: str | None = Field(default=None, description="append start/end lines of each arm here")
    kill_at_arm: int | None = Field(
        default=None, description="SIGKILL this process once, at the start of an arm, when this many arms ended"
    )


def score(c: SyntheticConfig) -> float:
    """What an arm with these params reports: -regret, plus seed noise when ``noise`` is set (half of it
    shared by every recipe on the seed, like its data order, half the recipe's own)."""
    value = -regret(c.objective, c.x, c.learning_rate, c.depth, c.activation)
    if c.noise:
        shared = random.Random(f"noise:{c.seed}").gauss(0, c.noise)
        own = random.Random(f"noise:{c.seed}:{c.x}:{c.learning_rate}:{c.depth}:{c.activation}").gauss(0, c.noise)
        value += (shared + own) / math.sqrt(2)
    return value


class SyntheticAlgorithm:
    """Reports ``score`` = -regret + noise; no model, no steps."""

    name: ClassVar[str] = "synthetic"
    Config: ClassVar[type[SyntheticConfig]] = SyntheticConfig

    def __init__(self, **params: Any) -> None:
        self.config = SyntheticConfig(**params)

    def train(self, ctx: Any) -> Any:
        from evsys_sdk.spec.protocols import RunResult

        c = self.config
        if c.kill_at_arm is not None and c.arm_log is not None and self._ended() == c.kill_at_arm:
            marker = Path(c.arm_log + ".killed")
            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), 9)
        self._log(f"start {ctx.run_config.name}")
        value = score(c)
        self._log(f"end {ctx.run_config.name}")
        return RunResult(ctx.run_id, "completed", metrics={"score": value, "total_steps": 1.0})

    def _log(self, line: str) -> None:
        if self.config.arm_log is not None:
            with open(self.config.arm_log, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def _ended(self) -> int:
        path = Path(self.config.arm_log or "")
        return sum(1 for x in path.read_text().splitlines() if x.startswith("end ")) if path.is_file() else 0


@dataclass(eq=False)
class _Held:
    task: ArmTask
    store: Any


class OrderedExecutor(Executor):
    """In the driver, every arm in flight; ``wait`` runs and returns the one that ends first by the fixed
    order: the smallest ``algorithm.params[by]``, ties by run name (a job to a later rung after)."""

    name: ClassVar[str] = "ordered"
    in_process: ClassVar[bool] = True

    class Config(Executor.Config):
        by: str = Field(description="the algorithm param whose smallest value ends first")

    config: Config

    @property
    def slots(self) -> int:
        return 10**6

    def submit(self, task: ArmTask, *, store: Any = None, progress: Any = None) -> Any:
        return _Held(task, store)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any]]:
        from evsys_sdk.orchestration.arm import run_arm

        def key(handle: _Held) -> tuple[Any, int, str]:
            task = handle.task
            stop = task.experiment.stop_at.get(task.group_name or task.name, 10**9)
            return task.run.algorithm.params[self.config.by], stop, task.name

        handle = min(handles, key=key)
        outcome: Any
        try:
            outcome = run_arm(handle.task, store=handle.store)
        except Exception as exc:
            outcome = exc
        return [(handle, outcome)]


@hookimpl
def evsys_register_algorithms(registry: Any) -> None:
    registry.add(SyntheticAlgorithm)


@hookimpl
def evsys_register_executors(registry: Any) -> None:
    registry.add(OrderedExecutor)


def landscape_experiment(
    folder: str | Path,
    search: dict[str, Any],
    *,
    steps: int = 200,
    run_every: int = 10,
    n_rows: int = 60,
    n_repeats: int = 1,
) -> dict[str, Any]:
    """An experiment config searching the mock backend's landscape (``evsys_sdk.builtins.mock_landscape``)
    with the ``search`` block given: SFT of ``steps`` steps on ``n_rows`` question rows, scored live every
    ``run_every`` steps on the same rows (the benchmark ``val``, written into ``folder``); the objective
    is ``val.pass_rate``, the share of rows the mock model recalls, about its skill at the run's end."""
    import json

    bench = Path(folder) / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "task_id": f"q{i}",
            "instruction": f"q{i}",
            "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": f"a{i}"},
        }
        for i in range(n_rows)
    ]
    (bench / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (bench / "metadata.yaml").write_text("name: val\n", encoding="utf-8")
    return {
        "name": "landscape",
        "output_dir": str(Path(folder) / "out"),
        "n_repeats": n_repeats,
        "base_seed": 0,
        "metadata": {
            "success_metric": "val.pass_rate",
            "benchmark": [{"name": "val", "path": str(bench), "run_every": run_every}],
        },
        "run": {
            "name": "sft",
            "data": {"source_kind": "in_memory", "rows": rows},
            "model": {"name": "tiny"},
            "backend": {"kind": "mock"},
            "algorithm": {
                "kind": "sft",
                "params": {"max_steps": steps, "batch_size": 1, "learning_rate": 1e-5, "lora_rank": 4},
            },
        },
        "search": search,
    }


def crashed_copies(full_db: Path, work: Path, *, every: int = 1) -> Iterator[tuple[int, LocalStore]]:
    """The finished search recorded in ``full_db`` as a crash at each point could have left it: a copy of
    the store whose journal keeps only its first ``k`` events, for every ``k`` between two appends (one
    transaction each, so their events share ``created_at``; a crash keeps whole appends), or every
    ``every``-th of them. Yields ``(k, store)``; a test resumes each and compares with the full search."""
    from evsys_sdk.tracking.store import LocalStore

    stamps = [r["created_at"] for r in LocalStore(full_db).query("SELECT created_at FROM search_events ORDER BY seq")]
    cuts = [k for k in range(1, len(stamps)) if stamps[k] != stamps[k - 1]]
    assert len(cuts) >= 8, f"only {len(cuts)} crash points: the search is too small to test resume"
    for k in cuts[::every]:
        path = work / f"crash{k}.db"
        with sqlite3.connect(full_db) as src, sqlite3.connect(path) as dst:
            src.backup(dst)  # the WAL's pages included
        db = LocalStore(path)
        db.query("DELETE FROM search_events WHERE seq >= ?", (k,))
        yield k, db
