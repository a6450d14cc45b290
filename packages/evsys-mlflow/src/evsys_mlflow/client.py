"""A light MLflow tracking client: plain HTTP against the REST API's 2.0 routes (no ``mlflow`` import).

Only what an exporter needs: experiments get-by-name/create, runs create/search/log-batch/update and the
artifact PUT of a server that proxies artifacts (``mlflow server``'s default). ``MLFLOW_TRACKING_TOKEN``
(bearer) or ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (basic) authenticate, as for MLflow's
own client.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx

from evsys_sdk.base.errors import EvsysError

_RETRIES = 4  # a restarting server or a dropped connection; a 4xx is never retried


class MlflowError(EvsysError):
    """The server refused a request (its error code and message), or could not be reached."""

    def __init__(self, message: str, code: str = "", status: int = 0):
        super().__init__(message)
        self.code, self.status = code, status


class MlflowClient:
    def __init__(self, uri: str, *, timeout: float = 60.0, retries: int = _RETRIES):
        self.uri, self.retries = uri.rstrip("/"), retries
        headers = {}
        auth = None
        if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {token}"
        elif user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
            auth = httpx.BasicAuth(user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        self._http = httpx.Client(base_url=f"{self.uri}/api/2.0/", headers=headers, auth=auth, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(self.retries):
            try:
                response = self._http.request(method, route, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.retries - 1:
                    raise MlflowError(f"MLflow server {self.uri} is unreachable ({exc})") from None
            else:
                if response.status_code < 500 and response.status_code != 429:
                    break
                if attempt == self.retries - 1:
                    break
            time.sleep(0.25 * 2**attempt)
        if response.is_success:
            body: dict[str, Any] = response.json() if response.content else {}
            return body
        try:
            error = response.json()
        except ValueError:
            error = {"message": response.text[:300]}
        raise MlflowError(
            f"MLflow {route}: HTTP {response.status_code} {error.get('error_code', '')} {error.get('message', '')}",
            code=str(error.get("error_code", "")),
            status=response.status_code,
        )

    def experiment_id(self, name: str) -> str:
        """The id of the experiment ``name``, created when the server has none by that name."""
        try:
            return str(
                self._call("GET", "mlflow/experiments/get-by-name", params={"experiment_name": name})["experiment"][
                    "experiment_id"
                ]
            )
        except MlflowError as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
        try:
            return str(self._call("POST", "mlflow/experiments/create", json={"name": name})["experiment_id"])
        except MlflowError as exc:  # created meanwhile by another exporter
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.experiment_id(name)

    def find_run(self, experiment_id: str, tag: str, value: str) -> dict[str, Any] | None:
        """The run of ``experiment_id`` whose tag ``tag`` is ``value`` (its ``info``), if any."""
        found = self._call(
            "POST",
            "mlflow/runs/search",
            json={"experiment_ids": [experiment_id], "filter": f"tags.`{tag}` = '{value}'", "max_results": 1},
        )
        runs = found.get("runs") or []
        return dict(runs[0]["info"]) if runs else None

    def create_run(self, experiment_id: str, *, name: str, start_ms: int, tags: dict[str, str]) -> dict[str, Any]:
        body = {
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": start_ms,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        return dict(self._call("POST", "mlflow/runs/create", json=body)["run"]["info"])

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: list[dict[str, Any]] = (),  # type: ignore[assignment]
        params: list[dict[str, str]] = (),  # type: ignore[assignment]
        tags: list[dict[str, str]] = (),  # type: ignore[assignment]
    ) -> None:
        body = {"run_id": run_id, "metrics": list(metrics), "params": list(params), "tags": list(tags)}
        self._call(
            "POST", "mlflow/runs/log-batch", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )

    def delete_run(self, run_id: str) -> None:
        self._call("POST", "mlflow/runs/delete", json={"run_id": run_id})

    def history_length(self, run_id: str, key: str) -> int:
        """How many points of metric ``key`` the run holds."""
        found = self._call("GET", "mlflow/metrics/get-history", params={"run_id": run_id, "metric_key": key})
        return len(found.get("metrics") or [])

    def update_run(self, run_id: str, *, status: str, end_ms: int | None) -> None:
        body: dict[str, Any] = {"run_id": run_id, "status": status}
        if end_ms is not None:
            body["end_time"] = end_ms
        self._call("POST", "mlflow/runs/update", json=body)

    def upload_artifact(self, artifact_uri: str, name: str, content: bytes) -> None:
        """PUT one file under a run's ``mlflow-artifacts:/`` root (a PUT replaces: sending twice is harmless)."""
        prefix = "mlflow-artifacts:"
        if not artifact_uri.startswith(prefix):
            raise MlflowError(
                f"the server stores artifacts at {artifact_uri!r}, not through its proxy; "
                "start it with --serve-artifacts (mlflow server's default) to receive artifacts"
            )
        path = artifact_uri[len(prefix) :].lstrip("/")
        self._call("PUT", f"mlflow-artifacts/artifacts/{path}/{name}", content=content)
