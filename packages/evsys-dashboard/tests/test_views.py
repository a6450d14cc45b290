"""What users see: the experiments list (hypothesis, status, best score, same names told apart), the
experiment page (baselines, group means with CIs, the continual stage x benchmark matrix, constant series
as values, phase starts), through the HTTP API and in headless Chromium (legend toggles, hover)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, experiment_config, tasks
from test_browser import CHROMIUM_ARGS, chromium_path

from evsys_dashboard.server.ui import fmt
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(180)


def _sweep(server: Server, tmp_path: Path, bench_dir: Path, **fields: Any) -> Any:
    bench = {"name": "qa", "path": str(bench_dir), "tags": ["test"], "models": [{"kind": "mock", "params": {}}]}
    meta = {"hypothesis": "a bigger learning rate wins", "success_metric": "qa.pass_rate", "benchmark": [bench]}
    cfg = experiment_config(tmp_path, bench_dir, n_repeats=3, metadata=meta, **fields)
    return Experiment(cfg, store=LocalStore(server.db_path)).run()


def _continual(server: Server, tmp_path: Path, bench_dir: Path) -> Any:
    from evsys_sdk.loading.yaml_loader import load_yaml

    halves = [tasks()[:4], tasks()[4:]]
    cfg = load_yaml(
        {
            "name": "chain",
            "output_dir": str(tmp_path / "chain"),
            "n_repeats": 2,
            "run": {
                "name": "c",
                "model": {"name": "tiny"},
                "backend": {"kind": "mock"},
                "algorithm": {"kind": "sft", "params": {"batch_size": 2, "num_epochs": 2, "lora_rank": 64}},
            },
            "continual": {"datasets": [{"source_kind": "in_memory", "rows": rows} for rows in halves]},
            "metadata": {
                "success_metric": "first.pass_rate",
                "benchmark": [
                    {"name": "first", "path": str(_bench(tmp_path / "b1", halves[0]))},
                    {"name": "second", "path": str(_bench(tmp_path / "b2", halves[1]))},
                ],
            },
        }
    )
    return Experiment(cfg, store=LocalStore(server.db_path)).run()


def _bench(folder: Path, rows: list[dict[str, Any]]) -> Path:
    import json

    folder.mkdir()
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in rows))
    return folder


def test_experiments_list_tells_same_names_apart(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    first = _sweep(server, tmp_path / "1", bench_dir)
    second = _sweep(server, tmp_path / "2", bench_dir)
    with server.http(key=None) as http:
        index = http.get("/").text
    rows = re.findall(r"<tr>(.*?)</tr>", index.split("<tbody>")[1])
    assert len(rows) == 2
    for row, result, nth in ((rows[0], second, "#2"), (rows[1], first, "#1")):  # newest first
        assert f">{result.experiment_id[:8]}</code>" in row and nth in row
        assert "a bigger learning rate wins" in row and "status-completed" in row
        assert f">{fmt(result.best_score)}<" in row and ">6<" in row  # the six arms, not the baseline


def test_experiment_page_shows_baselines_group_cis_and_constants(
    server: Server, tmp_path: Path, bench_dir: Path
) -> None:
    result = _sweep(server, tmp_path, bench_dir)
    with server.http(key=None) as http:
        page = http.get(f"/experiments/{result.experiment_id}").text
    assert "Arms (6 + 1 baseline)" in page and '<tr class="baseline">' in page
    assert "<h2>Baselines (untrained models)</h2>" in page and "baseline mock" in page
    stats = result.group_stats()
    for name, s in stats.items():
        cell = f"{fmt(s.mean)} ± {fmt(s.half_width)} (n=3)<br>"
        assert cell in page, (name, cell)
        assert f"95% CI [{fmt(s.ci95_low)}, {fmt(s.ci95_high)}]" in page
    assert '<tr class="best"><td>' + html.escape(str(result.best_group)) in page
    assert 'aria-label="train/loss"' in page


def test_a_constant_series_is_shown_as_its_value(server: Server) -> None:
    P = "/api/dashboard/api/sdk"
    with server.http() as http:
        eid = http.post(f"{P}/experiments/", json={"experiment_name": "flat"}).json()["experiment"]["id"]
        runs = [http.post(f"{P}/runs/", json={"experiment_id": eid, "name": n}).json()["run"]["id"] for n in "ab"]
        for i, rid in enumerate(runs):
            rows = [{"step": s, "metrics": {"lr": 1e-4, "clip": float(i), "loss": 1 / s + i}} for s in range(1, 5)]
            assert http.post(f"{P}/runs/{rid}/metrics/", json={"rows": rows}).status_code == 200
        page = http.get(f"/experiments/{eid}").text
    constants = page.split('<div class="constants">')[1].split('<div class="charts">')[0]
    assert "<b>lr</b> = 0.0001 in every arm" in constants and "<b>clip</b> = a 0, b 1" in constants
    assert 'aria-label="loss"' in page and 'aria-label="lr"' not in page and 'aria-label="clip"' not in page


def test_continual_stage_by_benchmark_matrix(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    result = _continual(server, tmp_path, bench_dir)
    with server.http(key=None) as http:
        page = http.get(f"/experiments/{result.experiment_id}").text
    assert "Stage x benchmark (pass_rate, mean ± 95% CI over chains)" in page
    table = page.split('class="stage-matrix"')[1].split("</table>")[0]
    assert "<th>first</th><th>second</th>" in table
    cells = result.stage_cells()
    for stage, row in cells.items():
        assert f"<td>{stage}</td>" in table
        for s in row.values():
            assert f"<td>{fmt(s.mean)} ± {fmt(s.half_width)} (n=2)</td>" in table


def test_combo_phases_are_marked_on_one_curve(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    from evsys_sdk.loading.yaml_loader import load_yaml

    phases = [{"kind": "sft", "config": {"max_steps": 3}}, {"kind": "mock_rl", "config": {"num_steps": 3}}]
    run = {
        "name": "combo",
        "model": {"name": "tiny"},
        "backend": {"kind": "mock"},
        "data": {"source_kind": "in_memory", "rows": tasks()},
        "algorithm": {"kind": "combo", "params": {"phases": phases}},
    }
    cfg = load_yaml({"name": "phased", "output_dir": str(tmp_path / "out"), "run": run})
    result = Experiment(cfg, store=LocalStore(server.db_path)).run()
    with server.http(key=None) as http:
        page = http.get(f"/experiments/{result.experiment_id}").text
    assert page.count('class="phase-start"') >= 2 and "phase 2</text>" in page  # on both charts
    assert 'aria-label="phase"' not in page  # the phase is a marker, not a chart


def test_legend_toggles_and_hover_in_chromium(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    result = _sweep(server, tmp_path, bench_dir)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(f"{server.url}/experiments/{result.experiment_id}")
            box = page.locator(".chart-box", has=page.locator('svg[aria-label="train/loss"]'))
            lines = box.locator("polyline.series")
            assert lines.count() == 6
            dashes = {lines.nth(i).get_attribute("stroke-dasharray") for i in range(6)}
            assert len(dashes) == 4  # lines apart by pattern as well as colour
            assert box.locator(".marker.s1").count() >= 2
            assert lines.nth(1).is_visible()
            box.locator("input.t1").uncheck()
            assert not lines.nth(1).is_visible() and lines.nth(0).is_visible()
            box.locator("input.t1").check()
            assert lines.nth(1).is_visible()
            box.locator("label.l2").hover()
            widths = [lines.nth(i).evaluate("e => getComputedStyle(e).strokeWidth") for i in range(3)]
            assert widths[2] == "3.2px" and widths[0] == "1.6px"
            opacity = lines.nth(0).evaluate("e => getComputedStyle(e).opacity")
            assert float(opacity) < 0.5  # the others fade while one is highlighted
        finally:
            browser.close()
