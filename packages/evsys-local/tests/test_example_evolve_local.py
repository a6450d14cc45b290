"""examples/evolve_local: its config validates as shipped, and a tiny version of the search (2 candidates
of 2-4 SFT steps on 200 rows, 8 tasks per benchmark) runs end to end on local_tiny's real model and data,
made by its make_data.py in a temp dir; compare.py then reads the finished search."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from evsys_sdk import validate_yaml
from evsys_sdk.search import evolve
from evsys_sdk.search.engine import Search, load_search_config

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "evolve_local"


@pytest.fixture(scope="module")
def local_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """local_tiny's data, benchmarks and model, made by its own make_data.py (deterministic) in a temp dir."""
    root = tmp_path_factory.mktemp("local_tiny")
    shutil.copy(REPO / "examples" / "local_tiny" / "make_data.py", root)
    subprocess.run([sys.executable, str(root / "make_data.py")], check=True, capture_output=True, timeout=240)
    train = root / "data" / "train.jsonl"
    train.write_text("".join(train.read_text().splitlines(keepends=True)[:200]))
    return root


def _config(local_tiny: Path, tmp_path: Path) -> dict[str, Any]:
    text = (EXAMPLE / "config.yaml").read_text().replace("examples/local_tiny", str(local_tiny))
    cfg: dict[str, Any] = yaml.safe_load(text)
    cfg["output_dir"] = str(tmp_path / "out")
    return cfg


def test_the_shipped_config_validates(local_tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config(local_tiny, tmp_path)))
    assert validate_yaml(path, deep=True) == []
    search = Search(load_search_config(path))  # the search block: space paths and bounds, the proposer
    assert {a.path for a in search.space.axes} == {
        "algorithm.params.learning_rate",
        "algorithm.params.warmup_steps",
        "algorithm.params.max_steps",
    }
    assert search.search.budget.arm_seconds == 120 and search.base.algorithm.params["max_steps"] == 75


def test_a_tiny_search_runs_and_compare_reads_it(
    local_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("EVSYS_WORKSPACE", str(tmp_path / "workspace"))
    cfg = _config(local_tiny, tmp_path)
    cfg["n_repeats"] = 1
    cfg["run"]["algorithm"]["params"].update(max_steps=3, warmup_steps=1)
    cfg["search"]["budget"]["candidates"] = 2
    cfg["search"]["space"]["algorithm.params.max_steps"] = {"int_uniform": [2, 4]}
    for bench in cfg["metadata"]["benchmark"]:
        bench["limit"] = 8
    result = evolve(cfg)
    assert [c.status for c in result.candidates] == ["scored", "scored"]
    assert result.candidates[0].operator == "base" and result.candidates[0].patch["algorithm.params.max_steps"] == 3
    for c in result.candidates:
        assert c.run_config.max_seconds == cfg["search"]["budget"]["arm_seconds"]  # the same cap for every arm
        assert 2 <= c.run_config.algorithm.params["max_steps"] <= 4
    sys.path.insert(0, str(EXAMPLE))
    try:
        import compare
    finally:
        sys.path.remove(str(EXAMPLE))
    assert compare.main(cfg["name"]) == 0
    out = capsys.readouterr().out
    assert "hand-set (c0000: learning_rate=0.003, warmup_steps=1, max_steps=3)" in out, out
    assert "held-out exact match" in out and "(n=1:" in out and "search: 2 candidates" in out
