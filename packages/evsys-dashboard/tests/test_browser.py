"""The web UI in real headless Chromium (Debian's ``chromium``, driven by Playwright's Python driver).

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) or ``EVSYS_CHROMIUM`` pointing at a
Chromium binary; Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import Server, experiment_config

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("EVSYS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "the browser test needs Debian's chromium: apt-get install -y chromium"
    return path


def test_experiment_page_arms_table_chart_and_click_through(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    from evsys_sdk.orchestration.experiment import Experiment

    with server.client(tmp_path / "mirror") as client:
        cfg = experiment_config(tmp_path, bench_dir, name="browser <script>window.pwned=1</script>", n_repeats=2)
        result = Experiment(cfg, store=client).run()
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(server.url + "/")
            page.get_by_role("link", name=cfg.name).click()
            page.wait_for_url(f"**/experiments/{result.experiment_id}")
            assert page.locator("h1").inner_text().startswith(cfg.name)
            arms = page.locator("table.arms > tbody > tr")
            assert arms.count() == 4
            assert page.locator("svg.chart").count() >= 1
            assert page.locator("svg.chart polyline.series").count() >= 4
            box = page.locator("svg.chart").first.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 100
            assert page.evaluate("() => window.pwned === undefined")
            target = result.arms[1]
            page.get_by_role("link", name=target.name, exact=True).click()
            page.wait_for_url(f"**/runs/{target.run_id}")
            assert target.name in page.locator("h1").inner_text()
            assert page.locator("table.evals > tbody > tr").count() == 1
            assert "qa" in page.locator("table.evals").inner_text()
            assert page.locator("table.checkpoints tbody tr").count() == 1
            page.screenshot(path=str(tmp_path / "arm.png"))
        finally:
            browser.close()
    assert dialogs == []
