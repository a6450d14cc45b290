"""Scripted failures: 5xx, connection refused, a slow server, the real server killed mid-run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadServer, experiment_config, free_port, make_key

from evsys_dashboard import DashboardClient, ExperimentRun
from evsys_dashboard.mirror import read_json, read_jsonl
from evsys_dashboard.sync import sync_mirror
from evsys_sdk.tracking.store import LocalStore


class Scripted:
    """A loopback HTTP server answering POSTs with scripted statuses (then 200), recording each request."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        delays: list[float] | None = None,
        retry_after: str | None = None,
        always: dict[str, int] | None = None,
    ):
        self.statuses = list(statuses or [])
        self.always = dict(always or {})  # a path ending -> the status it always gets
        self.delays = list(delays or [])
        self.retry_after = retry_after
        self.requests: list[tuple[str, dict[str, Any], int, float]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    delay = outer.delays.pop(0) if outer.delays else 0.0
                time.sleep(delay)
                with outer.lock:
                    fixed = [code for end, code in outer.always.items() if self.path.endswith(end)]
                    status = fixed[0] if fixed else outer.statuses.pop(0) if outer.statuses else 200
                    outer.requests.append((self.path, body, status, time.monotonic()))
                answer = {"ok": True, "created": True} if status < 400 else {"error": "internal error"}
                if status < 400 and "rows" in body:
                    answer["inserted"] = len(body["rows"])
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status >= 500 and outer.retry_after:
                    self.send_header("Retry-After", outer.retry_after)
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def ok_paths(self) -> list[str]:
        return [p.split("/api/dashboard/api", 1)[1] for p, _, s, _ in self.requests if s < 400]


@pytest.fixture
def scripted() -> Iterator[type[Scripted]]:
    yield Scripted


def client_for(url: str, log_dir: Path, **kwargs: Any) -> DashboardClient:
    return DashboardClient(base_url=url, api_key="k", project_id="p", log_dir=log_dir, **kwargs)


def test_5xx_falls_back_then_retries_with_backoff_in_order(tmp_path: Path) -> None:
    with Scripted([503, 502]) as srv, client_for(srv.url, tmp_path, backoff_s=0.3) as client:
        exp = client.create_experiment(experiment_name="e")  # 503: queued, the backend backs off 0.3 s
        assert client.backend_down and client.queued_requests == 1
        run = client.create_run(experiment_id=exp["id"])  # inside the backoff window: queued, no request
        assert len(srv.requests) == 1 and client.queued_requests == 2
        time.sleep(0.35)
        client.update_run(run["id"], status="running")  # backoff over: retried, 502, the backoff doubles to 0.6 s
        assert len(srv.requests) == 2 and client.queued_requests == 3
        time.sleep(0.05)
        client.update_run(run["id"], status="completed")  # still backing off
        assert len(srv.requests) == 2
        time.sleep(0.6)
        client.update_experiment(exp["id"], status="completed")  # the server is back: the queue replays in order
        assert client.queued_requests == 0 and not client.backend_down
    assert srv.ok_paths() == [
        "/sdk/experiments/",
        "/sdk/runs/",
        f"/sdk/runs/{run['id']}/",
        f"/sdk/runs/{run['id']}/",
        f"/sdk/experiments/{exp['id']}/",
    ]
    retries = [t for p, _, _, t in srv.requests]
    assert retries[1] - retries[0] >= 0.3 and retries[2] - retries[1] >= 0.6  # exponential backoff
    assert [b.get("status") for p, b, s, _ in srv.requests if s < 400][2:4] == ["running", "completed"]


def test_retry_after_sets_the_backoff(tmp_path: Path) -> None:
    with Scripted([503], retry_after="0.05") as srv, client_for(srv.url, tmp_path, backoff_s=30) as client:
        client.create_experiment(experiment_name="e")
        assert client.backend_down
        time.sleep(0.1)
        client.create_experiment(experiment_name="f")
        assert client.queued_requests == 0 and len(srv.ok_paths()) == 2


def test_connection_refused_then_the_server_comes_up(tmp_path: Path) -> None:
    port = free_port()
    db_path = tmp_path / "db.sqlite"
    key = make_key(db_path)
    client = DashboardClient(
        base_url=f"http://127.0.0.1:{port}", api_key=key, project_id="proj-a", log_dir=tmp_path / "m", backoff_s=0.05
    )
    with ExitStack() as stack:
        with ExperimentRun(client, experiment_name="late server") as run:
            for step in range(100):
                run.log_step(step, loss=1 / (step + 1))
            client.flush()
            assert client.backend_down and client.queued_requests >= 2  # the experiment, the run, a metrics batch
            stack.enter_context(ThreadServer(db_path, port=port))
            time.sleep(0.1)
            run.log_eval(metrics={"acc": 1.0})  # past the backoff: everything queued is replayed first
            assert client.queued_requests == 0 and not client.backend_down
        client.close()
        store = LocalStore(db_path)
        assert store.find_experiment(run.experiment_id)["status"] == "completed"  # type: ignore[index]
        assert len(store.step_metrics(run.run_id)) == 100 and len(store.run_evals(run.run_id)) == 1


def test_step_metrics_are_batched_off_the_training_thread(tmp_path: Path) -> None:
    with Scripted(delays=[0.0, 0.9]) as srv:  # the first metrics request takes 0.9 s
        client = client_for(srv.url, tmp_path, batch_size=500)
        client.create_experiment(experiment_name="e")
        t0 = time.perf_counter()
        for step in range(5000):
            client.log_step_metric("run-1", step=step, loss=1.0, accuracy=None)
        spent = time.perf_counter() - t0
        assert spent < 0.9  # less than that one request: the training thread never waited on the network
        client.close()
    batches = [b for p, b, _, _ in srv.requests if p.endswith("/metrics/")]
    assert 10 <= len(batches) <= 12  # 5000 rows in batches of at most 500, not 5000 requests
    rows = [r for b in batches for r in b["rows"]]
    assert [r["step"] for r in rows] == list(range(5000))
    assert rows[0]["metrics"] == {"loss": 1.0} and len({r["uid"] for r in rows}) == 5000
    assert len(read_jsonl(tmp_path / "generations" / "run-1" / "metrics.jsonl")) == 5000


def test_server_killed_mid_run_then_sync_makes_it_whole(
    tmp_path: Path, bench_dir: Path, spawn_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from evsys_sdk.orchestration.experiment import Experiment
    from evsys_sdk.run.runner import run_experiment
    from evsys_sdk.tracking.store import LocalStore

    db_path = tmp_path / "server.db"
    key = make_key(db_path)
    port = free_port()
    proc = spawn_server(db_path, port)
    trained: list[str] = []

    def train(cfg: Any) -> Any:
        trained.append(cfg.run.name)
        if len(trained) == 2:  # the server dies after the first arm was fully recorded
            proc.kill()
            proc.wait(timeout=10)
        return run_experiment(cfg)

    mirror = tmp_path / "mirror"
    client = DashboardClient(
        base_url=f"http://127.0.0.1:{port}", api_key=key, project_id="proj-a", log_dir=mirror, backoff_s=0.05
    )
    result = Experiment(experiment_config(tmp_path, bench_dir, n_repeats=2), store=client, train_fn=train).run()
    client.close()
    assert result.status == "completed" and all(a.status == "completed" for a in result.arms)
    assert "unavailable" in caplog.text
    # everything is in the mirror
    eid = str(result.experiment_id)
    assert read_json(mirror / "experiments" / eid / "experiment.json")["status"] == "completed"  # type: ignore[index]
    assert len(read_jsonl(mirror / "experiments" / eid / "groups.jsonl")) == 2
    for arm in result.arms:
        gen = mirror / "generations" / str(arm.run_id)
        assert read_json(gen / "generation.json")["status"] == "completed"  # type: ignore[index]
        assert read_jsonl(gen / "metrics.jsonl") and len(read_jsonl(gen / "evals.jsonl")) == 1
    # the server saw the first arm whole and only the creation of the second
    partial = LocalStore(db_path)
    assert [r["status"] for r in partial.experiment_runs(eid)] == ["completed", "running"]
    # a new server on the same database; sync twice
    port2 = free_port()
    spawn_server(db_path, port2)
    with DashboardClient(base_url=f"http://127.0.0.1:{port2}", api_key=key, project_id="proj-a") as online:
        first = sync_mirror(online, mirror)
        again = sync_mirror(online, mirror)
    assert first.created > 0 and first.errors == []
    assert again.created == 0 and again.existing == first.created + first.existing
    store = LocalStore(db_path)
    exp = store.find_experiment(eid)
    assert exp is not None and exp["status"] == "completed" and exp["conclusion"] == result.conclusion
    runs = store.experiment_runs(eid)
    assert sorted(r["name"] for r in runs) == sorted(a.name for a in result.arms)
    assert len(store.experiment_groups(eid)) == 2
    for run in runs:
        assert run["status"] == "completed"
        mirrored = read_jsonl(mirror / "generations" / run["id"] / "metrics.jsonl")
        assert len(store.step_metrics(run["id"])) == len(mirrored)  # no duplicates of the rows sent before the kill
        assert len(store.run_evals(run["id"])) == 1


def test_a_write_the_server_keeps_failing_on_is_set_aside_and_the_rest_go_on(tmp_path: Path) -> None:
    bad = "/sdk/runs/run-1/metrics/"
    with Scripted(always={bad: 500}) as srv, client_for(srv.url, tmp_path, backoff_s=0.01, batch_size=100) as client:
        for run in ("run-1", "run-2"):
            for step in range(300):
                client.log_step_metric(run, step=step, loss=1.0)
            client.flush()
            time.sleep(0.05)
        deadline = time.monotonic() + 20
        while not client.flush() and time.monotonic() < deadline:  # until every write is delivered or set aside
            time.sleep(0.03)
        assert client.queued_requests == 0 and not client.backend_down
        aside = client.set_aside
        assert aside and {s.route for s in aside} == {bad}  # run-1's batches (as many as the sender made)
        client.update_run("run-2", status="completed")
    tried = [b for p, b, s, _ in srv.requests if p.endswith(bad)]
    assert len(tried) == 3 * len(aside)  # each tried three times
    assert sorted(r["step"] for b in tried for r in b["rows"]) == sorted(list(range(300)) * 3)
    delivered = [b for p, b, s, _ in srv.requests if p.endswith("/run-2/metrics/") and s == 200]
    assert sum(len(b["rows"]) for b in delivered) == 300  # run-2 never waited behind run-1
    assert srv.ok_paths()[-1] == "/sdk/runs/run-2/"
    recorded = read_jsonl(tmp_path / "set_aside.jsonl")
    assert len(recorded) == len(aside) and recorded[0]["route"] == bad and "HTTP 500" in recorded[0]["reason"]
    assert len(read_jsonl(tmp_path / "generations" / "run-1" / "metrics.jsonl")) == 300  # kept in the mirror


def test_a_down_server_is_retried_for_as_long_as_it_takes(tmp_path: Path) -> None:
    with Scripted([503] * 5) as srv, client_for(srv.url, tmp_path, backoff_s=0.01, max_backoff_s=0.02) as client:
        client.create_experiment(experiment_name="e")
        for _ in range(40):
            if client.flush():
                break
            time.sleep(0.02)
        assert client.queued_requests == 0 and client.set_aside == []  # 503 says "down", not "this record"
    assert [s for _, _, s, _ in srv.requests] == [503] * 5 + [200]


def test_sync_sets_a_failing_record_aside_and_replays_the_rest(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    offline = DashboardClient(log_dir=mirror, offline=True)
    for name in ("a", "b"):
        exp = offline.create_experiment(experiment_name=name)
        run = offline.create_run(experiment_id=exp["id"], status="completed")
        for step in range(10):
            offline.log_step_metric(run["id"], step=step, loss=0.5)
    offline.close()
    first = sorted(p.name for p in (mirror / "generations").iterdir())[0]
    bad = f"/sdk/runs/{first}/metrics/"
    with Scripted(always={bad: 500}) as srv:
        client = client_for(srv.url, tmp_path / "m2")
        report = sync_mirror(client, mirror, retry_s=0.01)
        client.close()
    assert len(report.set_aside) == 1 and bad in report.set_aside[0] and "HTTP 500" in report.set_aside[0]
    assert report.errors == [] and "1 set aside" in report.summary()
    assert sum(1 for p, _, _, _ in srv.requests if p.endswith(bad)) == 3
    sent = [p for p in srv.ok_paths() if p.endswith("/metrics/")]
    assert len(sent) == 1 and sent[0] != bad  # the other run's rows were still sent
