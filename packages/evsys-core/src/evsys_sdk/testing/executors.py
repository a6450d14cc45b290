"""Testing an executor: algorithms whose arms kill their own process or interrupt the driver, and small
experiments on the mock backend to run under the executor and under ``sequential``.

This module is also the hooks module that registers the test algorithms: ``crash`` (the arm's process
ends without returning, as under the OOM killer), ``interrupt_once`` (the arm sends SIGINT to the driver,
as Ctrl-C would) and ``stall`` (the arm logs a step, then hangs without checking its time budget, so
only an executor's hard kill stops it). Register it on the driver's plugin host and list it in the executor's
``plugins`` param, so every worker loads it by name::

    from evsys_sdk.testing import executors as kit

    @pytest.fixture
    def host(plugin_host):
        return kit.add_executor_test_plugin(plugin_host)

    def test_a_crashing_arm_fails_alone(tmp_path, host):
        runs = [kit.mock_run("a"), kit.crash_run("dies"), kit.mock_run("b")]
        config = kit.executor_experiment(tmp_path / "out", kit.executor_config("my_executor"), runs=runs)
        result = Experiment(load_yaml(config)).run()
        assert [a.status for a in result.arms] == ["completed", "failed", "completed"]

``kit.run_beside_sequential`` runs one experiment under ``sequential`` and under your executor, and
``comparable_arms``, ``recorded_runs`` and ``events_by_arm`` give what should be equal between the two.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from evsys_sdk.plugins.hookspecs import hookimpl
from evsys_sdk.spec.config import StrictModel

if TYPE_CHECKING:
    from evsys_sdk.plugins.host import PluginHost
    from evsys_sdk.spec.protocols import RunContext, RunResult
    from evsys_sdk.spec.results import ExperimentResult
    from evsys_sdk.tracking.store import LocalStore

__all__ = [
    "EXECUTOR_TEST_PLUGIN",
    "CrashAlgorithm",
    "ExecutorRun",
    "InterruptOnceAlgorithm",
    "StallAlgorithm",
    "add_executor_test_plugin",
    "callback_events",
    "comparable_arms",
    "continual_fields",
    "crash_run",
    "default_sigint",
    "events_by_arm",
    "executor_config",
    "executor_experiment",
    "interrupt_once_run",
    "interruptible",
    "mock_run",
    "qa_tasks",
    "recorded_runs",
    "run_beside_sequential",
    "stall_run",
    "write_qa_benchmark",
]

# The plugin's name and the module workers import: list it in ``executor.params.plugins``.
EXECUTOR_TEST_PLUGIN = __name__


# --- the test algorithms ------------------------------------------------------------------------------


class CrashAlgorithm:
    """Ends its own process without returning: SIGKILL (what the OOM killer sends) or ``os._exit(3)``."""

    name: ClassVar[str] = "crash"

    class Config(StrictModel):
        how: Literal["exit", "kill"] = "kill"

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        if self.config.how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class InterruptOnceAlgorithm:
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
            from evsys_sdk.builtins.mock import MockSFT

            return MockSFT(max_steps=2).train(ctx)
        marker.touch()
        os.kill(self.config.driver_pid, signal.SIGINT)
        time.sleep(600)  # the driver stops this arm (its process or task) when it handles the interrupt
        raise AssertionError("the driver did not cancel this arm")


class StallAlgorithm:
    """Logs ``train/loss`` at step 1, then sleeps without ever calling ``ctx.check_budget()``: a stuck
    library call, which only the executor's kill past ``run.max_seconds`` stops."""

    name: ClassVar[str] = "stall"

    class Config(StrictModel):
        seconds: float = 600.0

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        ctx.log_store.log_metrics({"train/loss": 1.5}, 1)
        time.sleep(self.config.seconds)
        raise AssertionError("the executor did not stop this arm")


@hookimpl
def evsys_register_algorithms(registry: Any) -> None:
    registry.add(CrashAlgorithm)
    registry.add(InterruptOnceAlgorithm)
    registry.add(StallAlgorithm)


def add_executor_test_plugin(host: PluginHost) -> PluginHost:
    """Registers the test algorithms on the driver's ``host`` under the name workers load them by."""
    host.add_plugin(sys.modules[__name__], EXECUTOR_TEST_PLUGIN)
    return host


# --- configs ------------------------------------------------------------------------------------------


def qa_tasks() -> list[dict[str, Any]]:
    """Eight benchmark tasks ``q0..q7`` whose answers ``a0..a7`` are checked by exact match."""
    return [
        {
            "task_id": f"q{i}",
            "instruction": f"q{i}",
            "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": f"a{i}"},
        }
        for i in range(8)
    ]


