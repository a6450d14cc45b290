"""The routes of MLflow's REST API that its client uses for tracking, under ``MLFLOW_PREFIX``.

``MLFLOW_TRACKING_URI=http://<host>:<port>/mlflow`` and ``MLFLOW_TRACKING_TOKEN=<an evsys API key>``
point the unmodified MLflow client (``mlflow``, ``mlflow-skinny``, ``report_to="mlflow"``) here: it calls
``<prefix>/api/2.0/mlflow/...`` for tracking and ``<prefix>/api/2.0/mlflow-artifacts/artifacts/...`` for the
artifacts of runs whose ``artifact_uri`` is ``mlflow-artifacts:/...`` (the proxied artifact store).

The key is checked by the front door (``guard.Guard``) before the body is read. Every answer that is not
a success is MLflow's error JSON, ``{"error_code": ..., "message": ...}``, with MLflow's HTTP status for
the code: RESOURCE_DOES_NOT_EXIST 404, INVALID_PARAMETER_VALUE and RESOURCE_ALREADY_EXISTS 400,
UNAUTHENTICATED 401, ENDPOINT_NOT_FOUND 404, and 405 for a method a route does not serve.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.routing import Match

from evsys_dashboard.constants import MLFLOW_PREFIX
from evsys_dashboard.server.db import ServerDB
from evsys_dashboard.server.guard import KeyedApi, request_project
from evsys_dashboard.server.mlflow_api import models as m
from evsys_dashboard.server.mlflow_api.records import MlflowRefusal, Records, invalid

log = logging.getLogger("evsys.dashboard.server")

API = "/api/2.0"  # under MLFLOW_PREFIX
ID = re.compile(m.ID_PATTERN)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT"})
MAX_ARTIFACT_PATH = 1000


class AnyPath(PathConvertor):
    """A path that may hold any character, a newline too (Starlette's ``path`` stops at one): every path
    under the prefix reaches these routes, and is answered in MLflow's words."""

    regex = "(?s:.*)"


register_url_convertor("mlflow_path", AnyPath())


def error_body(status: int, message: str) -> dict[str, Any]:
    """MLflow's error JSON for a refusal of the front door (401, 400, 413)."""
    code = {401: "UNAUTHENTICATED", 413: "REQUEST_LIMIT_EXCEEDED"}.get(status, "BAD_REQUEST")
    return {"error_code": code, "message": message}


KEYED = KeyedApi(MLFLOW_PREFIX + "/", METHODS, error_body)


def _answer(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status, headers=headers)


def _fields(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{loc or 'body'}: {e.get('msg', '')}")
    return "; ".join(parts)[:2000]


class MlflowRoute(APIRoute):
    """A route whose failures answer in MLflow's words (a validation error is INVALID_PARAMETER_VALUE)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except MlflowRefusal as exc:
                return _answer(exc.status, exc.code, exc.message)
            except RequestValidationError as exc:
                return _answer(400, "INVALID_PARAMETER_VALUE", f"Invalid request: {_fields(exc)}")
            except HTTPException as exc:  # a body that is not JSON, or not UTF-8
                return _answer(exc.status_code, "BAD_REQUEST", str(exc.detail))
            except UnicodeError:
                return _answer(400, "INVALID_PARAMETER_VALUE", "text must be valid UTF-8 (no lone surrogates)")
            except Exception as exc:  # a bug: logged, answered as MLflow's internal error
                log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
                return _answer(500, "INTERNAL_ERROR", "internal error")

        return route


bearer = HTTPBearer(auto_error=False, description="an API key from `evsys dashboard create-key`")


def project(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    found = request_project(request.scope)
    if found is None:  # the Guard answers 401 first; this documents the scheme in the OpenAPI spec
        raise MlflowRefusal("UNAUTHENTICATED", 401, "missing API key: send Authorization: Bearer <key>")
    return found


Project = Annotated[str, Depends(project)]
QueryId = Annotated[m.Id, Query(description="the run (older clients also send it as run_uuid, which is ignored)")]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": m.MlflowError}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS or BAD_REQUEST (a Host not allowed)"),
    401: _error("UNAUTHENTICATED: no API key, or one that is unknown, revoked or expired"),
    404: _error("RESOURCE_DOES_NOT_EXIST in the key's project"),
    413: _error("REQUEST_LIMIT_EXCEEDED: the body is over the server's limit (serve --max-body-mb)"),
}
ARTIFACT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,  # an empty file is a file
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def artifact_path(path: str) -> str:
    """A run-relative artifact path that names one file: no ``..``, ``.`` or empty parts, not absolute."""
    norm = posixpath.normpath(path) if path else ""
    if not path or len(path) > MAX_ARTIFACT_PATH or norm != path or norm.startswith(("..", "/")) or "\\" in path:
        raise invalid(f"Invalid artifact path {path!r}: a relative path such as 'plots/loss.png' is needed")
    return path


def mlflow_router(db: ServerDB) -> APIRouter:
    records = Records(db)
    router = APIRouter(prefix=MLFLOW_PREFIX, tags=["mlflow"], responses=ERRORS, route_class=MlflowRoute)

    # -------------------------------------------------------------- experiments

    @router.get(API + "/mlflow/experiments/get-by-name")
    def get_experiment_by_name(
        experiment_name: Annotated[str, Query(min_length=1, max_length=m.MAX_EXPERIMENT_NAME)], project: Project
    ) -> dict[str, Any]:
        return {"experiment": records.experiment_by_name(project, experiment_name)}

    @router.post(API + "/mlflow/experiments/create")
    def create_experiment(body: m.CreateExperiment, project: Project) -> dict[str, Any]:
        return {"experiment_id": records.create_experiment(project, body)}

    @router.get(API + "/mlflow/experiments/get")
    def get_experiment(experiment_id: Annotated[m.Id, Query()], project: Project) -> dict[str, Any]:
        return {"experiment": records.experiment(project, experiment_id)}

    # -------------------------------------------------------------- runs

    @router.post(API + "/mlflow/runs/create")
    def create_run(body: m.CreateRun, project: Project) -> dict[str, Any]:
        return {"run": records.create_run(project, body)}

    @router.get(API + "/mlflow/runs/get")
    def get_run(run_id: QueryId, project: Project) -> dict[str, Any]:
        return {"run": records.run(project, run_id)}

    @router.post(API + "/mlflow/runs/update")
    def update_run(body: m.UpdateRun, project: Project) -> dict[str, Any]:
        return {"run_info": records.update_run(project, body)}

    @router.post(API + "/mlflow/runs/search")
    def search_runs(body: m.SearchRuns, project: Project) -> dict[str, Any]:
        runs, token = records.search(project, body)
        return {"runs": runs, **({"next_page_token": token} if token else {})}

    @router.post(API + "/mlflow/runs/log-batch")
    def log_batch(body: m.LogBatch, project: Project) -> dict[str, Any]:
        records.log_batch(project, body.run_id, body.metrics, body.params, body.tags)
        return {}

    @router.post(API + "/mlflow/runs/log-metric")
    def log_metric(body: m.LogMetric, project: Project) -> dict[str, Any]:
        point = m.Metric(key=body.key, value=body.value, timestamp=body.timestamp, step=body.step)
        records.log_batch(project, body.run_id, [point], [], [])
        return {}

    @router.post(API + "/mlflow/runs/log-parameter")
    def log_parameter(body: m.LogParam, project: Project) -> dict[str, Any]:
        records.log_batch(project, body.run_id, [], [m.Param(key=body.key, value=body.value)], [])
        return {}

    @router.post(API + "/mlflow/runs/set-tag")
    def set_tag(body: m.SetTag, project: Project) -> dict[str, Any]:
        records.log_batch(project, body.run_id, [], [], [m.Tag(key=body.key, value=body.value)])
        return {}

    @router.get(API + "/mlflow/metrics/get-history")
    def get_metric_history(
        run_id: QueryId,
        metric_key: Annotated[m.Key, Query()],
        project: Project,
        max_results: Annotated[int | None, Query(ge=1, le=m.MAX_HISTORY_RESULTS)] = None,
        page_token: Annotated[str | None, Query(max_length=1000)] = None,
    ) -> dict[str, Any]:
        points, token = records.metric_history(project, run_id, metric_key, max_results, page_token)
        return {"metrics": points, **({"next_page_token": token} if token else {})}

    # -------------------------------------------------------------- artifacts (the mlflow-artifacts proxy)

    run_root = API + "/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{path:mlflow_path}"

    @router.put(run_root, openapi_extra=ARTIFACT_BODY)
    async def upload_artifact(
        experiment_id: m.Id, run_id: m.Id, path: str, request: Request, project: Project
    ) -> dict[str, Any]:
        """One file of a run (``log_artifact``, ``log_dict``...); a PUT to a path it has replaces the file."""
        content = await request.body()
        await run_in_threadpool(records.put_artifact, project, experiment_id, run_id, artifact_path(path), content)
        return {}

    @router.get(run_root, response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
    def download_artifact(experiment_id: m.Id, run_id: m.Id, path: str, project: Project) -> Response:
        content = records.artifact(project, experiment_id, run_id, artifact_path(path))
        return Response(content, media_type="application/octet-stream", headers={"X-Content-Type-Options": "nosniff"})

    @router.get(API + "/mlflow-artifacts/artifacts")
    def list_artifacts(
        project: Project, path: Annotated[str, Query(max_length=MAX_ARTIFACT_PATH + 200)] = ""
    ) -> dict[str, Any]:
        """The files right inside ``path``: ``<experiment>/<run>/artifacts[/<folder>]``."""
        experiment_id, _, rest = path.strip("/").partition("/")
        run_id, _, rest = rest.partition("/")
        root, _, folder = rest.partition("/")
        if not ID.match(experiment_id) or not ID.match(run_id) or root != "artifacts":
            raise invalid(f"path {path!r} is not a run's artifacts: <experiment_id>/<run_id>/artifacts[/<folder>]")
        folder = artifact_path(folder.rstrip("/")) if folder.rstrip("/") else ""
        return {"files": records.list_artifacts(project, experiment_id, run_id, folder)}

    # -------------------------------------------------------------- the rest of the prefix

    @router.api_route(
        "/{rest:mlflow_path}", methods=sorted(METHODS | {"DELETE", "PATCH", "OPTIONS"}), include_in_schema=False
    )
    def not_an_endpoint(rest: str, request: Request) -> Response:
        allowed = sorted(
            {
                method
                for route in router.routes
                if isinstance(route, APIRoute)
                and route.endpoint is not not_an_endpoint
                and route.matches(request.scope)[0] != Match.NONE
                for method in route.methods or ()
            }
        )
        if allowed:
            return _answer(405, "BAD_REQUEST", f"{request.method} is not allowed here", {"Allow": ", ".join(allowed)})
        return _answer(404, "ENDPOINT_NOT_FOUND", f"No MLflow endpoint {request.method} {request.url.path} here")

    return router
