"""The dashboard server: the SDK routes of BEHAVIOR 1.24 under /api/dashboard/api, MLflow's tracking API
under /mlflow (``mlflow_api``), and the web UI.

Writes and SDK reads need ``Authorization: Bearer <key>`` (``evsys dashboard create-key``), checked from
the headers before the body is read (``guard.Guard``, with the Host allow-list and the size limit); a key
only reaches its own project's experiments, datasets and benchmarks. Bad input is answered with a 4xx
and ``{"error": ..., ...}``, never a 500. The OpenAPI spec is at ``/openapi.json``.
"""

import logging
import os
import sqlite3
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from evsys_dashboard.constants import API_PREFIX
from evsys_dashboard.server import models as m
from evsys_dashboard.server.db import Conflict, NotFound, ServerDB
from evsys_dashboard.server.guard import DEFAULT_MAX_BODY_BYTES, Guard, KeyedApi, allowed_hosts, request_project
from evsys_dashboard.server.mlflow_api import KEYED as MLFLOW_KEYED
from evsys_dashboard.server.mlflow_api import mlflow_router

log = logging.getLogger("evsys.dashboard.server")

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"


STEP_METRICS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StepMetrics"}}},
    }
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


bearer = HTTPBearer(auto_error=False, description="an API key from `evsys dashboard create-key`")


def project(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The project of the request's API key, checked by the Guard before the body was read."""
    found = request_project(request.scope)
    if found is None:  # the Guard answers 401 first; this only documents the scheme in the OpenAPI spec
        raise ApiError(401, "missing API key: send Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"})
    return found


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "model": m.Error}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error_response("malformed request (a body that is not JSON, a Host not allowed)"),
    401: _error_response("no API key, or one that is unknown, revoked or expired"),
    403: _error_response("the body names another project than the key's"),
    404: _error_response("no such record in the key's project"),
    409: _error_response(
        "the id is taken by another record of the project, or group_id names no group of the run's experiment"
    ),
    413: _error_response("the body is over the server's limit (serve --max-body-mb)"),
    422: _error_response("the body or query does not validate; `detail` names the fields"),
}


Project = Annotated[str, Depends(project)]