def write_qa_benchmark(folder: str | Path) -> Path:
    """Creates ``folder`` holding the ``qa_tasks`` as a benchmark (``tasks.jsonl``) and returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks()))
    return folder


def mock_run(name: str, algorithm: str = "sft", **params: Any) -> dict[str, Any]:
    """A run of ``algorithm`` on the mock backend over six of the ``qa_tasks`` (``sft``: 2 epochs of
    batches of 2, unless ``params`` say otherwise)."""
    base = {"batch_size": 2, "num_epochs": 2} if algorithm == "sft" else {}
    return {
        "name": name,
        "model": {"name": "tiny"},
        "backend": {"kind": "mock"},
        "data": {"source_kind": "in_memory", "rows": qa_tasks()[:6]},
        "algorithm": {"kind": algorithm, "params": {**base, **params}},
    }


def crash_run(name: str, how: Literal["exit", "kill"] = "kill") -> dict[str, Any]:
    """A run whose arm kills its own process: SIGKILL, or ``os._exit(3)`` with ``how="exit"``."""
    return mock_run(name, CrashAlgorithm.name, how=how)


def interrupt_once_run(name: str, marker: str | Path) -> dict[str, Any]:
    """A run whose arm interrupts this (the driver's) process, unless the file ``marker`` exists, which
    it creates; run again, say on resume, it completes. Run it inside ``interruptible()``."""
    return mock_run(name, InterruptOnceAlgorithm.name, driver_pid=os.getpid(), marker=str(marker))


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in this process for the block, as Ctrl-C does in a terminal, even
    when the tests were started with SIGINT ignored (``nohup nox &``, which every child inherits)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def default_sigint() -> None:
    """A ``preexec_fn`` for a child process that a test interrupts: SIGINT back to its default, so the
    child's Python turns it into KeyboardInterrupt even when this process ignores SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stall_run(name: str, max_seconds: float) -> dict[str, Any]:
    """A run whose arm hangs past its ``max_seconds`` budget without checking it (see ``StallAlgorithm``)."""
    return {**mock_run(name, StallAlgorithm.name), "max_seconds": max_seconds}


def executor_config(kind: str, **params: Any) -> dict[str, Any]:
    """The ``executor`` block for ``kind``, its workers loading the test algorithms."""
    return {"kind": kind, "params": {"plugins": [EXECUTOR_TEST_PLUGIN], **params}}


def executor_experiment(output_dir: str | Path, executor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An ExperimentConfig dict running under ``executor`` and writing the callback events to
    ``<output_dir>/events.jsonl``; ``fields`` add the rest (``runs``, ``n_repeats``, ``metadata``...)."""
    return {
        "name": "exp",
        "output_dir": str(output_dir),
        "executor": executor,
        "callbacks": [{"kind": "jsonl"}],
        **fields,
    }


def continual_fields(benchmark_dir: str | Path) -> dict[str, Any]:
    """Experiment fields for two seeded continual chains of two stages each (``cl_stage0`` then
    ``cl_stage1``, seeds 42 and 43), scored on the QA benchmark at ``benchmark_dir``."""
    return {
        "run": {k: v for k, v in mock_run("cl").items() if k != "data"},
        "continual": {
            "datasets": [
                {"source_kind": "in_memory", "rows": qa_tasks()[:4]},
                {"source_kind": "in_memory", "rows": qa_tasks()[4:]},
            ]
        },
        "n_repeats": 2,
        "metadata": {"benchmark": {"name": "qa", "path": str(benchmark_dir)}},
    }


# --- comparing outcomes -------------------------------------------------------------------------------


class ExecutorRun(NamedTuple):
    """One experiment's outcome: its result, its output dir and the store it recorded into."""

    result: ExperimentResult
    output_dir: Path
    store: LocalStore


def run_beside_sequential(
    folder: str | Path, executor: dict[str, Any], **fields: Any
) -> tuple[ExecutorRun, ExecutorRun]:
    """The same experiment (``executor_experiment`` with ``fields``) under ``sequential`` and
    under ``executor``, each with its own output dir and store below ``folder``."""
    from evsys_sdk.loading.yaml_loader import load_yaml
    from evsys_sdk.orchestration.experiment import Experiment
    from evsys_sdk.tracking.store import LocalStore

    folder = Path(folder)
    outcomes = []
    for label, block in (("sequential", {"kind": "sequential"}), (str(executor["kind"]), executor)):
        out = folder / label
        store = LocalStore(folder / f"{label}.db")
        result = Experiment(load_yaml(executor_experiment(out, block, **fields)), store=store).run()
        outcomes.append(ExecutorRun(result, out, store))
    return outcomes[0], outcomes[1]


def comparable_arms(result: ExperimentResult, output_dir: str | Path) -> list[dict[str, Any]]:
    """Every arm as JSON with its output dir and timings taken out, to compare two executors' arms."""
    arms = []
    for arm in result.arms:
        data = arm.to_json()
        for key in ("train_seconds", "eval_seconds", "run_id", "group_id"):
            data.pop(key)
        for e in data["evals"]:
            e.pop("eval_seconds")
        arms.append(json.loads(json.dumps(data).replace(str(output_dir), "<out>")))
    return arms


def recorded_runs(store: LocalStore) -> list[tuple[Any, ...]]:
    """The first experiment's recorded runs, sorted by name: ``(name, status, group_name, metrics as
    JSON, error_message)`` (arms in flight together are recorded in the order they were submitted)."""
    exp = store.list_experiments()[0]
    return sorted(
        (r["name"], r["status"], r["group_name"], json.dumps(r["metrics"], sort_keys=True), r["error_message"])
        for r in store.experiment_runs(exp["id"])
    )


def _event_rows(output_dir: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(output_dir) / "events.jsonl").read_text().splitlines()]


def callback_events(output_dir: str | Path) -> list[tuple[str, Any]]:
    """The callback events in order, each with its arm or group (timestamps and paths dropped)."""
    return [(r["event"], r.get("arm") or r.get("group")) for r in _event_rows(output_dir)]


def events_by_arm(output_dir: str | Path) -> dict[str, list[str]]:
    """Each arm's callback events in order (an executor may interleave arms, never an arm's events)."""
    per_arm: dict[str, list[str]] = {}
    for r in _event_rows(output_dir):
        if r.get("arm"):
            per_arm.setdefault(r["arm"], []).append(r["event"])
    return per_arm
