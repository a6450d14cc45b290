"""Recorded experiments read back from the tracking store as the ``ExperimentResult`` a run returned.

``evsys runs show`` (text and ``--json``) reads through here, so a stored experiment is summarized by
the same code as a live one: arms with their evals, seeded groups, baselines, the continual matrix.
Baselines are stored as runs of kind ``baseline`` (one per model, an eval per benchmark) beside the arms.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from evsys_sdk.base.errors import EvsysError, did_you_mean
from evsys_sdk.spec.config import AlgorithmConfig, ModelConfig, RunConfig
from evsys_sdk.spec.results import ArmResult, EvalResult, ExperimentResult
from evsys_sdk.tracking.store import LocalStore, workspace_root

BASELINE_KIND = "baseline"  # the recipe_kind of a stored baseline's run

__all__ = ["BASELINE_KIND", "find_experiment", "load_result", "open_store", "stored_record"]


def open_store(workspace: str | os.PathLike[str] | None = None) -> LocalStore:
    """The store ``evsys run`` records into: ``<workspace>/evsys.db``, the workspace as ``workspace_root``
    finds it (``workspace``, else ``$EVSYS_WORKSPACE``, else the project's ``.evsys``). Nothing recorded
    there yet is an EvsysError saying how to record something."""
    path = workspace_root(workspace) / "evsys.db"
    if not path.exists():
        raise EvsysError(f"no experiments recorded yet ({path} does not exist); run one with `evsys run CONFIG`")
    return LocalStore(path)


def find_experiment(store: Any, name_or_id: str) -> dict[str, Any]:
    """The recorded experiment (a search is one too) with this id, else the newest with this name; an
    EvsysError with a did-you-mean when there is none."""
    found: dict[str, Any] | None = store.find_experiment(name_or_id)
    if found is None:
        names = sorted({e["name"] for e in store.list_experiments()})
        raise EvsysError(f"no experiment named or with id '{name_or_id}'{did_you_mean(name_or_id, names)}")
    return found


def _eval(row: dict[str, Any]) -> EvalResult:
    return EvalResult(
        name=row.get("name") or "benchmark",
        benchmark_id=row.get("benchmark_id"),
        metrics=dict(row.get("metrics") or {}),
        breakdowns=dict(row.get("breakdowns") or {}),
        step=row.get("step"),
        tags=list(row.get("tags") or []),
    )


def _stage(run_config: RunConfig) -> int | None:
    if "continual" not in run_config.tags:
        return None
    return next((int(t[6:]) for t in run_config.tags if t.startswith("stage:") and t[6:].isdigit()), None)


def _run_config(run: dict[str, Any]) -> RunConfig:
    """The run's config; a run recorded outside an ``Experiment`` (``ExperimentRun`` with a config of
    its own), or read without its config (the dashboard's arm rows carry only its ``tags``), gets a
    stand-in with its recipe, seed and tags."""
    try:
        return RunConfig.model_validate(run.get("run_config"))
    except ValidationError:
        name = str(run.get("name") or run["id"])
        kind = str(run.get("recipe_kind") or "unknown")
        seed = run["seed"] if isinstance(run.get("seed"), int) else 42
        tags = [str(t) for t in run["tags"]] if isinstance(run.get("tags"), list) else []
        return RunConfig(
            name=name, model=ModelConfig(name="?"), algorithm=AlgorithmConfig(kind=kind), seed=seed, tags=tags
        )


def _arm(run: dict[str, Any], evals: list[EvalResult]) -> ArmResult:
    run_config = _run_config(run)
    arm = ArmResult(
        name=run.get("name") or run_config.name,
        run_config=run_config,
        status=run["status"],
        metrics=dict(run.get("metrics") or {}),
        evals=evals,
        run_id=run["id"],
        error=run.get("error_message"),
        group_id=run.get("group_id"),
        group_name=run.get("group_name"),
        stage=_stage(run_config),
    )
    arm.set_primary()
    return arm


def load_result(store: Any, experiment: dict[str, Any]) -> ExperimentResult:
    """The stored ``experiment`` row (``find_experiment``) with its runs and evals, as a result."""
    from evsys_sdk.tracking.conclusions import Expectation, best_of

    meta = (experiment.get("config") or {}).get("metadata") or {}
    metric = meta.get("success_metric")
    arms: list[ArmResult] = []
    baselines: list[EvalResult] = []
    for run in store.experiment_runs(experiment["id"]):
        evals = [_eval(e) for e in store.run_evals(run["id"])]
        if run.get("recipe_kind") == BASELINE_KIND:
            baselines += evals
        else:
            arms.append(_arm(run, evals))
    try:
        expect = Expectation.from_metadata(meta)
    except Exception:  # a record from before metadata.expect was checked: judge without it
        expect = None
    best, best_group = best_of(arms, metric, expect) if metric else (None, None)
    return ExperimentResult(
        name=experiment["name"],
        status=experiment["status"],
        arms=arms,
        best_arm=best,
        best_score=experiment.get("best_score"),
        conclusion=experiment.get("conclusion") or "",
        experiment_id=experiment["id"],
        hypothesis=experiment.get("hypothesis"),
        success_metric=metric,
        baselines=baselines,
        best_group=best_group,
    )


def stored_record(store: Any, experiment: dict[str, Any]) -> dict[str, Any]:
    """``evsys runs show --json``: the whole record, the experiment's config and dates included."""
    record = load_result(store, experiment).to_json()
    extra = experiment.get("extra") or {}
    record["experiment"].update(
        config=experiment.get("config"),
        tags=experiment.get("tags"),
        created_at=experiment.get("created_at"),
        updated_at=experiment.get("updated_at"),
        **{k: v for k, v in extra.items() if k not in record["experiment"]},
    )
    return record
