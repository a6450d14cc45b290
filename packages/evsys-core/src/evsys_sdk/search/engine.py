"""The search loop: keep ``search.parallel`` jobs in flight; as each ends, score it and refill its place.

A job is a candidate's arms (one per seed of ``n_repeats``; with ``search.fidelity``, its run to one
rung). All jobs run through the experiment's executor in one ``Experiment`` whose records go into the
search's experiment record, each job a replicate group. The moment a job's last arm is recorded the
search journals its scores, tells the proposer and decides what fills the free place: a candidate
promoted to its next rung (ASHA: ``evsys_sdk.search.fidelity``), else a new one asked from everything
scored so far, reserved in the budget before it is dispatched. There is no generation barrier: a slow
job holds only its own place. A "generation" is now one such refill (the jobs started together; at
the start, up to ``parallel`` of them). Every decision is journaled before its jobs are dispatched, in
the order taken, so a resumed search (after Ctrl-C or kill -9) replays the journal, re-asks nothing,
re-dispatches the jobs that were in flight (their finished arms come from disk) and goes on. Decisions
depend on the order jobs end; with one place (``parallel: 1``) that order is the proposal order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from evsys_sdk.base.errors import ConfigError, EvsysError
from evsys_sdk.base.logger import get_logger
from evsys_sdk.base.stats import summarize
from evsys_sdk.search.fidelity import (
    fidelity_problems,
    job_name,
    promotions,
    rung_metric,
    rung_scores,
    static_steps,
    stopped_message,
)
from evsys_sdk.search.ledger import ArmCost, Ledger
from evsys_sdk.search.promotion import promotes
from evsys_sdk.search.proposers import Proposal, Proposer
from evsys_sdk.search.records import ArmRecords, Journal, find_search, search_record
from evsys_sdk.search.space import Space, build_space
from evsys_sdk.spec.config import ExperimentConfig, RunConfig
from evsys_sdk.spec.results import ArmResult
from evsys_sdk.spec.search import SearchConfig

if TYPE_CHECKING:
    from evsys_sdk.orchestration.experiment import Feed

log = get_logger("search")

# A proposer whose asks bring nothing valid this many times in a row is stopped.
MAX_BARREN_ASKS = 10


@dataclass
class Candidate:
    """One proposed recipe and what its seeds scored. ``status``: pending, scored, failed or (with
    ``search.fidelity``) stopped at ``rung`` (an index; ``rung_scores`` by the rung's step)."""

    id: str
    parents: list[str]
    operator: str
    patch: dict[str, Any]
    run_config: RunConfig
    scores: list[float] = field(default_factory=list)
    mean: float | None = None
    ci95: list[float] | None = None
    status: str = "pending"
    fingerprint: str = ""
    generation: int = 0
    seconds: float = 0.0  # arm seconds, summed over its seeds (and rungs)
    error: str | None = None
    rung: int | None = None
    rung_scores: dict[int, list[float]] = field(default_factory=dict)
    rung_means: dict[int, float] = field(default_factory=dict)
    message: str | None = None  # "stopped at rung N"
    job_rung: int = 0  # the rung its next (or running) job trains to

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parents": list(self.parents),
            "operator": self.operator,
            "patch": dict(self.patch),
            "scores": list(self.scores),
            "mean": self.mean,
            "ci95": self.ci95,
            "status": self.status,
            **({"rung_scores": {str(k): v for k, v in self.rung_scores.items()}} if self.rung_scores else {}),
            **({"message": self.message} if self.message else {}),
        }


@dataclass
class SearchResult:
    """``best`` (the incumbent after promotion), ``candidates`` in proposal order, ``rejected``
    proposals with their reason, ``spent`` (candidates, arms, seconds, train_steps, inference_calls,
    rejected) and, with ``confirm_seeds``, the best's scores on fresh seeds."""

    name: str
    experiment_id: str
    metric: str
    direction: str
    best: Candidate | None
    candidates: list[Candidate]
    rejected: list[dict[str, Any]]
    spent: dict[str, Any]
    confirm: dict[str, Any] | None = None
    best_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {**self.best.to_json(), **({"confirm": self.confirm} if self.confirm else {})}
        return {
            "name": self.name,
            "best": best,
            "candidates": [c.to_json() for c in self.candidates],
            "rejected": list(self.rejected),
            "spent": dict(self.spent),
        }


