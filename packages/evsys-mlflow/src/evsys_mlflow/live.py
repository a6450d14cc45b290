"""Log store ``mlflow``: a run's metrics go to an MLflow server while it trains, off the training thread.

Meant as a ``multiplex`` child beside ``jsonl`` (evsys's own records). The training thread only turns a
call into points and appends them to a bounded buffer; one sender thread per run sends them in
log-batches within MLflow's limits and moves the exporter's ledger as the server acknowledges them, so
``evsys mlflow export`` later sends only what the server is missing. The run never waits for MLflow
and never fails because of it: when the server is down or refuses a request, or the buffer is full (the
server is slower than training), the store warns once and stops sending for the run; what it did not
send stays in evsys's records for the export.

Imports core and the package's points only: httpx (the client) loads when a run starts.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from evsys_mlflow.points import MAX_BATCH_BYTES, MAX_METRICS, MAX_PARAMS, POINT_BYTES, flatten, metric_key, row_points
from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.config import StrictModel

log = get_logger("mlflow")

_STATUS = {"completed": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}


def _logged(value: Any) -> float | None:
    """What evsys's records keep of a logged value (the jsonl store's rules): numbers, bools as 0/1,
    never NaN or an infinity, nothing else."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, numbers.Integral):
        return float(int(value))
    try:
        number = float(value) if not isinstance(value, str | bytes) else math.nan
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class MlflowLogStore:
    """Step metrics, hyperparams (as params) and artifact paths (as tags) of a run, live to MLflow."""

    name: ClassVar[str] = "mlflow"

    class Config(StrictModel):
        uri: str = Field(min_length=1, description="the MLflow tracking server, e.g. http://127.0.0.1:5000")
        experiment: str | None = Field(
            default=None, min_length=1, description="the MLflow experiment (default: the evsys experiment's name)"
        )
        max_queue: int = Field(
            default=100_000,
            ge=1000,
            description="points waiting to be sent; past it the run stops sending live (the export sends the rest)",
        )
        flush_seconds: float = Field(default=1.0, gt=0, le=60, description="longest a point waits for its batch")
        close_timeout: float = Field(
            default=30, gt=0, description="seconds the end of a run waits for its last batches to be sent"
        )
        timeout: float = Field(default=10, gt=0, description="seconds one request may take")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self._cond = threading.Condition()
        self._points: list[dict[str, Any]] = []  # waiting to be sent, in the order evsys records them
        self._meta: list[tuple[str, str, str]] = []  # ("param" | "tag", key, value) waiting to be sent
        self._params: dict[str, str] = {}  # what was queued as a param: MLflow params never change
        self._target: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._stopped: str | None = None  # why the run stopped sending live (None: it sends)
        self._closing = self._closed = False
        self._status = "completed"

    # the training thread

    def start_run(self, ctx: Any) -> None:
        """Which evsys run this is (the store and run id the experiment put in the run's context), then
        the sender starts. Without a recorded run it logs an MLflow run of its own, named like the run."""
        try:
            self._target = self._find_target(ctx)
        except Exception as exc:  # the run goes on without live logging
            with self._cond:
                self._stop(f"its record could not be read ({type(exc).__name__}: {exc})")
            return
        if "run" in self._target:
            self._params = dict(flatten(self._target["run"].get("run_config") or {}))
            self._meta = [("param", k, v) for k, v in self._params.items()]
        self._thread = threading.Thread(target=self._send_all, name=f"evsys-mlflow-{ctx.run_id}", daemon=True)
        self._thread.start()

    def _find_target(self, ctx: Any) -> dict[str, Any]:
        from evsys_mlflow.export import arm_tags

        store, run_id = ctx.extras.get("store"), ctx.extras.get("dashboard_run_id")
        path = getattr(store, "path", None)  # a LocalStore, or the search's view of one
        run = experiment = None
        if isinstance(path, Path) and run_id:
            run = store.one(
                "SELECT r.*, g.name AS group_name FROM runs r LEFT JOIN groups g ON g.id = r.group_id WHERE r.id = ?",
                (run_id,),
            )
            experiment = store.one("SELECT * FROM experiments WHERE id = ?", (run["experiment_id"],)) if run else None
        if run is None or experiment is None:
            return {"experiment": self.config.experiment or ctx.config.name, "name": ctx.run_id}
        return {
            "experiment": self.config.experiment or experiment["name"],
            "name": run.get("name") or run_id,
            "store": path,
            "run": run,
            "parent": experiment,
            "tags": {**arm_tags(run, {}), "evsys.status": "running"},
        }

    def end_run(self, status: str) -> None:
        self._status = status

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"MlflowLogStore({self.config.uri}) is closed")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._check_open()
        if self._stopped is not None:
            return
        # As evsys records them: a row of the train metrics, then one of the val/ metrics.
        now = time.time()
        train: dict[str, float] = {}
        val: dict[str, float] = {}
        for key, value in metrics.items():
            if (number := _logged(value)) is not None:
                (val if key.startswith("val/") else train)[key] = number
        points = row_points(int(step), "train", train, now) + row_points(int(step), "val", val, now)
        with self._cond:
            if self._stopped is not None:
                return
            if len(self._points) + len(points) > self.config.max_queue:
                self._stop(f"the server fell behind ({len(self._points)} points waiting)", drain=True)
                return
            self._points += points
            if len(self._points) >= MAX_METRICS:
                self._cond.notify()

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self.log_metrics({key: value}, step)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self._check_open()
        with self._cond:
            for key, value in flatten(params):
                if key not in self._params:  # a param is set once; the run config's are already queued
                    self._params[key] = value
                    self._meta.append(("param", key, value))

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self._check_open()
        with self._cond:
            self._meta.append(("tag", metric_key(f"evsys.artifact.{name}"), f"[{kind}] {path}"))

    def close(self) -> None:
        """Send what is left (at most ``close_timeout`` seconds), end the MLflow run with the run's status."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is None:
            return
        self._thread.join(self.config.close_timeout)
        if self._thread.is_alive():
            with self._cond:
                self._stop(f"its last {len(self._points)} points were not sent in {self.config.close_timeout:g} s")

    def _stop(self, why: str, *, drain: bool = False) -> None:
        """Stop sending live, once, with one warning; ``drain``: what is queued still goes (the ledger
        stays an exact prefix either way). Called holding the lock."""
        if self._stopped is not None:
            return
        self._stopped = why
        if not drain:
            self._points.clear()
            self._meta.clear()
        self._cond.notify()
        name = self._target.get("name", "?")
        parent = self._target.get("parent")
        later = ""
        if parent:
            flag = f" --experiment {self.config.experiment}" if self.config.experiment else ""
            later = f"; `evsys mlflow export {parent['name']} --uri {self.config.uri}{flag}` sends the rest"
        log.warning("MLflow live logging of run '%s' to %s stopped: %s%s", name, self.config.uri, why, later)

    # the sender thread

    def _send_all(self) -> None:
        from evsys_mlflow.client import MlflowClient, MlflowError

        client = MlflowClient(self.config.uri, timeout=self.config.timeout, retries=2)
        ledger = None
        try:
            run_id, ledger = self._open(client)
            while self._send_some(client, ledger, run_id):
                pass
            if self._stopped is None:
                client.update_run(run_id, status=_STATUS.get(self._status, "FINISHED"), end_ms=int(time.time() * 1000))
        except MlflowError as exc:
            with self._cond:
                self._stop(str(exc))
        except Exception as exc:  # a bug here must not reach the run
            with self._cond:
                self._stop(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()
            if ledger is not None:
                ledger.store.close()

    def _open(self, client: Any) -> tuple[str, Any]:
        """The MLflow run (and the ledger, for a recorded run): the one the exporter would use."""
        from evsys_mlflow.export import mlflow_run
        from evsys_mlflow.ledger import Ledger
        from evsys_sdk.tracking.store import LocalStore

        target = self._target
        exp_id = client.experiment_id(target["experiment"])
        if "store" not in target:
            info = client.create_run(exp_id, name=target["name"], start_ms=int(time.time() * 1000), tags={})
            return str(info["run_id"]), None
        ledger = Ledger(LocalStore(target["store"]), client.uri, exp_id)  # this thread's own connection
        experiment, run = target["parent"], target["run"]
        parent = mlflow_run(client, ledger, exp_id, experiment["id"], experiment["name"], experiment["created_at"], {})
        tags = {"mlflow.parentRunId": parent["run_id"], **target["tags"]}
        child = mlflow_run(client, ledger, exp_id, run["id"], target["name"], run["created_at"], tags)
        if ledger.position(child["run_id"], "steps") != (0, 0):
            with self._cond:  # an earlier attempt of this run logged it: its points would not line up
                self._stop("an earlier attempt of this run was logged already")
        return child["run_id"], ledger

    def _send_some(self, client: Any, ledger: Any, run_id: str) -> bool:
        """One batch of params/tags and one of metrics; False once there is nothing more to send."""
        with self._cond:
            if len(self._points) < MAX_METRICS and not (self._closing or self._stopped):
                self._cond.wait(self.config.flush_seconds)  # let a batch fill up
            meta, self._meta = self._meta[:MAX_PARAMS], self._meta[MAX_PARAMS:]
            n, size = 0, 0
            for p in self._points[:MAX_METRICS]:
                size += POINT_BYTES + len(p["key"])
                if size > MAX_BATCH_BYTES // 2:
                    break
                n += 1
            batch = self._points[:n]
            del self._points[:n]
            more = bool(self._points or self._meta) or not (self._closing or self._stopped)
        if meta:
            params = [{"key": k, "value": v} for kind, k, v in meta if kind == "param"]
            tags = [{"key": k, "value": v} for kind, k, v in meta if kind == "tag"]
            client.log_batch(run_id, params=params, tags=tags)
        if batch:
            acked = ledger.position(run_id, "steps")[0] if ledger is not None else 0
            if ledger is not None:
                ledger.ack(run_id, "steps", acked, sending=len(batch))
            client.log_batch(run_id, metrics=batch)
            if ledger is not None:
                ledger.ack(run_id, "steps", acked + len(batch))
        return more