def create_app(
    db_path: str | os.PathLike[str],
    *,
    hosts: frozenset[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The app over the database at ``db_path``; ``hosts``: the Host names it answers (default: the
    loopback names, ``guard.allowed_hosts``); bodies over ``max_body_bytes`` answer 413."""
    db = ServerDB(Path(db_path))
    app = FastAPI(
        title="evsys dashboard",
        version="0.1.0",
        description="Tracking server for evsys experiments: SDK routes and a web UI.",
        docs_url=None,  # the Swagger/ReDoc pages load their assets from a CDN; the UI works offline
        redoc_url=None,
    )
    app.state.db = db

    def openapi() -> dict[str, Any]:
        """FastAPI's spec, plus the schemas of the bodies validated by hand (step metrics)."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema = m.StepMetrics.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas["StepMetrics"] = schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    sdk = APIRouter(prefix=API_PREFIX + "/sdk", tags=["sdk"], responses=ERRORS)

    # -------------------------------------------------------------- experiments, groups, runs

    @sdk.post("/experiments/", status_code=201)
    def create_experiment(body: m.ExperimentCreate, project: Project) -> dict[str, Any]:
        if body.project_id is not None and body.project_id != project:
            raise ApiError(403, f"this API key belongs to project {project!r}, not {body.project_id!r}")
        record, created = db.create_experiment(project, body.model_dump(exclude_none=True))
        return {"experiment": record, "created": created}

    @sdk.post("/experiments/{experiment_id}/")
    def update_experiment(experiment_id: str, body: m.ExperimentUpdate, project: Project) -> dict[str, Any]:
        patch = body.model_dump(exclude_unset=True)
        db.update_experiment(project, experiment_id, patch)
        return {"ok": True, "id": experiment_id}

    @sdk.post("/experiments/{experiment_id}/groups/", status_code=201)
    def create_group(experiment_id: str, body: m.GroupCreate, project: Project) -> dict[str, Any]:
        gid, created = db.create_group(project, experiment_id, body.id, body.name)
        return {"group": {"id": gid, "experiment_id": experiment_id, "name": body.name}, "created": created}

    @sdk.post("/runs/", status_code=201)
    def create_run(body: m.RunCreate, project: Project) -> dict[str, Any]:
        record, created = db.create_run(project, body.model_dump(exclude_none=True))
        return {"run": record, "created": created}

    @sdk.post("/runs/{run_id}/")
    def update_run(run_id: str, body: m.RunUpdate, project: Project) -> dict[str, Any]:
        db.update_run(project, run_id, body.model_dump(exclude_unset=True))
        return {"ok": True, "id": run_id}

    # -------------------------------------------------------------- records of a run

    @sdk.post("/runs/{run_id}/metrics/", openapi_extra=STEP_METRICS_BODY)
    async def log_step_metrics(run_id: str, request: Request, project: Project) -> dict[str, Any]:
        """One step row, or a batch ``{"rows": [...]}``; rows whose ``uid`` the run already has are skipped.

        The hot path of the SDK: the body is validated straight from its bytes by pydantic-core."""
        try:
            body = m.StepMetrics.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_input=False)) from None
        rows = body.as_tuples()
        inserted = await run_in_threadpool(db.add_step_rows, project, run_id, rows)
        return {"ok": True, "inserted": inserted, "duplicates": len(rows) - inserted}

    @sdk.post("/runs/{run_id}/evals/", status_code=201)
    def create_eval(run_id: str, body: m.EvalCreate, project: Project) -> dict[str, Any]:
        vid, created = db.create_eval(project, run_id, body.model_dump(exclude_none=True))
        return {"ok": True, "eval": {"id": vid, "run_id": run_id}, "created": created}

    @sdk.post("/runs/{run_id}/checkpoints/", status_code=201)
    def add_checkpoint(run_id: str, body: m.CheckpointCreate, project: Project) -> dict[str, Any]:
        cid, created = db.add_checkpoint(project, run_id, body.model_dump(exclude_none=True))
        return {"ok": True, "checkpoint": {"id": cid, "run_id": run_id}, "created": created}

    @sdk.post("/runs/{run_id}/predictions/")
    def log_predictions(run_id: str, body: m.Predictions, project: Project) -> dict[str, Any]:
        inserted = db.add_predictions(project, run_id, body.predictions, body.keys())
        return {"ok": True, "inserted": inserted, "duplicates": len(body.predictions) - inserted}

    # -------------------------------------------------------------- datasets and benchmarks

    def data_routes(kind: str) -> None:
        plural = f"{kind}s"

        @sdk.get(f"/{plural}/", name=f"list_{plural}")
        def list_records(project: Project) -> dict[str, Any]:
            return {plural: db.list_data(project, kind)}

        @sdk.get(f"/{plural}/{{record_id}}/", name=f"get_{kind}")
        def get_record(record_id: str, project: Project) -> dict[str, Any]:
            return {kind: db.get_data(project, kind, record_id)}

        @sdk.get(f"/{plural}/{{record_id}}/rows/", name=f"get_{kind}_rows")
        def get_rows(
            record_id: str,
            project: Project,
            limit: Annotated[int, Query(ge=1, le=5000)] = 500,
            offset: Annotated[int, Query(ge=0, le=m.MAX_INT)] = 0,
        ) -> dict[str, Any]:
            return {"rows": db.data_rows(project, kind, record_id, limit, offset)}

        @sdk.post(f"/{plural}/", status_code=201, name=f"create_{kind}")
        def create_record(body: m.DataCreate, project: Project) -> dict[str, Any]:
            return {kind: db.create_data(project, kind, body.model_dump(exclude_none=True)), "created": True}

        @sdk.post(f"/{plural}/{{record_id}}/rows/", name=f"add_{kind}_rows")
        def add_rows(record_id: str, body: m.DataRows, project: Project) -> dict[str, Any]:
            return db.add_data_rows(project, kind, record_id, body.rows)

    data_routes("dataset")
    data_routes("benchmark")
    app.include_router(sdk)
    app.include_router(mlflow_router(db))  # MLflow's tracking API, under MLFLOW_PREFIX

    @app.get("/healthz", tags=["meta"], responses={400: ERRORS[400]})
    def healthz() -> dict[str, Any]:
        return {"ok": True}

    # -------------------------------------------------------------- web UI

    from evsys_dashboard.server import ui
    from evsys_dashboard.server.search_page import search_page as render_search
    from evsys_dashboard.server.search_view import Order, SortKey

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return _html(ui.experiments_page(db))

    @app.get("/experiments/{experiment_id}", response_class=HTMLResponse, include_in_schema=False)
    def experiment_page(experiment_id: str) -> HTMLResponse:
        page = ui.experiment_page(db, experiment_id)
        if page is None:
            raise ApiError(404, f"experiment {experiment_id} not found")
        return _html(page)

    @app.get("/searches/{experiment_id}", response_class=HTMLResponse, include_in_schema=False)
    def search_page(experiment_id: str, sort: SortKey = "mean", order: Order | None = None) -> HTMLResponse:
        page = render_search(db, experiment_id, sort, order)
        if page is None:
            raise ApiError(404, f"search {experiment_id} not found (an experiment evsys evolve did not record)")
        return _html(page)

    @app.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(run_id: str) -> HTMLResponse:
        page = ui.run_page(db, run_id)
        if page is None:
            raise ApiError(404, f"run {run_id} not found")
        return _html(page)

    # -------------------------------------------------------------- errors: always JSON, never a bare 500

    def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(Conflict)
    def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")} for e in exc.errors()
        ]
        return _error(422, "invalid request", detail=detail)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the first matching route's methods; a path has several
            headers = {**(headers or {}), "Allow": ", ".join(sorted(_methods(app, request.scope)))}
        return _error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(UnicodeError)
    def _unicode(request: Request, exc: UnicodeError) -> JSONResponse:
        return _error(400, "text must be valid UTF-8 (no lone surrogates)")

    @app.exception_handler(sqlite3.IntegrityError)
    def _integrity(request: Request, exc: sqlite3.IntegrityError) -> JSONResponse:
        return _error(409, f"conflicts with a stored record: {exc}")

    @app.exception_handler(Exception)
    def _internal(request: Request, exc: Exception) -> JSONResponse:  # a bug: logged, answered as JSON
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error")

    app.add_middleware(
        Guard,
        db=db,
        apis=(KeyedApi(API_PREFIX + "/sdk/"), MLFLOW_KEYED),
        hosts=hosts if hosts is not None else allowed_hosts(None),
        max_body_bytes=max_body_bytes,
    )
    return app


def _methods(app: FastAPI, scope: dict[str, Any]) -> set[str]:
    """Every method some route serves at the request's path."""
    from starlette.routing import Match, Route

    found: set[str] = set()
    for route in app.routes:
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] != Match.NONE:
            found |= route.methods
    return found


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(
        body,
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"},
    )


def serve(
    db_path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    extra_hosts: tuple[str, ...] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Run the server in this process until interrupted; it answers the Host names of
    ``guard.allowed_hosts(host, extra_hosts)``."""
    import uvicorn

    app = create_app(db_path, hosts=allowed_hosts(host, extra_hosts), max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