def _fingerprint(run: RunConfig, name: str) -> str:
    from evsys_sdk.run.runner import config_fingerprint

    return config_fingerprint(run.model_copy(update={"name": name}))


def _search_fingerprint(cfg: ExperimentConfig) -> str:
    """What a resumed search must share with the one it continues (where the arms run may change)."""
    data = cfg.model_dump(mode="json", exclude={"executor", "callbacks"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_search_config(config: ExperimentConfig | str | Path | dict[str, Any]) -> ExperimentConfig:
    from evsys_sdk.loading.yaml_loader import load_yaml

    return config if isinstance(config, ExperimentConfig) else load_yaml(config)


class State:
    """A search folded from its journal events: candidates, rejections, ledger, best, confirmation."""

    def __init__(self, search: SearchConfig, n_repeats: int):
        self.search, self.n_repeats = search, n_repeats
        self.fidelity = search.fidelity
        self.maximize = search.direction == "maximize"
        self.ledger = Ledger(search.budget, n_repeats, held=search.confirm_seeds)
        self.candidates: list[Candidate] = []
        self.by_id: dict[str, Candidate] = {}
        self.by_fingerprint: dict[str, str] = {}
        self.rejected: list[dict[str, Any]] = []
        self.best: Candidate | None = None
        self.confirm: dict[str, Any] | None = None
        self.asks = 0  # asks made so far: the next ask's seed
        self.generations = 0
        # The last refill while it may be proposed in part (until the next job is scored):
        # {"generation", "size", "promote"}.
        self.open: dict[str, Any] | None = None
        self.inflight: list[str] = []  # the candidates whose job was dispatched and not yet scored, in order
        self.proposer_usage: dict[str, Any] = {}  # what the proposer spent, as of the last ask

    def apply(self, kind: str, event: dict[str, Any]) -> Candidate | None:
        """Fold one event in; returns the candidate an event of kind ``scored`` finished."""
        if "ask" in event:
            self.asks = max(self.asks, event["ask"] + 1)
        if kind == "generation":
            self.open = dict(event)
            self.generations = event["generation"] + 1
            for cid, rung in event.get("promote", []):
                promoted = self.by_id[cid]
                promoted.status, promoted.job_rung = "pending", rung
                self.ledger.reserve(0, self.n_repeats)
                self.inflight.append(cid)
        elif kind == "usage":
            self.proposer_usage = dict(event["proposer"])
        elif kind == "candidate":
            c = Candidate(
                id=event["id"],
                parents=event["parents"],
                operator=event["operator"],
                patch=event["patch"],
                run_config=RunConfig.model_validate(event["run_config"]),
                fingerprint=event["fingerprint"],
                generation=event["generation"],
            )
            self.candidates.append(c)
            self.by_id[c.id] = c
            self.by_fingerprint.setdefault(c.fingerprint, c.id)
            self.ledger.reserve(1)
            self.inflight.append(c.id)
        elif kind == "rejected":
            self.rejected.append({"patch": event["patch"], "reason": event["reason"]})
            self.ledger.spent.rejected += 1
        elif kind == "scored":
            c = self.by_id[event["id"]]
            self.open = None  # a refill is proposed whole before the next job's scores are heard
            self.inflight.remove(c.id)
            costs = [ArmCost(**a) for a in event["cost"]]
            c.seconds += sum(a.seconds for a in costs)
            rung = event.get("rung")
            c.status, c.error, c.message = event["status"], event.get("error"), event.get("message")
            if c.status == "stopped":
                assert self.fidelity is not None and rung is not None
                c.rung, step = rung, self.fidelity.rungs[rung]
                c.rung_scores[step], c.rung_means[step] = list(event["scores"]), summarize(event["scores"]).mean
            else:
                c.scores = list(event["scores"])
                if c.status == "scored":
                    s = summarize(c.scores)
                    c.mean, c.ci95 = s.mean, [s.ci95_low, s.ci95_high]
                    if rung is not None:  # the whole run, at (or, ended early, before) this rung
                        assert self.fidelity is not None
                        c.rung = rung
                        c.rung_scores[self.fidelity.rungs[rung]] = list(c.scores)
                        c.rung_means[self.fidelity.rungs[rung]] = c.mean
            # A candidate counts once, at its first rung; every job's arms count.
            self.ledger.settle(1 if not rung else 0, self.n_repeats, costs)
            if promotes(c, self.best, maximize=self.maximize, rule=self.search.promotion):
                self.best = c
            return c
        elif kind == "confirmed":
            self.confirm = event["confirm"]
            self.ledger.release_held()
            self.ledger.settle(0, event["arms"], [ArmCost(**a) for a in event["cost"]])
        return None

    def result(self, name: str, experiment_id: str, metric: str, best_path: str | None = None) -> SearchResult:
        return SearchResult(
            name=name,
            experiment_id=experiment_id,
            metric=metric,
            direction=self.search.direction,
            best=self.best,
            candidates=list(self.candidates),
            rejected=list(self.rejected),
            spent={**self.ledger.spent.to_json(), **({"proposer": self.proposer_usage} if self.proposer_usage else {})},
            confirm=self.confirm,
            best_path=best_path,
        )


def read_search(db: Any, name_or_id: str) -> tuple[ExperimentConfig, State, str] | None:
    """A recorded search (the newest of that name, or by id) folded from its journal, or None."""
    found = find_search(db, name_or_id)
    if found is None:
        return None
    journal = Journal(db, found)
    cfg = ExperimentConfig.model_validate(journal.events[0][1]["config"])
    assert cfg.search is not None
    state = State(cfg.search, cfg.n_repeats)
    for kind, event in journal.events:
        state.apply(kind, event)
    return cfg, state, found


class Search:
    """One search of ``cfg`` recorded into ``store`` (a TrackingStore; the local one by default)."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        *,
        store: Any = None,
        resume: bool = False,
        progress: TextIO | None = None,
    ):
        from evsys_sdk.orchestration.experiment import benchmark_specs
        from evsys_sdk.tracking.store import LocalStore

        self.cfg = cfg
        self.resume = resume
        self.out = progress
        self.search, self.base, self.metric, self.space, self.proposer = _prepare(cfg)
        self.store = store if store is not None else LocalStore()
        # The journal lives in the store when it is a local one, else in the workspace's.
        self.db = self.store if isinstance(self.store, LocalStore) else LocalStore()
        self.state = State(self.search, cfg.n_repeats)
        self.seeds = cfg.repeat_seeds(self.base)
        self.samples = {str(b.name): b.num_samples for b in benchmark_specs(cfg.metadata.get("benchmark"))}
        self.rung_metric = rung_metric(cfg) if self.search.fidelity is not None else None
        self.usage_before: dict[str, Any] = {}

    # records

    def _open(self) -> Journal:
        fingerprint = _search_fingerprint(self.cfg)
        found = find_search(self.db, self.cfg.name) if self.resume else None
        if found is not None:
            journal = Journal(self.db, found)
            if journal.events[0][1].get("fingerprint") != fingerprint:
                raise ConfigError(
                    f"search '{self.cfg.name}' ({found}) was started from a different config; --resume continues "
                    "only the same search: restore the config, or run without --resume to start a new search"
                )
            return journal
        if self.resume:
            self._say(f"nothing to resume for '{self.cfg.name}': starting a new search")
        config = self.cfg.model_dump(mode="json")
        record = self.store.create_experiment(
            experiment_name=self.cfg.name,
            hypothesis=self.cfg.metadata.get("hypothesis"),
            tags=[*(self.cfg.metadata.get("tags") or []), "search"],
            config=config,
        )
        journal = Journal(self.db, str(record["id"]))
        journal.append(("start", {"name": self.cfg.name, "fingerprint": fingerprint, "config": config}))
        return journal

    # the loop

    def run(self) -> SearchResult:
        from evsys_sdk.orchestration.executors import build_executor

        self.journal = self._open()
        self.proposer.setup(self.space, maximize=self.state.maximize)
        for kind, event in self.journal.events:  # a resumed search: told candidates are told again, in order
            told = self.state.apply(kind, event)
            if told is not None and told.status != "stopped":
                self.proposer.tell(told)
        self.usage_before = dict(self.state.proposer_usage)  # spent by the asks of an earlier attempt
        self.records = ArmRecords(self.store, self.journal.experiment_id, self.journal)
        self.arms_dir = Path(self.cfg.output_dir).expanduser() / f"search-{self.journal.experiment_id[:8]}"
        self._warn_small_budget()
        executor = build_executor(self.cfg.executor.kind, self.cfg.executor.params)
        try:
            executor.start()
            jobs = self._resumed_jobs() or self._refill()
            if jobs:
                self._run_jobs(executor, jobs)
            if self.search.confirm_seeds and self.state.best is not None and self.state.confirm is None:
                self._run_confirmation(executor)
        except KeyboardInterrupt:
            self.store.update_experiment(
                self.journal.experiment_id,
                status="cancelled",
                conclusion="Interrupted; continue with evsys evolve --resume.",
            )
            raise
        finally:
            executor.close()
        return self._conclude()

    def _resumed_jobs(self) -> list[Candidate]:
        """The jobs in flight when an earlier attempt stopped, and the rest of a refill it was proposing."""
        state = self.state
        inflight = [state.by_id[cid] for cid in state.inflight]
        if inflight:
            self._say(f"resuming '{self.cfg.name}': {len(inflight)} job(s) in flight")
        if state.open is None:
            return inflight + (self._refill() if inflight else [])
        generation, size = state.open["generation"], state.open["size"]
        proposed = sum(1 for c in state.candidates if c.generation == generation)
        if proposed < size:
            self._say(f"resuming '{self.cfg.name}': {size - proposed} candidate(s) left to propose")
        return inflight + (self._propose(size - proposed) if proposed < size else [])

    def _refill(self) -> list[Candidate]:
        """The jobs that take the free places: promotions first, then as many new candidates as the
        budget can reserve (none: nothing to start now)."""
        state = self.state
        free = self.search.parallel - len(state.inflight)
        if free <= 0:
            return []
        promote, n = self._plan(free)
        if not promote and n == 0:
            return []
        opening: tuple[str, dict[str, Any]] = (
            "generation",
            {
                "generation": state.generations,
                "size": n,
                **({"promote": [[c.id, rung] for c, rung in promote]} if promote else {}),
            },
        )
        state.apply(*opening)  # journaled with the first ask's events: one transaction
        if n == 0:
            self.journal.append(opening)
            return [c for c, _ in promote]
        return [c for c, _ in promote] + self._propose(n, opening)

    def _plan(self, free: int) -> tuple[list[tuple[Candidate, int]], int]:
        """What fills ``free`` places: the candidates promoted to their next rung, and how many new ones."""
        state, fidelity = self.state, self.search.fidelity
        if fidelity is None:
            return [], state.ledger.affordable(free)
        jobs = state.ledger.affordable(free, new=False)  # what the arms and seconds still buy
        promote = promotions(state.candidates, fidelity, maximize=state.maximize, limit=jobs, finishing=False)
        n = min(state.ledger.affordable(free - len(promote)), jobs - len(promote))
        if not promote and n == 0 and not state.inflight:  # a job in flight may still earn a promotion
            promote = promotions(state.candidates, fidelity, maximize=state.maximize, limit=jobs, finishing=True)
        return promote, n

    def _propose(self, n: int, opening: tuple[str, dict[str, Any]] | None = None) -> list[Candidate]:
        """Ask until ``n`` valid new candidates of the open generation; each ask is journaled with all it
        brought (a crash keeps whole asks or none)."""
        state = self.state
        out: list[Candidate] = []
        barren, reasons = 0, []
        history = [c for c in state.candidates if c.status != "pending"]
        assert state.open is not None
        generation = state.open["generation"]
        while len(out) < n:
            ask = state.asks
            self.proposer.rng.seed(f"{self.search.seed}:{ask}")
            self.proposer.running([state.by_id[cid] for cid in state.inflight])
            proposals = self.proposer.ask(history, n - len(out))[: n - len(out)]
            if not proposals:
                raise EvsysError(f"proposer '{self.search.proposer.kind}' returned no proposal when asked for {n}")
            events: list[tuple[str, dict[str, Any]]] = []
            before = len(out)
            for p in proposals:
                cid = f"c{len(state.candidates) + len(out) - before:04d}"  # this ask's are not in state yet
                checked = self._check(p, cid, out)
                if isinstance(checked, str):
                    reasons.append(checked)
                    self.proposer.reject(p.patch, checked)
                    events.append(("rejected", {"patch": p.patch, "reason": checked, "ask": ask}))
                    continue
                c = Candidate(cid, list(p.parents), p.operator, dict(p.patch), checked, generation=generation)
                c.fingerprint = _fingerprint(checked, self.base.name)
                out.append(c)
                events.append(("candidate", {**_event(c), "ask": ask}))
            if not any(k == "candidate" for k, _ in events):
                events.append(("ask", {"ask": ask}))  # a barren ask still moves the seed on
            usage = _added(self.usage_before, self.proposer.usage())
            if usage:  # journaled with the ask: a resumed search keeps what the first attempt spent
                events.append(("usage", {"proposer": usage}))
            self.journal.append(*([opening] if opening else []), *events)
            opening = None
            for kind, event in events:
                state.apply(kind, event)
            barren = 0 if len(out) > before else barren + 1
            if barren >= MAX_BARREN_ASKS:
                if all(r.startswith("duplicate") for r in reasons[-len(proposals) :]):
                    self._say(f"the proposer found nothing new in {barren} asks: the space looks exhausted")
                    break
                raise EvsysError(
                    f"proposer '{self.search.proposer.kind}' was stopped: {barren} asks in a row brought no valid "
                    f"candidate (last reason: {reasons[-1]}); `evsys evolve show {self.cfg.name}` lists the rejected"
                )
        return [state.by_id[c.id] for c in out]

    def _check(self, p: Proposal, cid: str, batch: list[Candidate]) -> RunConfig | str:
        """The proposal's validated run config, or why it is rejected (never charged)."""
        from evsys_sdk.loading.validation import run_problems
        from evsys_sdk.spec.problems import pydantic_problems

        axes = {a.path: a for a in self.space.axes}
        unknown = [k for k in p.patch if k not in axes]
        if unknown:
            return f"{unknown[0]}: not a path of the space"
        for path, value in p.patch.items():
            outside = _outside(axes[path].dist, value)
            if outside:
                return f"{path}: {outside}"
        try:
            run = self.space.run_config(p.patch, cid)
        except ValidationError as exc:
            where, msg = pydantic_problems(exc, RunConfig)[0]
            return f"{'.'.join(map(str, where))}: {msg}"
        except EvsysError as exc:
            return str(exc)
        if self.search.budget.arm_seconds is not None:
            run = run.model_copy(update={"max_seconds": self.search.budget.arm_seconds})
        problems = run_problems(run, (), {})
        if problems:
            where, msg = problems[0]
            return f"{'.'.join(map(str, where))}: {msg}"
        steps = static_steps(run)
        if self.search.fidelity is not None and steps is not None and steps < self.search.fidelity.rungs[-1]:
            return f"its {steps} steps end before the last rung {self.search.fidelity.rungs[-1]}"
        fingerprint = _fingerprint(run, self.base.name)
        twin = self.state.by_fingerprint.get(fingerprint) or next(
            (c.id for c in batch if c.fingerprint == fingerprint), None
        )
        if twin is not None:
            return f"duplicate of {twin} (the same recipe)"
        return run

    def _generation_config(self, runs: list[RunConfig], **update: Any) -> ExperimentConfig:
        meta = dict(self.cfg.metadata)
        if meta.get("benchmark"):  # baseline models score once per experiment, not per generation
            entries = meta["benchmark"] if isinstance(meta["benchmark"], list) else [meta["benchmark"]]
            meta["benchmark"] = [{k: v for k, v in e.items() if k != "models"} for e in entries]
        return self.cfg.model_copy(
            update={
                "search": None,
                "run": None,
                "runs": runs,
                "matrix": None,
                "callbacks": [],
                "output_dir": str(self.arms_dir),
                "metadata": meta,
                **update,
            }
        )

    def _experiment(
        self,
        executor: Any,
        cfg: ExperimentConfig,
        *,
        resume: bool,
        stop_at: dict[str, int] | None = None,
        feed: Feed | None = None,
    ) -> list[ArmResult]:
        """The arms of ``cfg`` run as one Experiment; ``stop_at``: run name -> the step its arms stop at;
        ``feed``: more runs as arms end."""
        from evsys_sdk.orchestration.experiment import Experiment
        from evsys_sdk.run.progress import Progress

        quiet = Progress(len(cfg.arm_names()), enabled=False)
        experiment = Experiment(
            cfg, store=self.records, resume=resume, progress=quiet, executor=executor, stop_at=stop_at, feed=feed
        )
        return experiment.run().arms

    def _job(self, c: Candidate) -> tuple[RunConfig, int | None]:
        """A candidate's next job: its run (named for the rung) and the step it stops at (None: the whole run)."""
        fidelity = self.search.fidelity
        name = c.id if fidelity is None else job_name(c.id, fidelity, c.job_rung)
        self.jobs[name] = c
        stop = fidelity.rungs[c.job_rung] if fidelity is not None and name != c.id else None
        return c.run_config.model_copy(update={"name": name}), stop

    def _run_jobs(self, executor: Any, first: list[Candidate]) -> None:
        """Every job of the search through one Experiment: ``first`` now, the refills as jobs end. A
        resumed search takes the arms that had finished from their records on disk."""
        self.jobs: dict[str, Candidate] = {}  # job name -> its candidate, while in flight
        self.job_arms: dict[str, list[ArmResult]] = {}
        runs = [self._job(c) for c in first]
        stop_at = {run.name: stop for run, stop in runs if stop is not None}
        cfg = self._generation_config([run for run, _ in runs])
        self._experiment(executor, cfg, resume=self.resume, stop_at=stop_at, feed=self._ended)

    def _ended(self, arm: ArmResult) -> list[tuple[RunConfig, int | None]]:
        """An arm was recorded: once its job's last arm is, score the job and refill its place."""
        name = arm.group_name or arm.name
        arms = self.job_arms.setdefault(name, [])
        arms.append(arm)
        if len(arms) < self.cfg.n_repeats:
            return []
        del self.job_arms[name]
        c = self.jobs.pop(name)
        arms.sort(key=lambda a: a.run_config.seed)  # scores in seed order
        event = _scored(c.id, arms, self.metric, self.samples)
        if self.search.fidelity is not None:
            event = self._at_rung(event, arms, c.job_rung)
        self.journal.append(("scored", event))
        before = self.state.best
        told = self.state.apply("scored", event)
        assert told is not None
        if told.status != "stopped":
            self.proposer.tell(told)
        self._progress(told, self.state.best is not before)
        self.store.update_experiment(self.journal.experiment_id, search=self._record(self._result()))
        return [self._job(c) for c in self._refill()]

    def _at_rung(self, event: dict[str, Any], arms: list[ArmResult], rung: int) -> dict[str, Any]:
        """A job's event with its rung; arms stopped there are scored by their live score at its step."""
        assert self.search.fidelity is not None and self.rung_metric is not None
        event = {**event, "rung": rung}
        if not arms or any(a.status != "stopped" for a in arms):
            return event  # the whole run (or an arm that ended before its rung, or a failure)
        values = rung_scores(arms, self.search.fidelity, rung, self.rung_metric)
        if None in values:
            missing = arms[values.index(None)].name
            step = self.search.fidelity.rungs[rung]
            name, key = self.rung_metric
            error = f"{missing} scored no {key} on {name} at step {step}"
            return {**event, "scores": [], "status": "failed", "error": error}
        message = stopped_message(self.search.fidelity, rung)
        return {**event, "scores": values, "status": "stopped", "error": None, "message": message}

    def _run_confirmation(self, executor: Any) -> None:
        best = self.state.best
        assert best is not None
        k = self.search.confirm_seeds
        name = f"{best.id}-confirm"
        run = best.run_config.model_copy(update={"name": name})
        first = self.seeds[-1] + 1
        arms = self._experiment(
            executor, self._generation_config([run], n_repeats=k, base_seed=first), resume=self.resume
        )
        event = _scored(name, arms, self.metric, self.samples)
        confirm: dict[str, Any] = {
            "seeds": list(range(first, first + k)),
            "scores": event["scores"],
            "status": event["status"],
        }
        if event["status"] == "scored":
            s = summarize(event["scores"])
            confirm.update(mean=s.mean, ci95=[s.ci95_low, s.ci95_high])
        done = ("confirmed", {"confirm": confirm, "arms": k, "cost": event["cost"]})
        self.journal.append(done)
        self.state.apply(*done)
        self._say(f"confirmed {best.id} on {k} fresh seeds: {_fmt_scores(confirm)}")

    def _conclude(self) -> SearchResult:
        from evsys_sdk.loading.yaml_loader import dump_yaml

        best = self.state.best
        best_path = None
        if best is not None:
            run = best.run_config.model_copy(update={"name": self.base.name})
            best_path = str(Path(self.cfg.output_dir).expanduser() / "best.yaml")
            dump_yaml(
                self.cfg.model_copy(update={"search": None, "run": run, "metadata": self._best_metadata()}),
                path=best_path,
            )
        result = self._result(best_path)
        patch: dict[str, Any] = {
            "status": "completed" if best else "failed",
            "conclusion": conclusion(result),
            "search": self._record(result),
        }
        if best is not None and best.mean is not None:
            patch["best_score"] = best.mean
        self.store.update_experiment(self.journal.experiment_id, **patch)
        return result

    def _result(self, best_path: str | None = None) -> SearchResult:
        return self.state.result(self.cfg.name, self.journal.experiment_id, self.metric, best_path)

    def _record(self, result: SearchResult) -> dict[str, Any]:
        return search_record(result, self.space, self.search.budget)

    def _best_metadata(self) -> dict[str, Any]:
        """The metadata of best.yaml: a minimised objective says so in ``metadata.expect``, or ``evsys run``
        would pick its highest seed as the best arm (an experiment's best is the max unless told)."""
        meta = dict(self.cfg.metadata)
        if self.cfg.search is not None and self.cfg.search.direction == "minimize" and "expect" not in meta:
            meta["expect"] = {"metric": self.metric, "better": "lower"}
        return meta

    # output

    def _say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def _progress(self, c: Candidate, promoted: bool) -> None:
        if self.out is None:
            return
        state = self.state
        bought = state.ledger.proposals_bought()
        done = sum(1 for x in state.candidates if x.status != "pending")
        lineage = c.operator + (f"<{','.join(c.parents)}" if c.parents else "")
        best = f"best {state.best.id} {state.best.mean:.4g}" if state.best and state.best.mean is not None else "best -"
        scores = _fmt_scores(c.to_json()) + (f" ({c.error[:80]})" if c.error else "")
        if c.status == "stopped" and state.fidelity is not None and c.rung is not None:
            step = state.fidelity.rungs[c.rung]
            scores = f"{c.message}: {c.rung_means[step]:.4g} (n={len(c.rung_scores[step])})"
        self._say(
            f"[{done}/{bought or '?'}] {c.id} {lineage:<18} {scores}  | {best}" + (" (new best)" if promoted else "")
        )

    def _warn_small_budget(self) -> None:
        bought = self.state.ledger.proposals_bought()
        if bought is not None and bought < 3 and not self.state.candidates:
            from evsys_sdk.spec.source import format_problems

            msg = f"buys only {bought} proposal(s) of {self.cfg.n_repeats} arm(s): a search needs at least 3 to compare"
            (text,) = format_problems([(("search", "budget"), msg)], self.cfg._source)
            log.warning(text)
            self._say(f"warning: {text}")


def conclusion(result: SearchResult) -> str:
    """One line: the best with its CI (and its confirmation), and what the search spent."""
    spent = result.spent
    tail = f"{spent['candidates']} candidates, {spent['arms']} arms, {spent['seconds']:.1f} arm-s"
    if result.best is None:
        return f"No candidate scored; {tail}."
    b = result.best
    text = f"Best {b.id} ({b.operator}) at {result.metric} {_fmt_scores(b.to_json())}"
    if result.confirm:
        text += f"; on {len(result.confirm['seeds'])} fresh seeds {_fmt_scores(result.confirm)}"
    return f"{text}. {tail}."


def _event(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.id,
        "parents": c.parents,
        "operator": c.operator,
        "patch": c.patch,
        "fingerprint": c.fingerprint,
        "generation": c.generation,
        "run_config": c.run_config.model_dump(mode="json"),
    }


def _outside(dist: Any, value: Any) -> str | None:
    """Why ``value`` is outside the axis's distribution, or None. ``None`` is the recipe's own unset value
    (the base run leaves an optional field out, or the kind it switched to has no such param): the
    schema judges it."""
    if value is None:
        return None
    if dist.kind == "choice":
        return None if value in dist.choice else f"{value!r} is not one of the choices {dist.choice}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} is not a number"
    if dist.kind == "int_uniform" and not isinstance(value, int):
        return f"{value!r} is not an integer"
    low, high = dist.bounds
    return None if low <= value <= high else f"{value!r} is outside [{low:g}, {high:g}]"


def _arm_cost(arm: ArmResult, samples: dict[str, int]) -> dict[str, Any]:
    """What an arm spent: train seconds plus every post-training eval's (in-loop evals are inside
    training), its reported steps, and its generations: what it reports as ``inference_calls`` plus
    each benchmark eval's tasks x samples."""
    evals = [e for e in arm.evals if e.step is None]
    calls = arm.metrics.get("inference_calls", 0) + sum(
        e.metrics.get("n_tasks", 0) * samples.get(e.name, 1) for e in arm.evals
    )
    return {
        "seconds": (arm.train_seconds or 0.0) + sum(e.eval_seconds for e in evals),
        "train_steps": int(arm.metrics.get("total_steps", 0)),
        "inference_calls": int(calls),
    }


def _scored(cid: str, arms: list[ArmResult], metric: str, samples: dict[str, int]) -> dict[str, Any]:
    """The journal event of a candidate's finished arms: scores in seed order, status, costs."""
    scores: list[float] = []
    errors = []
    for arm in arms:
        value = arm.score(metric) if arm.status == "completed" else None
        if value is None:
            errors.append(arm.error or f"{arm.name} reported no {metric}")
        else:
            scores.append(float(value))
    cost = [_arm_cost(a, samples) for a in arms]
    failed = bool(errors) or not arms
    return {
        "id": cid,
        "scores": scores,
        "status": "failed" if failed else "scored",
        "error": (errors[0] if errors else "no arm ran") if failed else None,
        "cost": cost,
    }


def _added(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Usage counts of an earlier attempt plus this one's, key by key."""
    return {k: before.get(k, 0) + now.get(k, 0) for k in {**before, **now}}


def _fmt_scores(c: dict[str, Any]) -> str:
    if c.get("mean") is None:
        return "failed"
    low, high = c["ci95"]
    return f"{c['mean']:.4g} (95% CI [{low:.4g}, {high:.4g}], n={len(c['scores'])})"


def _prepare(cfg: ExperimentConfig) -> tuple[SearchConfig, RunConfig, str, Space, Proposer]:
    """Everything checked before any arm starts; one located line per problem."""
    from evsys_sdk.loading.yaml_loader import check_config
    from evsys_sdk.plugins.registry import registry
    from evsys_sdk.spec.problems import Problem, pydantic_problems
    from evsys_sdk.spec.source import format_problems

    src = cfg._source
    search = cfg.search
    if search is None:
        raise ConfigError(
            format_problems([((), "no `search:` block: evsys evolve searches a config that has one")], src)
        )
    problems: list[Problem] = []
    if cfg.run is None or cfg.continual is not None:
        problems.append((("search",), "a search varies a single `run` (not runs, matrix or continual)"))
    metric = cfg.metadata.get("success_metric")
    if not isinstance(metric, str) or not metric:
        problems.append((("metadata",), "a search needs metadata.success_metric: the objective it optimises"))
    if search.promotion.rule == "paired" and cfg.n_repeats < 2:
        problems.append(
            (("search", "promotion", "rule"), "rule paired compares seeds: it needs n_repeats >= 2 (or rule: mean)")
        )
    if search.fidelity is not None and cfg.run is not None:
        problems += fidelity_problems(cfg, search.fidelity)
    if problems:
        raise ConfigError(format_problems(problems, src))
    assert cfg.run is not None
    check_config(cfg.model_copy(update={"search": None}))
    base = cfg.run
    space, problems = build_space(search, base)
    try:
        cls = registry("proposer").get(search.proposer.kind)
        proposer: Proposer = cls(**search.proposer.params)
    except EvsysError as exc:
        problems.append((("search", "proposer", "kind"), str(exc)))
    except ValidationError as exc:
        problems += pydantic_problems(exc, cls.Config, ("search", "proposer", "params"))
    if problems:
        raise ConfigError(format_problems(problems, src))
    assert space is not None
    return search, base, str(metric), space, proposer


def check_search(cfg: ExperimentConfig) -> None:
    """What ``evsys evolve`` checks before any arm (``evsys validate --deep``); raises ConfigError."""
    _prepare(cfg)


def evolve(
    config_or_path: ExperimentConfig | str | Path | dict[str, Any],
    *,
    resume: bool = False,
    store: Any = None,
    progress: TextIO | None = None,
) -> SearchResult:
    """Run (or with ``resume``, continue) the search of a config's ``search:`` block; ``store`` is a
    tracking store (default: the local one), ``progress`` a stream for the live lines (None: quiet)."""
    return Search(load_search_config(config_or_path), store=store, resume=resume, progress=progress).run()


__all__ = ["Candidate", "Search", "SearchResult", "evolve"]
