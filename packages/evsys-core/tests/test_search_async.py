"""``search.parallel > 1``: jobs end in any order and each freed place is refilled at once (asynchronous
ASHA under ``search.fidelity``). The executor ``ordered`` (``evsys_sdk.testing.search``) fixes the order
jobs end, so every test here is deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.search import evolve
from evsys_sdk.testing import search as search_kit
from evsys_sdk.testing.search import crashed_copies, experiment, landscape_experiment
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def host(plugin_host: Any) -> Any:
    plugin_host.add_plugin(search_kit, "search_kit")
    return plugin_host


def synthetic(tmp_path: Path, *, n_repeats: int = 1, **search: Any) -> dict[str, Any]:
    """The synthetic bowl over x and depth; arms end by depth (a deep recipe is a slow one)."""
    block = {
        "proposer": {"kind": "random", "params": {"include_base": False}},
        "budget": {"candidates": 8},
        "parallel": 3,
        "seed": 0,
        "space": {"algorithm.params.x": {"uniform": [-5, 5]}, "algorithm.params.depth": {"int_uniform": [1, 12]}},
        **search,
    }
    cfg = experiment(tmp_path / "out", block, n_repeats=n_repeats)
    cfg["run"]["algorithm"]["params"]["arm_log"] = str(tmp_path / "arms.log")
    cfg["executor"] = {"kind": "ordered", "params": {"by": "depth"}}
    return cfg


def laddered(tmp_path: Path, **search: Any) -> dict[str, Any]:
    """Rungs on the mock landscape; arms end by lora_rank (then the lower rung first)."""
    block = {
        "proposer": {"kind": "random"},
        "budget": {"candidates": 8},
        "parallel": 3,
        "seed": 0,
        "space": {
            "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]},
            "algorithm.params.lora_rank": {"choice": [4, 8, 16, 32]},
        },
        "fidelity": {"rungs": [10, 20, 40], "reduction": 2},
        **search,
    }
    cfg = landscape_experiment(tmp_path, block, steps=40, run_every=10, n_rows=20)
    cfg["executor"] = {"kind": "ordered", "params": {"by": "lora_rank"}}
    return cfg


def journal(db: LocalStore) -> list[tuple[str, dict[str, Any]]]:
    return [(r["kind"], r["payload"]) for r in db.query("SELECT kind, payload FROM search_events ORDER BY seq")]


def replay(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, list[str], int]]:
    """Each scored event: its candidate, the jobs in flight just before it, the candidates proposed by then."""
    inflight: list[str] = []
    proposed = 0
    out = []
    for kind, e in events:
        if kind == "candidate":
            inflight.append(e["id"])
            proposed += 1
        elif kind == "generation":
            inflight += [cid for cid, _ in e.get("promote", [])]
        elif kind == "scored":
            out.append((e["id"], list(inflight), proposed))
            inflight.remove(e["id"])
    return out


def test_a_freed_place_is_refilled_before_the_slow_job_ends(tmp_path: Path, host: Any) -> None:
    result = evolve(synthetic(tmp_path), store=LocalStore(tmp_path / "db"))
    events = journal(LocalStore(tmp_path / "db"))
    depth = {c.id: c.run_config.algorithm.params["depth"] for c in result.candidates}
    first = ["c0000", "c0001", "c0002"]
    slow = max(first, key=lambda cid: (depth[cid], cid))
    scored_at = {e["id"]: i for i, (k, e) in enumerate(events) if k == "scored"}
    proposed_at = {e["id"]: i for i, (k, e) in enumerate(events) if k == "candidate"}
    # the first place freed went to a new candidate, proposed and dispatched while the slowest still ran
    ended = replay(events)
    assert ended[0][0] == min(first, key=lambda cid: (depth[cid], cid))
    assert scored_at[ended[0][0]] < proposed_at["c0003"] < scored_at[slow]
    gens = [e for k, e in events if k == "generation"]
    assert gens[0]["size"] == 3 and all(g["size"] == 1 for g in gens[1:]) and len(gens) == 6  # one per freed place
    for _, inflight, proposed in ended:  # every place busy while the budget buys candidates
        assert len(inflight) == (3 if proposed < 8 else len(inflight)) and len(inflight) <= 3
    log = (tmp_path / "arms.log").read_text().splitlines()
    assert sum(line.startswith("end ") for line in log) == 8 == result.spent["arms"]


def test_the_budget_never_starts_a_job_it_cannot_pay_for(tmp_path: Path, host: Any) -> None:
    """arms: 9 with two seeds a candidate buys four candidates: the fifth is never started, though a
    place is free while the last three run."""
    result = evolve(synthetic(tmp_path, n_repeats=2, budget={"arms": 9}), store=LocalStore(tmp_path / "db"))
    log = (tmp_path / "arms.log").read_text().splitlines()
    assert sum(line.startswith("start ") for line in log) == 8 == result.spent["arms"]
    assert [c.id for c in result.candidates] == ["c0000", "c0001", "c0002", "c0003"]
    assert result.spent["candidates"] == 4 and all(c.status == "scored" for c in result.candidates)


def test_promotions_are_decided_the_moment_a_job_ends(tmp_path: Path, host: Any) -> None:
    """Every promotion is journaled right after the scores that earned it, while other jobs are still in
    flight, and goes to a candidate in the top floor(n / reduction) of the results at its rung so far."""
    result = evolve(laddered(tmp_path), store=LocalStore(tmp_path / "db"))
    events = journal(LocalStore(tmp_path / "db"))
    rungs = [10, 20, 40]
    at_rung: dict[int, list[tuple[float, int, str]]] = {0: [], 1: [], 2: []}
    proposed: list[str] = []
    inflight = 0
    promoted, while_running = 0, False
    for i, (kind, e) in enumerate(events):
        if kind == "candidate":
            proposed.append(e["id"])
            inflight += 1
        elif kind == "scored":
            inflight -= 1
            if e["status"] in ("stopped", "scored"):
                mean = sum(e["scores"]) / len(e["scores"])
                at_rung[e["rung"]].append((-mean, proposed.index(e["id"]), e["id"]))
        elif kind == "generation" and e.get("promote"):
            assert events[i - 1][0] == "scored"  # decided at a job's end
            for cid, rung in e["promote"]:
                ranked = sorted(at_rung[rung - 1])
                top = [c for _, _, c in ranked[: len(ranked) // 2]]
                assert cid in top, (cid, rung, ranked)
                promoted += 1
            while_running = while_running or inflight > 0  # no barrier: other jobs were still running
            inflight += len(e["promote"])
    assert promoted >= 2 and while_running
    assert any(c.status == "stopped" for c in result.candidates)
    assert result.best is not None and result.best.rung == len(rungs) - 1
    # every job trains from the start to its rung: charged exactly those steps
    jobs = [e for k, e in events if k == "scored"]
    assert result.spent["train_steps"] == sum(rungs[e["rung"]] for e in jobs) and result.spent["arms"] == len(jobs)


def test_resume_from_every_crash_point_equals_the_uninterrupted_search(tmp_path: Path, host: Any) -> None:
    cfg = laddered(tmp_path, budget={"candidates": 6})
    full_db = tmp_path / "full.db"
    reference = evolve(cfg, store=LocalStore(full_db)).to_json()
    events = journal(LocalStore(full_db))
    assert any(k == "generation" and e.get("promote") for k, e in events)
    for k, db in crashed_copies(full_db, tmp_path):
        resumed = evolve(cfg, resume=True, store=db).to_json()
        assert resumed["candidates"] == reference["candidates"], k
        assert resumed["best"] == reference["best"], k
        spent, expected = dict(resumed["spent"]), dict(reference["spent"])
        assert spent.pop("seconds") >= 0 and expected.pop("seconds") >= 0  # wall time differs
        assert spent == expected, k  # nothing charged twice
        assert journal(db)[:k] == events[:k], k  # the completed part kept as it was
