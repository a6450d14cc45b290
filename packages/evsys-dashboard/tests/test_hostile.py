"""The server under hostile input and several projects: 4xx naming the field (never a 500), projects
isolated, no body read before the key, extreme values rendered, Host allow-list, key lifecycle."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PROJECT, Server, ThreadServer, make_key

from evsys_dashboard.server.db import ServerDB
from evsys_dashboard.server.models import MAX_FIELD_BYTES

P = "/api/dashboard/api/sdk"
LONE = '"\\udfff"'  # a lone surrogate, as JSON text: valid JSON, but not storable UTF-8


def _post_raw(http: httpx.Client, path: str, text: str) -> httpx.Response:
    return http.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def _ids(server: Server) -> tuple[str, str, str]:
    with server.http() as http:
        eid = http.post(f"{P}/experiments/", json={"experiment_name": "e"}).json()["experiment"]["id"]
        rid = http.post(f"{P}/runs/", json={"experiment_id": eid}).json()["run"]["id"]
        did = http.post(f"{P}/datasets/", json={"name": "d"}).json()["dataset"]["id"]
    return eid, rid, did


# every free-form JSON field the issue names, with a lone surrogate: (route, body text, field named in the error)
SURROGATES = [
    ("experiments/", '{"experiment_name": "x", "config": {"a": %s}}', "config"),
    ("experiments/", '{"experiment_name": "x", "notes": {"k": [%s]}}', "notes"),
    ("experiments/", '{"experiment_name": %s}', "experiment_name"),
    ("experiments/{eid}/", '{"conclusion": %s}', "conclusion"),
    ("runs/", '{"experiment_id": "{eid}", "run_config": {%s: 1}}', "run_config"),
    ("runs/{rid}/", '{"metrics": {"m": %s}}', "metrics"),
    ("runs/{rid}/", '{"summary": {"m": %s}}', "summary"),
    ("runs/{rid}/evals/", '{"metrics": {"acc": 1}, "breakdowns": {"by": %s}}', "breakdowns"),
    ("runs/{rid}/evals/", '{"metrics": {%s: 1}}', "metrics"),
    ("runs/{rid}/predictions/", '{"predictions": [{"text": %s}]}', "predictions"),
    ("runs/{rid}/metrics/", '{"step": 1, "metrics": {%s: 1}}', None),  # parsed by pydantic-core: invalid JSON
    ("datasets/", '{"name": "d", "metadata": {"m": %s}}', "metadata"),
    ("datasets/{did}/rows/", '{"rows": [{"q": %s}]}', "rows"),
]


@pytest.mark.parametrize(("route", "template", "field"), SURROGATES)
def test_a_lone_surrogate_anywhere_answers_422_naming_the_field(
    server: Server, route: str, template: str, field: str | None
) -> None:
    eid, rid, did = _ids(server)
    path = f"{P}/" + route.format(eid=eid, rid=rid, did=did)
    with server.http() as http:
        resp = _post_raw(http, path, template.replace("{eid}", eid) % LONE)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    if field is not None:
        assert field in detail[0]["loc"], detail
        assert "surrogate" in detail[0]["msg"] or "unicode" in detail[0]["msg"]


@pytest.mark.parametrize("depth", [300, 500, 950, 3000])
def test_a_config_nested_past_what_the_store_writes_answers_4xx(server: Server, depth: int) -> None:
    config = '{"a": ' * depth + "1" + "}" * depth
    with server.http() as http:
        resp = _post_raw(http, f"{P}/experiments/", f'{{"experiment_name": "deep", "config": {config}}}')
        assert 400 <= resp.status_code < 500, resp.text
        if depth < 900:  # parsed, then refused by the check that it can be stored
            assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "config"]
        ok = _post_raw(
            http, f"{P}/experiments/", '{"experiment_name": "fine", "config": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}"
        )
        assert ok.status_code == 201


def test_free_form_fields_are_capped(server: Server) -> None:
    big = "x" * (MAX_FIELD_BYTES + 1)
    with server.http() as http:
        for body in (
            {"experiment_name": "e", "notes": big},
            {"experiment_name": "e", "config": {"blob": big}},
            {"experiment_name": "e", "hypothesis": "h" * 1_000_001},
        ):
            resp = http.post(f"{P}/experiments/", json=body)
            assert resp.status_code == 422, resp.text[:200]
            assert set(body) - {"experiment_name"} == {resp.json()["detail"][0]["loc"][1]}
        assert http.post(f"{P}/experiments/", json={"experiment_name": "e", "notes": "x" * 1000}).status_code == 201


def test_the_index_reads_only_the_columns_it_shows(server: Server) -> None:
    with server.http() as http:
        for i in range(3):
            body = {"experiment_name": f"e{i}", "config": {"blob": "x" * 500_000}, "notes": "y" * 500_000}
            assert http.post(f"{P}/experiments/", json=body).status_code == 201
        assert http.get("/").status_code == 200
    db = ServerDB(server.db_path)
    rows = db.experiments()
    db.close()
    assert len(rows) == 3
    shown = {"id", "name", "status", "best_score", "created_at", "project_id", "n_runs", "hypothesis", "is_search"}
    assert set(rows[0]) == shown


def test_an_explicit_null_status_answers_422_not_sqlites_text(server: Server) -> None:
    eid, rid, _ = _ids(server)
    with server.http() as http:
        for path in (f"{P}/experiments/{eid}/", f"{P}/runs/{rid}/"):
            resp = http.post(path, json={"status": None})
            assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "status"], resp.text
            assert "NOT NULL" not in resp.text


def test_types_are_exact(server: Server) -> None:
    eid, rid, _ = _ids(server)
    with server.http() as http:
        assert http.post(f"{P}/runs/", json={"experiment_id": eid, "seed": "5"}).status_code == 422
        assert http.post(f"{P}/runs/", json={"experiment_id": eid, "seed": 5.5}).status_code == 422
        assert http.post(f"{P}/runs/", json={"experiment_id": eid, "seed": True}).status_code == 422
        assert http.post(f"{P}/runs/", json={"experiment_id": eid, "seed": 2**53}).status_code == 422
        assert http.post(f"{P}/runs/", json={"experiment_id": eid, "seed": 5.0}).status_code == 201  # JSON's 5
        assert http.post(f"{P}/runs/{rid}/checkpoints/", json={"uri": "u", "is_final": 1}).status_code == 422
        assert http.post(f"{P}/runs/{rid}/metrics/", json={"step": "1", "metrics": {"loss": 1}}).status_code == 422
        assert http.post(f"{P}/runs/{rid}/metrics/", json={"step": 1.5, "metrics": {"loss": 1}}).status_code == 422
        assert http.post(f"{P}/runs/{rid}/metrics/", json={"step": None, "rows": []}).status_code == 422
        assert http.post(f"{P}/runs/{rid}/metrics/", json={"step": 1, "metrics": {"loss": 1}}).status_code == 200


# ------------------------------------------------------------------------------------------ projects


def test_datasets_and_benchmarks_belong_to_their_project(server: Server) -> None:
    other = make_key(server.db_path, "proj-b")
    with server.http() as a, server.http(key=other) as b:
        for kind in ("datasets", "benchmarks"):
            mine = a.post(f"{P}/{kind}/", json={"name": "qa"}).json()[kind[:-1]]
            assert a.post(f"{P}/{kind}/{mine['id']}/rows/", json={"rows": [{"q": 1}]}).json()["inserted"] == 1
            assert b.get(f"{P}/{kind}/").json() == {kind: []}
            assert b.get(f"{P}/{kind}/{mine['id']}/").status_code == 404
            assert b.get(f"{P}/{kind}/{mine['id']}/rows/").status_code == 404
            assert b.post(f"{P}/{kind}/{mine['id']}/rows/", json={"rows": [{"q": 2}]}).status_code == 404
            theirs = b.post(f"{P}/{kind}/", json={"name": "qa"}).json()[kind[:-1]]
            assert theirs["version"] == 1  # names and versions resolve within the project
            assert [r["id"] for r in b.get(f"{P}/{kind}/").json()[kind]] == [theirs["id"]]
            assert [r["id"] for r in a.get(f"{P}/{kind}/").json()[kind]] == [mine["id"]]
            again = a.post(f"{P}/{kind}/", json={"name": "qa"}).json()[kind[:-1]]
            assert again["version"] == 2
            assert a.get(f"{P}/{kind}/{mine['id']}/rows/").json() == {"rows": [{"q": 1}]}


def test_the_client_resolves_benchmark_names_within_its_project(server: Server, tmp_path: Path) -> None:
    other = make_key(server.db_path, "proj-b")
    with server.client(tmp_path / "a") as a, server.client(tmp_path / "b", api_key=other, project_id="proj-b") as b:
        a.create_benchmark(name="shared-name", metadata={"owner": "a"})
        assert b.list_benchmarks() == []
        b.create_benchmark(name="shared-name", metadata={"owner": "b"})
        assert [x["metadata"]["owner"] for x in b.list_benchmarks()] == ["b"]
        assert [x["metadata"]["owner"] for x in a.list_benchmarks()] == ["a"]


OLD_DASH_SCHEMA = """
CREATE TABLE dash_projects (id TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE dash_api_keys (key_hash TEXT PRIMARY KEY, key_prefix TEXT NOT NULL, project_id TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE dash_experiment_projects (experiment_id TEXT PRIMARY KEY, project_id TEXT NOT NULL);
CREATE TABLE dash_seen (uid TEXT PRIMARY KEY) WITHOUT ROWID;
"""


def _old_database(path: Path, projects: list[str]) -> None:
    """A database as the server made it before datasets had projects (schema version 1)."""
    from evsys_sdk.tracking.store import SCHEMA

    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA + OLD_DASH_SCHEMA)
        for p in projects:
            db.execute("INSERT INTO dash_projects VALUES (?, 0)", (p,))
            db.execute("INSERT INTO dash_api_keys VALUES (?, 'evsys_x', ?, 0)", (f"hash-{p}", p))
        for did in ("used-by-a", "used-by-both", "unused"):
            db.execute("INSERT INTO datasets VALUES (?, 'benchmark', ?, 1, NULL, NULL, '{}', 0, 0)", (did, did))
        for p in projects:
            db.execute("INSERT INTO experiments (id, name, created_at, updated_at) VALUES (?, 'e', 0, 0)", (f"e-{p}",))
            db.execute("INSERT INTO dash_experiment_projects VALUES (?, ?)", (f"e-{p}", p))
            db.execute(
                "INSERT INTO runs (id, experiment_id, status, created_at, updated_at) VALUES (?, ?, 'x', 0, 0)",
                (f"r-{p}", f"e-{p}"),
            )
            used = ["used-by-both"] + (["used-by-a"] if p == "proj-a" else [])
            for did in used:
                db.execute(
                    "INSERT INTO evals (id, run_id, benchmark_id, metrics, created_at) VALUES (?, ?, ?, '{}', 0)",
                    (f"v-{p}-{did}", f"r-{p}", did),
                )


@pytest.mark.parametrize(
    ("projects", "owners"),
    [
        (["proj-a"], {"used-by-a": "proj-a", "used-by-both": "proj-a", "unused": "proj-a"}),
        (["proj-a", "proj-b"], {"used-by-a": "proj-a"}),  # the others: no project (the documented default)
    ],
)
def test_existing_databases_are_migrated(tmp_path: Path, projects: list[str], owners: dict[str, str]) -> None:
    path = tmp_path / "old.db"
    _old_database(path, projects)
    db = ServerDB(path)
    try:
        assert {r["dataset_id"]: r["project_id"] for r in db.local.query("SELECT * FROM dash_data_projects")} == owners
        assert db.check_key("whatever")[0] is None
        assert {r["key_prefix"] for r in db.list_keys()} == {"evsys_x"}
        key = db.create_key("proj-a")
        assert db.check_key(key)[0] == "proj-a"
    finally:
        db.close()
    again = ServerDB(path)  # a second start changes nothing
    try:
        assert len(again.local.query("SELECT * FROM dash_data_projects")) == len(owners)
    finally:
        again.close()


def test_a_run_may_not_name_another_experiments_group(server: Server) -> None:
    other = make_key(server.db_path, "proj-b")
    with server.http(key=other) as b:
        foreign = b.post(f"{P}/experiments/", json={"experiment_name": "b"}).json()["experiment"]["id"]
        gid = b.post(f"{P}/experiments/{foreign}/groups/", json={"name": "g"}).json()["group"]["id"]
    eid, rid, _ = _ids(server)
    with server.http() as a:
        for resp in (
            a.post(f"{P}/runs/", json={"experiment_id": eid, "group_id": gid}),
            a.post(f"{P}/runs/{rid}/", json={"group_id": gid}),
            a.post(f"{P}/runs/", json={"experiment_id": eid, "group_id": "no-such-group"}),
        ):
            assert resp.status_code == 409 and "group_id: no group" in resp.json()["error"], resp.text
        mine = a.post(f"{P}/experiments/{eid}/groups/", json={"name": "g"}).json()["group"]["id"]
        assert a.post(f"{P}/runs/", json={"experiment_id": eid, "group_id": mine}).status_code == 201


def test_another_projects_ids_are_no_oracle_for_any_record(server: Server) -> None:
    eid, rid, _ = _ids(server)
    with server.http() as a:
        gid = a.post(f"{P}/experiments/{eid}/groups/", json={"id": "g-1", "name": "g"}).json()["group"]["id"]
        a.post(f"{P}/runs/{rid}/evals/", json={"id": "ev-1", "metrics": {"acc": 0.5}})
        a.post(f"{P}/runs/{rid}/checkpoints/", json={"id": "ck-1", "uri": "a://x"})
    other = make_key(server.db_path, "proj-b")
    with server.http(key=other) as b:
        unknown = b.post(f"{P}/experiments/", json={"id": "never-seen", "experiment_name": "b"})
        taken = b.post(f"{P}/experiments/", json={"id": eid, "experiment_name": "b"})
        assert taken.status_code == unknown.status_code == 201 and taken.json()["created"] is True
        groups = [b.post(f"{P}/experiments/{eid}/groups/", json={"id": i, "name": "g"}) for i in (gid, "g-new")]
        assert [g.status_code for g in groups] == [201, 201]
        run = b.post(f"{P}/runs/", json={"id": rid, "experiment_id": eid, "group_id": gid})
        assert run.status_code == 201 and run.json()["run"]["id"] == rid
        assert b.post(f"{P}/runs/{rid}/evals/", json={"id": "ev-1", "metrics": {"acc": 1.0}}).json()["created"]
        assert b.post(f"{P}/runs/{rid}/checkpoints/", json={"id": "ck-1", "uri": "b://y"}).json()["created"]
        assert b.post(f"{P}/runs/{rid}/metrics/", json={"step": 1, "metrics": {"loss": 9.0}}).json()["inserted"] == 1
        # replays by proj-b find its own records under its own ids
        assert b.post(f"{P}/runs/", json={"id": rid, "experiment_id": eid}).json()["created"] is False
        assert b.post(f"{P}/runs/{rid}/evals/", json={"id": "ev-1", "metrics": {"acc": 1.0}}).json()["created"] is False
    store = server.db()
    assert store.step_metrics(rid) == []  # proj-a's run got nothing of proj-b's
    assert [e["metrics"] for e in store.run_evals(rid)] == [{"acc": 0.5}]
    assert store.find_experiment(eid)["name"] == "e"  # type: ignore[index]


# ------------------------------------------------------------------------------ auth before the body


def _raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            dict(line.split(": ", 1) for line in data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]).get(
                "content-length", "0"
            )
        ):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_the_key_is_checked_before_the_body_is_read(tmp_path: Path) -> None:
    from evsys_dashboard.testing import DashboardServer

    with DashboardServer(tmp_path / "s.db", project=PROJECT) as server:
        assert server.process is not None
        port = int(server.url.rsplit(":", 1)[1])
        before = _peak_rss_kb(server.process.pid)
        size = 200 * 1024 * 1024  # announced, never sent: a server reading bodies first would wait for it
        for auth in ("", "Authorization: Bearer evsys_wrong\r\n"):
            t0 = time.perf_counter()
            head = f"POST {P}/experiments/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {size}\r\n"
            status, body = _raw_request(port, head, b"[" + b"{}," * 1000)
            assert status == 401 and "API key" in body["error"]
            assert time.perf_counter() - t0 < 2.0
        # with a key, a body over the limit answers 413 from its Content-Length, chunked ones once past it
        auth = f"Authorization: Bearer {server.key}\r\n"
        head = f"POST {P}/experiments/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {size}\r\n"
        status, body = _raw_request(port, head, b"{")
        assert status == 413 and "16777216" in body["error"]

        def chunks() -> Any:
            for _ in range(20):
                yield b" " * (1024 * 1024)

        resp = httpx.post(
            server.url + f"{P}/experiments/", content=chunks(), headers={"Authorization": f"Bearer {server.key}"}
        )
        assert resp.status_code == 413
        ok = httpx.post(
            server.url + f"{P}/experiments/",
            json={"experiment_name": "x"},
            headers={"Authorization": f"Bearer {server.key}"},
        )
        assert ok.status_code == 201
        assert _peak_rss_kb(server.process.pid) - before < 40_000  # never near the 200 MB announced


def test_the_body_limit_is_configurable(tmp_path: Path) -> None:
    from evsys_dashboard.server import create_app

    db_path = tmp_path / "s.db"
    key = make_key(db_path)
    app = create_app(db_path, max_body_bytes=1000)
    with ThreadServer(db_path, app=app) as url:
        headers = {"Authorization": f"Bearer {key}"}
        big = httpx.post(url + f"{P}/experiments/", json={"experiment_name": "x" * 2000}, headers=headers)
        assert big.status_code == 413 and "1000 bytes" in big.json()["error"]
        assert httpx.post(url + f"{P}/experiments/", json={"experiment_name": "x"}, headers=headers).status_code == 201


# ----------------------------------------------------------------------------------------- host check


def test_only_allowed_host_names_are_answered(tmp_path: Path) -> None:
    from evsys_dashboard.server import create_app
    from evsys_dashboard.server.guard import allowed_hosts

    db_path = tmp_path / "s.db"
    app = create_app(db_path, hosts=allowed_hosts("127.0.0.1", ["dash.lan"]))
    with ThreadServer(db_path, app=app) as url:
        port = url.rsplit(":", 1)[1]
        for host, status in (
            (f"127.0.0.1:{port}", 200),
            (f"localhost:{port}", 200),
            (f"[::1]:{port}", 200),
            ("dash.lan", 200),
            (f"attacker.example:{port}", 400),
            ("localhost.attacker.example", 400),
        ):
            for path in ("/", "/healthz", f"{P}/benchmarks/"):
                resp = httpx.get(url + path, headers={"Host": host})
                assert resp.status_code == (status if status == 400 or path != f"{P}/benchmarks/" else 401), (
                    host,
                    path,
                )
                if status == 400:
                    assert "--allowed-host" in resp.json()["error"]


# -------------------------------------------------------------------------------------- extreme values


@pytest.mark.parametrize(
    "values",
    [[1e308, -1e308], [0.0, 5e-324], [1.7e308, 1.7e308], [-5e-324, 5e-324], [1.0, 1.0 + 2**-52], [float("nan"), 2.0]],
)
def test_pages_render_whatever_the_store_holds(server: Server, values: list[float]) -> None:
    eid, rid, _ = _ids(server)
    with server.http() as http:
        gid = http.post(f"{P}/experiments/{eid}/groups/", json={"name": "g"}).json()["group"]["id"]
        rows = [{"step": i, "metrics": {"loss": v, "big": 1.7e308}} for i, v in enumerate(values)]
        text = json.dumps({"rows": rows})  # NaN as JSON's NaN token, as clients send it
        assert _post_raw(http, f"{P}/runs/{rid}/metrics/", text).status_code == 200
        for v in values:
            r = http.post(f"{P}/runs/", json={"experiment_id": eid, "group_id": gid}).json()["run"]["id"]
            assert (
                _post_raw(http, f"{P}/runs/{r}/", json.dumps({"metrics": {"score": v, "huge": 1.7e308}})).status_code
                == 200
            )
        _post_raw(http, f"{P}/experiments/{eid}/", json.dumps({"best_score": values[0]}))
        for path in ("/", f"/experiments/{eid}", f"/runs/{rid}"):
            resp = http.get(path)
            assert resp.status_code == 200, (path, resp.text[:300])
        page = http.get(f"/experiments/{eid}").text
        charted = 'class="series ' in page or "<b>loss</b> = " in page  # a constant series shows as its value
        assert charted and "huge: " in page


# --------------------------------------------------------------------------------------------- keys


def _cli(*args: str) -> int:
    from evsys_sdk.cli.main import main

    return main(["dashboard", *args])


def test_keys_can_be_listed_revoked_and_expire(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(server.db_path)
    assert _cli("create-key", "--project", "proj-b", "--expires-in", "30d", "--db", db) == 0
    key_b = capsys.readouterr().out.split()[-1]
    with server.http(key=key_b) as b:
        assert b.get(f"{P}/benchmarks/").status_code == 200
    assert _cli("list-keys", "--db", db) == 0
    listing = capsys.readouterr().out
    header, *lines = listing.strip().splitlines()
    assert header.split() == ["prefix", "project", "created", "last", "used", "expires", "state"]
    line_b = next(line for line in lines if "proj-b" in line)
    assert key_b[:12] in line_b and "active" in line_b and line_b.count("-") >= 4  # created, last used, expiry
    assert key_b not in listing
    # revoke by prefix: refused from the very next request on, by the running server
    assert _cli("revoke-key", key_b[:12], "--db", db) == 0
    assert "revoked" in capsys.readouterr().out
    with server.http(key=key_b) as b:
        resp = b.get(f"{P}/benchmarks/")
        assert resp.status_code == 401 and "revoked" in resp.json()["error"]
    assert _cli("list-keys", "--db", db) == 0
    assert "revoked" in next(line for line in capsys.readouterr().out.splitlines() if "proj-b" in line)
    # an ambiguous or unknown prefix is an error naming what matched
    assert _cli("revoke-key", "evsys_", "--db", db) == 1
    assert "2 API keys match 'evsys_'" in capsys.readouterr().err
    assert _cli("revoke-key", "evsys_zzzzzz", "--db", db) == 1
    assert "no API key matches" in capsys.readouterr().err
    # the full key works as well as its prefix
    full = make_key(server.db_path, "proj-d")
    assert _cli("revoke-key", full, "--db", db) == 0
    # an expired key is refused
    store = ServerDB(server.db_path)
    old = store.create_key("proj-e", expires_at=time.time() - 1)
    store.close()
    with server.http(key=old) as e:
        resp = e.get(f"{P}/benchmarks/")
        assert resp.status_code == 401 and "expired" in resp.json()["error"]
    assert _cli("create-key", "--project", "p", "--expires-in", "soon", "--db", db) == 1
    assert "not a duration" in capsys.readouterr().err


def test_the_last_use_of_a_key_is_recorded(server: Server) -> None:
    with server.http() as http:
        assert http.get(f"{P}/benchmarks/").status_code == 200
    db = ServerDB(server.db_path)
    try:
        (row,) = [k for k in db.list_keys() if k["project_id"] == PROJECT]
        assert row["last_used_at"] is not None and time.time() - row["last_used_at"] < 60
    finally:
        db.close()


# ------------------------------------------------------------------------------------- page views


def test_charts_are_downsampled_in_sql_and_keep_sparse_metrics(server: Server) -> None:
    eid, rid, _ = _ids(server)
    rows = [
        {"step": s, "metrics": {"loss": 1 / (s + 1), **({"eval_acc": s / 20_000} if s % 1000 == 7 else {})}}
        for s in range(20_000)
    ]
    with server.http() as http:
        for start in range(0, len(rows), 5000):
            assert http.post(f"{P}/runs/{rid}/metrics/", json={"rows": rows[start : start + 5000]}).status_code == 200
        http.post(f"{P}/runs/{rid}/metrics/", json={"step": 5, "split": "val", "metrics": {"loss": 0.5}})
        assert http.get(f"/experiments/{eid}").status_code == 200
    db = ServerDB(server.db_path)
    try:
        series = db.step_series([rid])[rid]
    finally:
        db.close()
    loss = series["loss"]
    assert 300 <= len(loss) <= 401 and loss[0] == (0, 1.0) and loss[-1] == (19_999, 1 / 20_000)
    assert [s for s, _ in loss] == sorted(s for s, _ in loss)
    assert len(series["eval_acc"]) == 20 and series["val/loss"] == [(5, 0.5)]  # a metric on few rows is kept


def test_page_views_never_wait_for_a_writer(server: Server) -> None:
    eid, rid, _ = _ids(server)
    with server.http() as http:
        http.post(f"{P}/runs/{rid}/metrics/", json={"step": 1, "metrics": {"loss": 1.0}})
        writer = sqlite3.connect(server.db_path, timeout=30, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            t0 = time.perf_counter()
            assert http.get(f"/experiments/{eid}").status_code == 200
            assert http.get(f"/runs/{rid}").status_code == 200
            assert http.get(f"{P}/benchmarks/").status_code == 200
            assert time.perf_counter() - t0 < 5
        finally:
            writer.execute("ROLLBACK")
            writer.close()
