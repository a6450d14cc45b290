"""What the search page shows, assembled from a search's records in the store.

``evsys evolve`` writes a summary of the search onto its experiment record after every generation (the
extra ``search``: candidates with lineage, patch, scores, mean and 95% CI, arm seconds; rejections; spend;
the space with its base values), through the ordinary experiment update, so a search recorded with
``--store dashboard`` and one recorded locally are read alike. The candidates' runs are the experiment's
runs, grouped by candidate id. Everything here is plain data: ``search_page`` draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from evsys_dashboard.server.db import ServerDB

SortKey = Literal["mean", "id", "generation", "n", "seconds"]
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class CandidateRow:
    """One candidate: ``ci95`` is (low, high) of its mean over ``n`` seeds; ``runs`` its seeds' runs."""

    id: str
    generation: int
    operator: str
    parents: list[str]
    status: str
    mean: float | None
    ci95: tuple[float, float] | None
    n: int
    seconds: float
    patch: dict[str, Any]
    error: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None  # with search.fidelity: "stopped at rung N"
    rungs: dict[int, tuple[float, int]] = field(default_factory=dict)  # rung step -> (mean, n) of its scores


@dataclass(frozen=True)
class Change:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Edge:
    """``parent`` -> ``child`` and the dotted paths the child changed; ``parent`` None is the base recipe."""

    parent: str | None
    child: str
    changes: list[Change]


@dataclass(frozen=True)
class BestPoint:
    """The best mean after ``evaluated`` candidates had finished, having spent ``seconds`` arm seconds."""

    evaluated: int
    seconds: float
    best: float
    best_id: str


@dataclass(frozen=True)
class ParamPoint:
    value: Any
    mean: float
    ci95: tuple[float, float] | None
    candidate: str


@dataclass
class SearchView:
    experiment: dict[str, Any]
    name: str
    metric: str
    direction: str
    proposer: str
    best: str | None
    space: dict[str, dict[str, Any]]
    budget: dict[str, Any]
    spent: dict[str, Any]
    confirm: dict[str, Any] | None
    candidates: list[CandidateRow]
    rejected: list[dict[str, Any]]
    omitted: int  # candidates left off a very large search's record (its oldest)
    best_so_far: list[BestPoint]
    edges: list[Edge]
    params: dict[str, list[ParamPoint]]

    @property
    def maximize(self) -> bool:
        return self.direction != "minimize"

    @property
    def n_rejected(self) -> int:
        """Every rejection (the record keeps the latest ones)."""
        return max(int(self.spent.get("rejected") or 0), len(self.rejected))


def search_record(experiment: dict[str, Any] | None) -> dict[str, Any] | None:
    """The search summary on an experiment record, or None for an experiment that is no search."""
    extra = (experiment or {}).get("extra")
    record = extra.get("search") if isinstance(extra, dict) else None
    return record if isinstance(record, dict) and isinstance(record.get("candidates"), list) else None


def search_view(db: ServerDB, experiment_id: str) -> SearchView | None:
    """The search recorded as this experiment, or None (no such experiment, or it is no search)."""
    experiment = db.experiment(experiment_id)
    record = search_record(experiment)
    if experiment is None or record is None:
        return None
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in db.arms(experiment_id):
        # a multi-fidelity job to an early rung is the group ``c0003@50``; the whole run ``c0003``
        candidate, _, rung = str(r.get("group_name") or "").partition("@")
        runs.setdefault(candidate, []).append(
            {"id": r["id"], "name": r.get("name"), "seed": r.get("seed"), "status": r.get("status"), "rung": rung}
        )
    return assemble(experiment, record, runs)


