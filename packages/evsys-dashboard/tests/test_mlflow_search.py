"""runs/search's filter and order_by grammar (MLflow's), over rendered runs."""

from __future__ import annotations

import math
import random
import re
import time
from typing import Any

import pytest

from evsys_dashboard.server.mlflow_api.search import like, matches, parse_filter, parse_order, sort_runs

pytestmark = pytest.mark.timeout(30)


def _run(run_id: str, start: int, metrics: dict[str, Any], params: dict[str, str], tags: dict[str, str]) -> Any:
    pairs = [{"key": k, "value": v} for k, v in params.items()]
    return {
        "info": {"run_id": run_id, "run_name": f"name-{run_id}", "status": "FINISHED", "start_time": start},
        "data": {
            "metrics": [{"key": k, "value": v, "timestamp": 0, "step": 0} for k, v in metrics.items()],
            "params": pairs,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
    }


RUNS = [
    _run("a", 3, {"loss": 0.5, "acc": "NaN"}, {"lr": "0.1", "opt": "AdamW"}, {"mlflow.parentRunId": "p", "x y": "1"}),
    _run("b", 2, {"loss": 0.2}, {"lr": "0.01"}, {}),
    _run("c", 1, {}, {"lr": "0.1", "seed": "3"}, {"stage": "warm'up"}),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["a", "b", "c"]),
        ("metrics.loss < 0.3", ["b"]),
        ("metric.loss >= 0.2 AND params.lr = '0.1'", ["a"]),
        ("metrics.acc > 0", []),  # NaN compares false
        ("params.lr != '0.1'", ["b"]),
        ("params.opt LIKE 'Adam%'", ["a"]),
        ("params.opt LIKE 'adam%'", []),
        ("params.opt ILIKE 'adam_'", ["a"]),
        ("tags.`mlflow.parentRunId` = 'p'", ["a"]),
        ('tags."x y" = "1"', ["a"]),
        ("tags.stage = 'warm''up'", ["c"]),
        ("params.seed IS NULL", ["a", "b"]),
        ("params.seed IS NOT NULL and params.lr = '0.1'", ["c"]),
        ("attributes.run_id IN ('a', 'c')", ["a", "c"]),
        ("run.run_id NOT IN ('a')", ["b", "c"]),
        ("attributes.start_time > 1", ["a", "b"]),
        ("attributes.run_name LIKE '%-b'", ["b"]),
        ("run_name = 'name-c'", ["c"]),
    ],
)
def test_filters_select_what_mlflow_selects(text: str, expected: list[str]) -> None:
    clauses = parse_filter(text)
    assert [r["info"]["run_id"] for r in RUNS if matches(r, clauses)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.loss LIKE '1'", "metrics.loss takes"),
        ("params.lr < 1", "params.lr takes"),
        ("metrics.loss < 'x'", "needs a number"),
        ("param.lr = 0.1", "needs a quoted string"),
        ("loss < 1", "no attribute 'loss'"),
        ("status = 'FINISHED' OR status = 'FAILED'", "joined by AND"),
        ("dataset.name = 'x'", "must be metrics, params, tags or attributes"),
        ("metrics.loss IS NULL", "IS [NOT] NULL applies to params and tags"),
        ("params.lr IN 'x'", "needs a list"),
        ("metrics.loss ~ 1", "cannot read the filter"),
        ("metrics.loss <", "needs a number"),
    ],
)
def test_filters_mlflow_refuses_are_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_filter(text)


def test_order_by_puts_missing_values_last_then_newest_first() -> None:
    names = [r["info"]["run_id"] for r in sort_runs(RUNS, parse_order(["metrics.loss"]))]
    assert names == ["b", "a", "c"]
    names = [r["info"]["run_id"] for r in sort_runs(RUNS, parse_order(["metrics.loss DESC"]))]
    assert names == ["a", "b", "c"]
    names = [r["info"]["run_id"] for r in sort_runs(RUNS, parse_order(["params.lr ASC", "attributes.start_time"]))]
    assert names == ["b", "c", "a"]
    assert [r["info"]["run_id"] for r in sort_runs(RUNS, [])] == ["a", "b", "c"]  # start_time DESC
    assert math.isnan(float(RUNS[0]["data"]["metrics"][1]["value"]))
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        parse_order(["attributes.nope DESC"])


def test_like_is_sqls_and_linear() -> None:
    """Against SQL's meaning (a regex of .* and ., fine on tiny inputs), then on an input where that
    regex backtracks for hours: %a%a%...%b against 8,000 a's."""
    rng = random.Random(0)
    for _ in range(5000):
        pattern = "".join(rng.choice("ab%_") for _ in range(rng.randint(0, 6)))
        text = "".join(rng.choice("ab") for _ in range(rng.randint(0, 7)))
        sql = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
        assert like(pattern, text) == (re.fullmatch(sql, text, re.DOTALL) is not None), (pattern, text)
    assert like("ADAM%", "adamw", ignore_case=True) and not like("ADAM%", "adamw")
    started = time.perf_counter()
    assert not like("%a" * 2000 + "%b", "a" * 8000)
    assert time.perf_counter() - started < 2.0
