"""The search page: a real ``evsys evolve --store dashboard`` search on the mock backend, assembled on the
server (best so far, CIs, lineage edges, params, rejections, spend) and checked against the search's own
journal (``evsys evolve show --json`` in the local workspace), served over HTTP and driven in Chromium.

``EVSYS_SHOTS=DIR`` keeps the browser test's screenshots there (default: the test's tmp folder)."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_browser import CHROMIUM_ARGS, chromium_path

from evsys_dashboard.server.db import ServerDB
from evsys_dashboard.server.search_view import (
    CandidateRow,
    SearchView,
    assemble,
    search_view,
    sort_candidates,
)
from evsys_dashboard.testing import DashboardServer
from evsys_sdk.base.stats import summarize
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(240)

PATHS = ["algorithm.params.learning_rate", "algorithm.params.lora_rank", "algorithm.params.num_epochs"]
BASE = {PATHS[0]: 1e-4, PATHS[1]: 8, PATHS[2]: 1}  # the mock sft family's defaults


@dataclass
class Recorded:
    server: DashboardServer
    db_path: Path
    experiment_id: str
    journal: dict[str, Any]  # `evsys evolve show --json`: the search as its local journal holds it
    tmp: Path


def _config(out: Path) -> dict[str, Any]:
    """A small space (8 recipes) with a budget of 10: the proposer runs out of new recipes, so the
    search records real rejections (duplicates) besides mutations and crossovers."""
    return {
        "name": "view_search",
        "output_dir": str(out),
        "n_repeats": 2,
        "metadata": {"success_metric": "train/final_loss"},
        "run": {
            "name": "r",
            "data": {
                "source_kind": "in_memory",
                "rows": [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(2)],
            },
            "model": {"name": "m"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": "sft", "params": {"max_steps": 3}},
        },
        "search": {
            "direction": "minimize",
            "budget": {"candidates": 10},
            "parallel": 2,
            "seed": 0,
            "proposer": {"kind": "mutate", "params": {"initial": 3}},
            "space": {
                PATHS[0]: {"choice": [1e-4, 1e-3]},
                PATHS[1]: {"int_uniform": [7, 8]},
                PATHS[2]: {"choice": [1, 2]},
            },
        },
    }


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    tmp = tmp_path_factory.mktemp("search")
    config = tmp / "search.yaml"
    config.write_text(yaml.safe_dump(_config(tmp / "out")))
    with DashboardServer(tmp / "server.db", project="proj-a") as server:
        env = {
            **os.environ,
            "EVSYS_API_URL": server.url,
            "EVSYS_API_KEY": server.key,
            "EVSYS_PROJECT_ID": "proj-a",
            "EVSYS_LOG_DIR": str(tmp / "mirror"),
            "EVSYS_WORKSPACE": str(tmp / ".evsys"),
            "OMP_NUM_THREADS": "1",
        }
        cli = [sys.executable, "-m", "evsys_sdk.cli", "evolve"]
        proc = subprocess.run([*cli, str(config), "--store", "dashboard"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        shown = subprocess.run([*cli, "show", "view_search", "--json"], capture_output=True, text=True, env=env)
        assert shown.returncode == 0, shown.stderr
        exp = LocalStore(tmp / "server.db").find_experiment("view_search")
        assert exp is not None
        yield Recorded(server, tmp / "server.db", str(exp["id"]), json.loads(shown.stdout), tmp)


@pytest.fixture(scope="module")
def view(recorded: Recorded) -> Iterator[SearchView]:
    db = ServerDB(recorded.db_path)
    try:
        found = search_view(db, recorded.experiment_id)
        assert found is not None
        yield found
    finally:
        db.close()


def test_candidates_carry_the_journals_scores_and_95pct_cis(recorded: Recorded, view: SearchView) -> None:
    journal = recorded.journal
    assert [c.id for c in view.candidates] == [c["id"] for c in journal["candidates"]]
    assert len(view.candidates) == journal["spent"]["candidates"] == 8  # the 8 recipes of the space
    for row, c in zip(view.candidates, journal["candidates"], strict=True):
        s = summarize(c["scores"])
        assert row.n == 2 and row.status == "scored" and row.mean == pytest.approx(s.mean)
        assert row.ci95 == pytest.approx((s.ci95_low, s.ci95_high))
        assert row.ci95[0] < row.mean < row.ci95[1]  # two seeds of the mock landscape differ
        assert row.patch == c["patch"] and row.parents == c["parents"] and row.operator == c["operator"]
        assert [r["seed"] for r in row.runs] == [42, 43] and {r["status"] for r in row.runs} == {"completed"}
    assert view.best == journal["best"]["id"] and view.metric == "train/final_loss" and not view.maximize
    assert view.spent == journal["spent"] and view.budget == {"candidates": 10} and view.proposer == "mutate"
    ranked = sort_candidates(view.candidates, maximize=False)
    assert [c.mean for c in ranked] == sorted(c.mean for c in view.candidates)  # best (lowest) first
    assert ranked[0].id == view.best
    assert [c.n for c in sort_candidates(view.candidates, "n", "desc")] == [2] * 8
    assert [c.id for c in sort_candidates(view.candidates, "id", "desc")] == [f"c{i:04d}" for i in range(7, -1, -1)]


def test_best_so_far_against_spent_budget(recorded: Recorded, view: SearchView) -> None:
    points = view.best_so_far
    assert [p.evaluated for p in points] == list(range(1, 9))
    bests = [p.best for p in points]
    assert bests == sorted(bests, reverse=True)  # minimized: the best so far only falls
    means = {c.id: c.mean for c in view.candidates}
    for p, c in zip(points, view.candidates, strict=True):
        assert p.best == means[p.best_id] == min(means[x.id] for x in view.candidates[: p.evaluated])
        assert p.seconds == pytest.approx(sum(x.seconds for x in view.candidates[: p.evaluated]))
        assert c.seconds > 0
    assert points[-1].best_id == view.best
    assert points[-1].seconds == pytest.approx(recorded.journal["spent"]["seconds"], abs=0.001 * 8)
    assert len({p.best_id for p in points}) >= 2  # the search improved on its first candidate


def test_lineage_edges_carry_each_patch_as_a_dotted_path_diff(recorded: Recorded, view: SearchView) -> None:
    patches = {c["id"]: c["patch"] for c in recorded.journal["candidates"]}
    assert view.space[PATHS[1]] == {"kind": "int_uniform", "values": [7, 8], "base": 8}
    edges = {(e.parent, e.child): e for e in view.edges}
    for c in recorded.journal["candidates"]:
        sources = c["parents"] or [None]
        for parent in sources:
            before = patches[parent] if parent else BASE
            changes = edges.pop((parent, c["id"])).changes
            assert [(ch.path, ch.before, ch.after) for ch in changes] == [
                (p, before[p], c["patch"][p]) for p in PATHS if before[p] != c["patch"][p]
            ]
            if c["operator"] == "mutate":
                assert changes  # a mutation changes at least one path
    assert edges == {}  # no edge the journal does not have
    operators = {c.operator for c in view.candidates}
    assert {"base", "random", "mutate"} <= operators
    assert any(len(c.parents) == 2 for c in view.candidates) == ("crossover" in operators)
    base = next(e for e in view.edges if e.child == "c0000")
    assert base.parent is None and base.changes == []  # the base recipe's own values


def test_params_and_rejections(recorded: Recorded, view: SearchView) -> None:
    assert list(view.params) == PATHS
    for path in PATHS:
        assert sorted((p.candidate, p.value) for p in view.params[path]) == sorted(
            (c["id"], c["patch"][path]) for c in recorded.journal["candidates"]
        )
    from evsys_dashboard.server.search_page import _parallel

    svg = _parallel(view)  # one line per candidate over lr, rank, epochs and the score; the best drawn last
    lines = re.findall(r'<polyline class="pline" fill="none" stroke="([^"]+)" points="([^"]+)"><title>(c\d{4})', svg)
    assert len(lines) == 8 and lines[-1][2] == view.best and lines[-1][0] == "hsl(120,70%,40%)"
    score_y = [float(points.split()[-1].split(",")[1]) for _, points, _ in lines]
    assert score_y[-1] == min(score_y) == 30.0  # minimized: the lowest loss at the top of the score axis
    rejected = recorded.journal["rejected"]
    assert view.rejected == rejected and view.n_rejected == recorded.journal["spent"]["rejected"] == len(rejected) > 0
    patches = {c["id"]: c["patch"] for c in recorded.journal["candidates"]}
    for r in view.rejected:  # the space ran out: each rejection names the candidate it repeats
        twin = re.fullmatch(r"duplicate of (c\d{4}) \(the same recipe\)", r["reason"])
        assert twin is not None and patches[twin.group(1)] == r["patch"]


def test_page_over_http_sorts_links_and_refuses_what_is_no_search(recorded: Recorded, view: SearchView) -> None:
    import httpx

    url = recorded.server.url
    with httpx.Client(base_url=url, timeout=30) as http:
        index = http.get("/").text
        assert f'href="/searches/{recorded.experiment_id}">search view</a>' in index
        page = http.get(f"/searches/{recorded.experiment_id}")
        assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
        assert "<script" not in page.text
        ids = re.findall(r'<td id="(c\d{4})">', page.text)
        assert ids == [c.id for c in sort_candidates(view.candidates, maximize=False)]
        worst_first = http.get(f"/searches/{recorded.experiment_id}", params={"sort": "mean", "order": "desc"}).text
        assert re.findall(r'<td id="(c\d{4})">', worst_first) == ids[::-1]
        assert 'href="?sort=mean&amp;order=asc">mean ▼</a>' in worst_first  # the link flips the order back
        for label in ("Budget spent", "Best so far", "Lineage", "Params against the score", "Rejected proposals"):
            assert f"<h2>{label}" in page.text
        experiment = http.get(f"/experiments/{recorded.experiment_id}").text
        assert f'href="/searches/{recorded.experiment_id}">search view</a>' in experiment
        assert http.get(f"/searches/{recorded.experiment_id}", params={"sort": "bogus"}).status_code == 422
        missing = http.get("/searches/no-such-search")
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
    plain = LocalStore(recorded.db_path).create_experiment(experiment_name="not a search")
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get(f"/searches/{plain['id']}").status_code == 404


def test_multi_fidelity_stopped_candidates_show_their_rungs(tmp_path: Path, bench_dir: Path) -> None:
    """search.fidelity: a candidate stopped at an early rung shows where, with that rung's mean and n, its
    rung jobs' runs are linked, and the compute it was charged counts in the best-so-far curve."""
    from conftest import tasks

    from evsys_dashboard.server.search_page import search_page
    from evsys_dashboard.server.ui import fmt
    from evsys_sdk.loading.yaml_loader import load_yaml
    from evsys_sdk.search import evolve

    cfg = {
        "name": "rungs",
        "output_dir": str(tmp_path / "out"),
        "n_repeats": 2,
        "metadata": {
            "success_metric": "qa.pass_rate",
            "benchmark": [{"name": "qa", "path": str(bench_dir), "run_every": 2}],
        },
        "run": {
            "name": "r",
            "data": {"source_kind": "in_memory", "rows": tasks()},
            "model": {"name": "m"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": "sft", "params": {"max_steps": 6, "batch_size": 1}},
        },
        "search": {
            "proposer": {"kind": "random"},
            "budget": {"candidates": 6},
            "parallel": 3,
            "fidelity": {"rungs": [2, 6], "reduction": 3},
            "space": {PATHS[0]: {"log_uniform": [1e-6, 1e-2]}},
        },
    }
    result = evolve(load_yaml(cfg), store=LocalStore(tmp_path / "db"))
    stopped = [c for c in result.candidates if c.status == "stopped"]
    assert stopped and any(c.status == "scored" for c in result.candidates)
    db = ServerDB(tmp_path / "db")
    try:
        view = search_view(db, result.experiment_id)
        assert view is not None
        rows = {c.id: c for c in view.candidates}
        for c in stopped:
            row = rows[c.id]
            (scores,) = c.rung_scores.values()
            assert row.status == "stopped" and row.message == "stopped at rung 2" and row.mean is None
            assert row.rungs == {2: (pytest.approx(summarize(scores).mean), 2)}
            assert sorted((r["seed"], r["rung"]) for r in row.runs) == [(42, "2"), (43, "2")]
        assert view.best_so_far[-1].seconds == pytest.approx(sum(c.seconds for c in result.candidates), abs=0.01)
        page = search_page(db, result.experiment_id)
        assert page is not None and "stopped at rung 2" in page and "seed 42 @2" in page
        assert f"@2: {fmt(summarize(next(iter(stopped[0].rung_scores.values()))).mean)} (n=2)" in page
    finally:
        db.close()


def test_failed_pending_and_hostile_candidates() -> None:
    """A record as a running search leaves it: a failed candidate spends but scores nothing (sorted last),
    a pending one is not yet on the curve; every string is escaped."""
    from evsys_dashboard.server.search_page import _candidates, _lineage, _rejected, _spent

    hostile = "<img src=x onerror=alert(1)>"
    record = {
        "name": "s",
        "metric": "m",
        "direction": "maximize",
        "space": {"a.b": {"kind": "uniform", "values": [0, 1], "base": 0.5}},
        "spent": {
            "candidates": 2,
            "arms": 2,
            "seconds": 5.0,
            "rejected": 250,
            "proposer": {"calls": 4, "input_tokens": 1200},
        },
        "budget": {"candidates": 20, "arm_seconds": 30.0},
        "confirm": {"seeds": [3, 4], "scores": [0.9, 1.1], "status": "scored", "mean": 1.0, "ci95": [-0.27, 2.27]},
        "best": "c0001",
        "candidates": [
            {
                "id": "c0000",
                "parents": [],
                "operator": "base",
                "patch": {"a.b": 0.5},
                "scores": [],
                "mean": None,
                "ci95": None,
                "status": "failed",
                "generation": 0,
                "seconds": 2.0,
                "error": hostile,
            },
            {
                "id": "c0001",
                "parents": ["c0000"],
                "operator": "mutate",
                "patch": {"a.b": hostile},
                "scores": [1.0],
                "mean": 1.0,
                "ci95": [1.0, 1.0],
                "status": "scored",
                "generation": 1,
                "seconds": 3.0,
            },
            {
                "id": "c0002",
                "parents": ["c0001"],
                "operator": "mutate",
                "patch": {"a.b": 0.7},
                "scores": [],
                "mean": None,
                "ci95": None,
                "status": "pending",
                "generation": 2,
                "seconds": 0.0,
            },
        ],
        "rejected": [{"patch": {"a.b": 9}, "reason": hostile}] * 3,
    }
    view = assemble({"id": "e", "name": "s", "extra": {"search": record}}, record)
    assert [(p.evaluated, p.seconds, p.best, p.best_id) for p in view.best_so_far] == [(2, 5.0, 1.0, "c0001")]
    assert [c.id for c in sort_candidates(view.candidates)] == ["c0001", "c0000", "c0002"]
    assert [c.id for c in sort_candidates(view.candidates, "mean", "asc")] == ["c0001", "c0000", "c0002"]
    assert [(e.parent, e.child, [(c.before, c.after) for c in e.changes]) for e in view.edges] == [
        (None, "c0000", []),
        ("c0000", "c0001", [(0.5, hostile)]),
        ("c0001", "c0002", [(hostile, 0.7)]),
    ]
    spent = re.sub(r"<[^>]+>", " ", _spent(view))
    assert re.search(r"evaluations\s+2\s+of 20\s+candidates, 2\s+arms", spent)
    assert re.search(r"arm seconds\s+5 s\s+\(each arm 30 s\)", spent) and "rejected proposals  250" in spent
    assert "proposer  calls 4, input_tokens 1200" in spent
    assert "c0001 on fresh seeds [3, 4]: 1 [-0.2700, 2.2700] (n=2)" in html.unescape(spent)
    rendered = _candidates(view, "mean", None) + _lineage(view) + _rejected(view)
    assert hostile not in rendered and html.escape(hostile) in rendered
    assert rendered.count('class="edge"') == 3
    rejected = _rejected(view)  # one row: the same proposal 3 times, of 250 rejections in all
    assert rejected.count("<tr>") == 2 and '<td class="num">3</td>' in rejected
    assert "the latest 3 of 250 shown" in rejected
    assert isinstance(view.candidates[0], CandidateRow) and view.params["a.b"][0].candidate == "c0001"


def test_a_lineage_deeper_than_the_recursion_limit_and_a_self_parent() -> None:
    from evsys_dashboard.server.search_page import _lineage

    def cand(i: int, parents: list[str]) -> dict[str, Any]:
        return {"id": f"c{i:05d}", "parents": parents, "operator": "mutate", "patch": {"a": i}, "status": "scored"}

    chain = [cand(0, [])] + [cand(i, [f"c{i - 1:05d}"]) for i in range(1, 3000)]
    record = {"candidates": [*chain, {**cand(0, ["c00000"]), "operator": "loop"}]}  # the id again, its own parent
    tree = _lineage(assemble({"id": "e", "name": "s"}, record))
    assert tree.count('<span class="node') == 3001  # the base recipe and each candidate once
    assert tree.count("<ul") == tree.count("</ul>") and tree.count("<li") == tree.count("</li>")
    assert "from c02998: <code>a: <span" in tree


def test_extreme_stored_values_draw_finite_charts() -> None:
    """Means near the float limits, subnormals and NaN (the store keeps what arms report): every chart
    coordinate stays a finite number."""
    from evsys_dashboard.server.search_page import _best_charts, _params

    values = [1.7e308, -1.7e308, 5e-324, float("nan"), 0.0]
    record = {
        "metric": "m",
        "direction": "maximize",
        "space": {
            "a": {"kind": "log_uniform", "values": [1e-300, 1e300], "base": 1.0},
            "b": {"kind": "uniform", "values": [-1.7e308, 1.7e308], "base": 0.0},
        },
        "candidates": [
            {
                "id": f"c{i:04d}",
                "operator": "random",
                "patch": {"a": [1e-300, 1e300, 1.0, 2.0, 5e-324][i], "b": v},
                "scores": [v, v],
                "mean": v,
                "ci95": [-1e308, 1.7e308],
                "status": "scored",
                "seconds": 1e307,
            }
            for i, v in enumerate(values)
        ],
    }
    view = assemble({"id": "e", "name": "s"}, record)
    assert [p.best for p in view.best_so_far] == [1.7e308] * 5  # NaN is no score
    svg = _best_charts(view) + _params(view)
    coords = re.findall(r' (?:cx|cy|x|y|x1|x2|y1|y2)="([^"]*)"', svg)
    coords += [c for points in re.findall(r' points="([^"]*)"', svg) for xy in points.split() for c in xy.split(",")]
    assert coords and all(re.fullmatch(r"-?\d+(\.\d+)?", c) for c in coords), [c for c in coords if "n" in c][:5]
    assert svg.count("<circle") == 4 + 4 + 4 + 4  # two curves and two scatters, the NaN mean left out
    assert svg.count('class="pline"') == 4 and svg.count("hsl(120,70%,40%)") == 1  # the parallel chart


def test_browser_opens_the_search_page_and_sorts(recorded: Recorded, view: SearchView, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("EVSYS_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(recorded.server.url + "/")
            page.get_by_role("link", name="search view").click()
            page.wait_for_url(f"**/searches/{recorded.experiment_id}")
            assert page.locator("h1").inner_text().startswith("view_search")
            rows = page.locator("table.candidates > tbody > tr")
            assert rows.count() == 8
            assert rows.first.locator("td").nth(1).inner_text() == view.best
            assert "best" in (rows.first.get_attribute("class") or "")
            charts = page.locator(".best-so-far svg.chart")
            assert charts.count() == 2 and page.locator(".best-so-far polyline.best-line").count() == 2
            box = charts.first.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 200
            assert page.locator(".best-so-far svg.chart").first.locator("circle.point").count() == 8
            assert page.locator(".params svg.chart").count() == 3
            assert page.locator("svg.parallel polyline.pline").count() == 8
            assert page.locator(".tree .node").count() == 9  # the base recipe and the 8 candidates
            assert page.locator(".tree .edge").count() == len(view.edges)
            assert page.locator("table.rejected > tbody > tr").count() >= 1
            assert "rejected proposals" in page.locator("table.spent").inner_text()
            page.screenshot(path=str(shots / "search_page.png"), full_page=True)
            page.locator(".tree").screenshot(path=str(shots / "search_lineage.png"))
            page.get_by_role("link", name="mean ▲").click()  # the best (lowest) first; flip it
            page.wait_for_url("**order=desc")
            first = page.locator("table.candidates > tbody > tr").first.locator("td").nth(1).inner_text()
            assert first == sort_candidates(view.candidates, "mean", "desc")[0].id != view.best
            page.locator("table.candidates").screenshot(path=str(shots / "search_candidates_desc.png"))
            page.locator(".tree .node", has_text=view.best).first.hover()
            run = view.candidates[[c.id for c in view.candidates].index(view.best)].runs[0]
            page.locator(f'a[href="/runs/{run["id"]}"]').click()
            page.wait_for_url(f"**/runs/{run['id']}")
            assert view.best in page.locator("h1").inner_text()
        finally:
            browser.close()