def assemble(
    experiment: dict[str, Any], record: dict[str, Any], runs: dict[str, list[dict[str, Any]]] | None = None
) -> SearchView:
    """The page's data from a search record (``runs``: candidate id -> its runs)."""
    space = {str(k): v for k, v in (record.get("space") or {}).items() if isinstance(v, dict)}
    candidates = [_row(c, (runs or {}).get(str(c.get("id")), [])) for c in record["candidates"] if isinstance(c, dict)]
    direction = str(record.get("direction") or "maximize")
    config = experiment.get("config") if isinstance(experiment.get("config"), dict) else {}
    proposer = ((config or {}).get("search") or {}).get("proposer") or {}
    return SearchView(
        experiment=experiment,
        name=str(record.get("name") or experiment.get("name")),
        metric=str(record.get("metric") or ""),
        direction=direction,
        proposer=str(proposer.get("kind") or "mutate") if isinstance(proposer, dict) else "-",
        best=record.get("best"),
        space=space,
        budget=dict(record.get("budget") or {}),
        spent=dict(record.get("spent") or {}),
        confirm=record.get("confirm") if isinstance(record.get("confirm"), dict) else None,
        candidates=candidates,
        rejected=[r for r in record.get("rejected") or [] if isinstance(r, dict)],
        omitted=int(record.get("omitted") or 0),
        best_so_far=best_so_far(candidates, maximize=direction != "minimize"),
        edges=lineage(candidates, {p: a.get("base") for p, a in space.items()}),
        params=param_points(candidates, list(space)),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _row(c: dict[str, Any], runs: list[dict[str, Any]]) -> CandidateRow:
    ci = c.get("ci95")
    low, high = (_number(ci[0]), _number(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
    scores = c.get("scores")
    mean = _number(c.get("mean"))
    return CandidateRow(
        id=str(c.get("id")),
        generation=int(_number(c.get("generation")) or 0),
        operator=str(c.get("operator") or "-"),
        parents=[str(p) for p in c.get("parents") or []],
        status=str(c.get("status") or "pending"),
        mean=mean if mean is not None and math.isfinite(mean) else None,
        ci95=(low, high) if low is not None and high is not None else None,
        n=len(scores) if isinstance(scores, list) else 0,
        seconds=_number(c.get("seconds")) or 0.0,
        patch=dict(c.get("patch") or {}),
        error=c.get("error"),
        runs=runs,
        message=c.get("message"),
        rungs=_rungs(c.get("rung_scores")),
    )


def _rungs(rung_scores: Any) -> dict[int, tuple[float, int]]:
    """Each rung's (mean, n) from the record's ``rung_scores`` ({step: [scores]})."""
    out = {}
    for step, scores in (rung_scores or {}).items() if isinstance(rung_scores, dict) else ():
        values = [v for v in (_number(x) for x in scores or []) if v is not None and math.isfinite(v)]
        if str(step).isdigit() and values:
            out[int(step)] = (math.fsum(values) / len(values), len(values))
    return dict(sorted(out.items()))


def better(a: float, b: float, *, maximize: bool) -> bool:
    return a > b if maximize else a < b


def best_so_far(candidates: list[CandidateRow], *, maximize: bool) -> list[BestPoint]:
    """After each finished candidate (proposal order, the order they are scored in): the best mean so far
    against the candidates evaluated and the arm seconds spent (failed candidates spend too)."""
    out: list[BestPoint] = []
    evaluated, seconds = 0, 0.0
    best: CandidateRow | None = None
    for c in candidates:
        if c.status == "pending":
            continue
        evaluated += 1
        seconds += c.seconds
        if c.mean is not None and (best is None or better(c.mean, best.mean or 0.0, maximize=maximize)):
            best = c
        if best is not None and best.mean is not None:
            out.append(BestPoint(evaluated, seconds, best.mean, best.id))
    return out


def diff(before: dict[str, Any], after: dict[str, Any], order: list[str]) -> list[Change]:
    """The dotted paths whose value differs, in ``order`` (the space's) and then the others."""
    paths = list(dict.fromkeys([*order, *before, *after]))
    return [
        Change(p, before.get(p), after.get(p))
        for p in paths
        if (p in before or p in after) and before.get(p) != after.get(p)
    ]


def lineage(candidates: list[CandidateRow], base: dict[str, Any]) -> list[Edge]:
    """One edge per parent of every candidate with the paths it changed from that parent; a candidate
    without a recorded parent descends from the base recipe (``base``: each axis's base value)."""
    by_id = {c.id: c for c in candidates}
    order = list(base)
    edges = []
    for c in candidates:
        parents = [p for p in c.parents if p in by_id]
        if not parents:
            edges.append(Edge(None, c.id, diff(base, c.patch, order)))
        for p in parents:
            edges.append(Edge(p, c.id, diff(by_id[p].patch, c.patch, order)))
    return edges


def param_points(candidates: list[CandidateRow], paths: list[str]) -> dict[str, list[ParamPoint]]:
    """For each searched path (the space's, then any other a patch sets): (value, mean) per scored candidate."""
    scored = [c for c in candidates if c.mean is not None]
    out: dict[str, list[ParamPoint]] = {}
    for path in dict.fromkeys([*paths, *(p for c in scored for p in c.patch)]):
        out[path] = [
            ParamPoint(c.patch[path], c.mean, c.ci95, c.id) for c in scored if path in c.patch and c.mean is not None
        ]
    return out


def sort_candidates(
    rows: list[CandidateRow], key: SortKey = "mean", order: Order | None = None, *, maximize: bool = True
) -> list[CandidateRow]:
    """``rows`` by ``key``; the default order puts the best mean (or the first id) first; candidates
    without a mean come last either way."""
    descending = (order or ("desc" if key == "mean" and maximize else "asc")) == "desc"

    def value(c: CandidateRow) -> Any:
        return {"mean": c.mean, "id": c.id, "generation": c.generation, "n": c.n, "seconds": c.seconds}[key]

    known = sorted((c for c in rows if value(c) is not None), key=value, reverse=descending)
    return known + [c for c in rows if value(c) is None]
