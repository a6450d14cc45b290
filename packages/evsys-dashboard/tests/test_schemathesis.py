"""schemathesis over /openapi.json against the real server: every check, positive and negative data, with
a key (against real records) and without one. It must find nothing.

Bounded in time, not in examples: schemathesis cycles through its phases (200 examples per operation a
cycle with the key, 100 without, where every answer is the 401 of the front door) until ``--max-time``
is spent: 150 s with the key, 60 s without (``EVSYS_SCHEMATHESIS_SECONDS`` sets the keyed figure, the
keyless gets 40% of it). A fast machine runs several cycles, a loaded one fewer; the run lasts as long."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import PROJECT

from evsys_dashboard.testing import DashboardServer

P = "/api/dashboard/api/sdk"
MLFLOW = "/mlflow/api/2.0/mlflow"
SECONDS = int(os.environ.get("EVSYS_SCHEMATHESIS_SECONDS", "150"))


def _records(server: DashboardServer) -> dict[str, str]:
    """One record of each kind, so that operations on an id reach their handlers instead of a 404."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}) as http:
        eid = http.post(f"{P}/experiments/", json={"experiment_name": "st"}).json()["experiment"]["id"]
        rid = http.post(f"{P}/runs/", json={"experiment_id": eid}).json()["run"]["id"]
        did = http.post(f"{P}/datasets/", json={"name": "d"}).json()["dataset"]["id"]
        bid = http.post(f"{P}/benchmarks/", json={"name": "b"}).json()["benchmark"]["id"]
        mlflow_eid = http.post(f"{MLFLOW}/experiments/create", json={"name": "st-mlflow"}).json()["experiment_id"]
        mlflow_rid = http.post(f"{MLFLOW}/runs/create", json={"experiment_id": mlflow_eid}).json()["run"]["info"][
            "run_id"
        ]
    return {
        "experiments": eid,
        "runs": rid,
        "datasets": did,
        "benchmarks": bid,
        "mlflow_experiment": mlflow_eid,
        "mlflow_run": mlflow_rid,
    }


def _config(path: Path, ids: dict[str, str]) -> Path:
    kinds = {"experiments": "experiment_id", "runs": "run_id", "datasets": "record_id", "benchmarks": "record_id"}
    blocks = [
        f'[[operations]]\ninclude-path-regex = "/sdk/{kind}/\\\\{{"\nparameters = {{ "path.{name}" = "{ids[kind]}" }}\n'
        for kind, name in kinds.items()
    ]
    experiment, run = ids["mlflow_experiment"], ids["mlflow_run"]
    blocks += [
        # MLflow answers 400 for refusals that depend on what is stored (an experiment name taken, a param
        # logged with another value, a page token of another query, a filter it cannot read): data valid by
        # the schema may get them
        '[[operations]]\ninclude-tag = "mlflow"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]\n',
        '[[operations]]\ninclude-path-regex = "/mlflow-artifacts/artifacts/\\\\{"\n'
        f'parameters = {{ "path.experiment_id" = "{experiment}", "path.run_id" = "{run}" }}\n',
        '[[operations]]\ninclude-path-regex = "/mlflow/(runs/get|metrics/get-history)$"\n'
        f'parameters = {{ "query.run_id" = "{run}" }}\n',
        '[[operations]]\ninclude-path-regex = "/mlflow/experiments/get$"\n'
        f'parameters = {{ "query.experiment_id" = "{experiment}" }}\n',
    ]
    # 413 (over the body limit) is a rejection too: the coverage phase sends maxItems + 1 rows of deep JSON
    statuses = "[400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]"
    rejection = f"[checks.negative_data_rejection]\nexpected-statuses = {statuses}\n"
    path.write_text(rejection + "\n" + "\n".join(blocks))
    return path


def _schemathesis(
    config: Path, url: str, *headers: str, examples: int, seconds: int, report: Path
) -> subprocess.CompletedProcess[str]:
    """One worker: hypothesis describes strategies with ast.parse, which CPython 3.11 cannot run in two
    threads at once ("AST constructor recursion depth mismatch")."""
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert exe, "schemathesis is in the [test] extra: pip install './packages/evsys-dashboard[test]'"
    command = [exe, "--config-file", str(config), "--no-color", "run", f"{url}/openapi.json"]
    command += [
        "--checks",
        "all",
        "--mode",
        "all",
        "-n",
        str(examples),
        "--max-time",
        str(seconds),
        "--seed",
        "15",
        "--workers",
        "1",
    ]
    command += ["--report", "junit", "--report-junit-path", str(report), "--request-timeout", "30"]
    for header in headers:
        command += ["-H", header]
    env = {**os.environ, "NO_COLOR": "1"}
    # run in the test's folder: schemathesis keeps a cache (.schemathesis/) in its working directory
    return subprocess.run(command, capture_output=True, text=True, timeout=seconds + 600, env=env, cwd=report.parent)


@pytest.mark.timeout(1000)
@pytest.mark.parametrize("keyed", [True, False], ids=["with-key", "without-key"])
def test_schemathesis_finds_nothing(tmp_path: Path, keyed: bool) -> None:
    with DashboardServer(tmp_path / "server.db", project=PROJECT) as server:
        config = _config(tmp_path / "schemathesis.toml", _records(server))
        headers = [f"Authorization: Bearer {server.key}"] if keyed else []
        examples, seconds = (200, SECONDS) if keyed else (100, max(1, SECONDS * 2 // 5))
        done = _schemathesis(
            config, server.url, *headers, examples=examples, seconds=seconds, report=tmp_path / "junit.xml"
        )
        stderr = server.stderr()
    summary = "\n".join(done.stdout.splitlines()[-30:])
    print(summary)  # the figures: operations, test cases generated, failures
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    generated = re.search(r"(\d+) generated", done.stdout)
    operations = re.search(r"Tested: (\d+)", done.stdout)
    assert operations and int(operations[1]) >= 35, summary  # the SDK's 20 operations and MLflow's 15
    # at least 20 cases an operation with the key; without, 10 (each is the front door's 401, in 40% of the time)
    assert generated and int(generated[1]) >= (20 if keyed else 10) * int(operations[1]), summary
    assert "Internal error" not in stderr and "Traceback" not in stderr, stderr[-3000:]
