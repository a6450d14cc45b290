"""Multi-fidelity rungs (``search.fidelity``): asynchronous successive halving (ASHA) over candidates.

A candidate is run as jobs, one per rung it reaches: the job to rung ``k`` trains the candidate's recipe
on its whole schedule (its steps, learning-rate schedule and seeds unchanged) and stops it once its
in-loop validation has scored the rung's step; the job to the last rung is the whole run. A promoted
candidate trains again from the start rather than from a checkpoint: its first steps are then exactly
the ones its earlier job ran (same recipe, same seed), so its score at the next rung is the score an
uninterrupted run has there, whatever the backend, and the budget is charged every step that ran
(``spent.train_steps``), the repeated ones included.

The promotion rule is ASHA's: a candidate at rung ``k`` goes on once it is among the top
``floor(n / reduction)`` of the ``n`` results at rung ``k`` so far (no waiting for a rung to fill; the
highest rung first), decided the moment a job ends; the places left go to new candidates. When the
budget buys no new candidate, no job is in flight and no rung has a promotion left, the best candidate
of the highest rung reached goes on, so the search always ends with a candidate scored on the whole
run. A candidate left at a lower rung is ``stopped at rung N`` (N: the rung's step), with its scores
there. Every decision is made from the candidates' recorded rung results, so a resumed search makes
the same ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.spec.search import FidelitySpec

if TYPE_CHECKING:
    from evsys_sdk.search.engine import Candidate
    from evsys_sdk.spec.config import ExperimentConfig, RunConfig
    from evsys_sdk.spec.problems import Problem

__all__ = ["fidelity_problems", "job_name", "promotions", "rung_metric", "rung_scores", "stopped_message"]


def job_name(cid: str, fidelity: FidelitySpec, rung: int) -> str:
    """The run name of a candidate's job to ``rung`` (an index): ``c0003@50``, the last rung ``c0003``."""
    return cid if rung == len(fidelity.rungs) - 1 else f"{cid}@{fidelity.rungs[rung]}"


def stopped_message(fidelity: FidelitySpec, rung: int) -> str:
    return f"stopped at rung {fidelity.rungs[rung]}"


def rung_metric(cfg: ExperimentConfig) -> tuple[str, str] | None:
    """The in-loop benchmark and metric ``metadata.success_metric`` names (``NAME.METRIC``), or None."""
    from evsys_sdk.orchestration.experiment import benchmark_specs

    metric = cfg.metadata.get("success_metric")
    if not isinstance(metric, str):
        return None
    for i, spec in enumerate(benchmark_specs(cfg.metadata.get("benchmark"))):
        name = spec.label(i)
        if spec.run_every and metric.startswith(name + ".") and len(metric) > len(name) + 1:
            return name, metric[len(name) + 1 :]
    return None


def static_steps(run: RunConfig) -> int | None:
    """The run's training steps when its params fix them (``max_steps``, ``num_steps``), else None."""
    params = run.algorithm.params
    for key in ("max_steps", "num_steps"):
        if isinstance(params.get(key), int):
            return int(params[key])
    return None


def fidelity_problems(cfg: ExperimentConfig, fidelity: FidelitySpec) -> list[Problem]:
    """What makes the rungs unusable, found before any arm starts."""
    from evsys_sdk.orchestration.experiment import benchmark_specs

    where = ("search", "fidelity", "rungs")
    found = rung_metric(cfg)
    if found is None:
        in_loop = [s.label(i) for i, s in enumerate(benchmark_specs(cfg.metadata.get("benchmark"))) if s.run_every]
        example = f"{in_loop[0]}.exact_match" if in_loop else "val.exact_match"
        need = "" if in_loop else " (add one with run_every to metadata.benchmark)"
        return [
            (
                ("metadata", "success_metric"),
                "search.fidelity compares the live score at each rung: success_metric must name an in-loop "
                f"benchmark's metric as NAME.METRIC{need}, e.g. {example} (got {cfg.metadata.get('success_metric')!r})",
            )
        ]
    name, _ = found
    specs = benchmark_specs(cfg.metadata.get("benchmark"))
    every = next(s.run_every for i, s in enumerate(specs) if s.label(i) == name)
    assert every is not None
    problems: list[Problem] = []
    off = [r for r in fidelity.rungs if r % every]
    if off:
        problems.append(
            (where, f"rung {off[0]} is not a multiple of benchmark '{name}'s run_every {every}: no score at that step")
        )
    assert cfg.run is not None
    steps = static_steps(cfg.run)
    if steps is not None and fidelity.rungs[-1] > steps:
        problems.append((where, f"the last rung {fidelity.rungs[-1]} is beyond the run's {steps} steps"))
    if cfg.run.algorithm.kind == "combo":
        problems.append((where, "a combo's phases count their own steps: rungs need one training loop"))
    return problems


def promotions(
    candidates: list[Candidate], fidelity: FidelitySpec, *, maximize: bool, limit: int, finishing: bool
) -> list[tuple[Candidate, int]]:
    """Up to ``limit`` (candidate, next rung) jobs by ASHA's rule, highest rung first. ``finishing``: the
    budget buys no new candidate, so without an ASHA promotion the best of the highest rung reached goes
    on (until one candidate has the whole run)."""
    top = len(fidelity.rungs) - 1
    out: list[tuple[Candidate, int]] = []
    for rung in range(top - 1, -1, -1):
        ranked = _ranked(candidates, fidelity.rungs[rung], maximize)
        for c in ranked[: len(ranked) // fidelity.reduction]:
            if len(out) < limit and c.status == "stopped" and c.rung == rung:
                out.append((c, rung + 1))
    if out or not finishing or any(c.status == "scored" for c in candidates):
        return out
    for rung in range(top - 1, -1, -1):
        ranked = _ranked(candidates, fidelity.rungs[rung], maximize)
        waiting = [c for c in ranked if c.status == "stopped" and c.rung == rung]
        if waiting:
            return [(waiting[0], rung + 1)][:limit]
    return []


def _ranked(candidates: list[Candidate], step: int, maximize: bool) -> list[Candidate]:
    """The candidates with a result at the rung of ``step``, best first (ties: the earlier proposed)."""
    scored = [(c.rung_means[step], i, c) for i, c in enumerate(candidates) if step in c.rung_means]
    scored.sort(key=lambda t: (-t[0] if maximize else t[0], t[1]))
    return [c for _, _, c in scored]


def rung_scores(arms: list[Any], fidelity: FidelitySpec, rung: int, metric: tuple[str, str]) -> list[float | None]:
    """Each stopped arm's live score at the rung's step (None: it scored none there)."""
    name, key = metric
    out: list[float | None] = []
    for arm in arms:
        e = arm.eval(name, step=fidelity.rungs[rung])
        out.append(float(e.metrics[key]) if e is not None and key in e.metrics else None)
    return out
