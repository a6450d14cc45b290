"""``DashboardClient``: the HTTP tracking store, mirroring every write to a local folder.

Behaviour (BEHAVIOR 1.24, with the fixes of its section 4):

- every write goes to the local mirror first, then to the server; offline mode writes only the mirror;
- a 4xx answer raises ``DashboardClientError``; a 5xx answer, 408/429 or a connection error logs a
  warning, keeps the write queued in memory and retries the server with exponential backoff (the
  queued writes are replayed in order once it answers again);
- a write the server keeps failing on (``SET_ASIDE_AFTER`` answers 500, or another 5xx but 502/503/504,
  which say the server itself is down) is set aside: it stays in the mirror, is reported with its reason
  (a warning, ``client.set_aside`` and ``set_aside.jsonl`` in the mirror) and the writes behind it go on,
  so one record the server cannot take never holds back the others;
- step metrics are queued and shipped in batches by a background thread, so the training loop never
  waits on the network; ``flush()``, ``close()``, leaving the ``with`` block and interpreter exit ship
  what is left;
- every record carries a client-generated id, so a replay (``evsys dashboard sync``) is idempotent.

httpx is imported only when an online client is built: ``import evsys_dashboard`` stays light.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import json
import logging
import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evsys_dashboard.constants import (
    API_PREFIX,
    DEFAULT_API_URL,
    DEFAULT_LOG_DIR,
    ENV_API_KEY,
    ENV_API_URL,
    ENV_LOG_DIR,
    ENV_LOGGING_LEVEL,
    ENV_OFFLINE,
    ENV_PROJECT_ID,
    TRUTHY,
)
from evsys_dashboard.errors import DashboardClientError, DashboardUnavailableError, EvsysAuthError
from evsys_dashboard.mirror import Mirror

if TYPE_CHECKING:
    import httpx

    from evsys_sdk.eval.benchmark import BenchmarkScore

SET_ASIDE_AFTER = 3  # 5xx answers to one write before it is set aside
DOWN_STATUSES = {408, 429, 502, 503, 504}  # "the server is down or busy": retried for as long as it takes
MAX_REQUEST_ROWS = 2000  # predictions or dataset rows per request (the server's limit)
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # and their JSON per request, well under the server's limit (16 MiB)

log = logging.getLogger("evsys.dashboard")
_level = os.environ.get(ENV_LOGGING_LEVEL, "").strip()
if _level:
    log.setLevel(_level.upper() if not _level.isdigit() else int(_level))

_live: weakref.WeakSet[DashboardClient] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:  # pragma: no cover - runs at interpreter exit
    for client in list(_live):
        try:
            client.close()
        except Exception:
            log.warning("closing a dashboard client at exit failed", exc_info=True)


def env_offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in TRUTHY


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass
class _Request:
    route: str
    body: dict[str, Any] | None
    content: str | None = None  # the body already serialized (step-metric batches)
    waited: bool = False
    response: dict[str, Any] | None = None
    error: DashboardClientError | None = None
    failures: int = 0  # 5xx answers so far


@dataclass(frozen=True)
class SetAside:
    """A write the server failed on ``SET_ASIDE_AFTER`` times; it is in the mirror for ``evsys dashboard sync``."""

    route: str
    reason: str
    ts: float


StepItem = tuple[str, int, str, dict[str, Any], float]


class DashboardClient:
    """The dashboard tracking store (implements ``evsys_sdk.tracking.store.TrackingStore``)."""

    name = "dashboard"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        project_id: str | None = None,
        timeout_s: float = 30.0,
        offline: bool | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 5000,
        flush_interval_s: float = 0.2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_queued_requests: int = 100_000,
    ):
        self.base_url = (base_url or os.environ.get(ENV_API_URL) or DEFAULT_API_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY) or None
        self.project_id = project_id if project_id is not None else os.environ.get(ENV_PROJECT_ID) or None
        self.timeout_s = timeout_s
        self.offline = env_offline() if offline is None else bool(offline)
        self.log_dir = Path(log_dir or os.environ.get(ENV_LOG_DIR) or DEFAULT_LOG_DIR)
        self.mirror = Mirror(self.log_dir)
        self.batch_size = max(1, int(batch_size))
        self.flush_interval_s = flush_interval_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_queued_requests = max_queued_requests
        self._session: httpx.Client | None = None
        if not self.offline:
            missing = [
                name for name, value in ((ENV_API_KEY, self.api_key), (ENV_PROJECT_ID, self.project_id)) if not value
            ]
            if missing:
                raise EvsysAuthError(
                    f"the dashboard needs {' and '.join(missing)} (or the api_key/project_id arguments); "
                    "set EVSYS_OFFLINE=1 (or offline=True) to record only to the local mirror"
                )
            import httpx

            self._session = httpx.Client(
                headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
                timeout=timeout_s,
            )
        # delivery state: the outbox holds writes the server has not acknowledged yet, in order
        self._outbox: collections.deque[_Request] = collections.deque()
        self._send_lock = threading.RLock()
        self._failures = 0
        self._down_until = 0.0
        self._backend_down = False
        self._dropped = 0
        self.set_aside: list[SetAside] = []
        # step metrics: appended by the training thread, drained by the worker
        self._pending: collections.deque[StepItem] = collections.deque()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._uid_prefix = uuid.uuid4().hex[:16] + ":"
        self._seq = itertools.count()
        _live.add(self)

    # ------------------------------------------------------------------ HTTP

    def _url(self, route: str) -> str:
        return self.base_url + API_PREFIX + route

    @property
    def backend_down(self) -> bool:
        """True while the server is considered unreachable (writes are queued and retried)."""
        return self._backend_down

    @property
    def queued_requests(self) -> int:
        """Writes not yet acknowledged by the server (0 when offline: the mirror is the record)."""
        return len(self._outbox)

    def _mark_down(self, reason: str, retry_after: float | None = None) -> None:
        self._failures += 1
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (self._failures - 1))
        if retry_after is not None:
            delay = min(self.max_backoff_s, max(0.0, retry_after))
        self._down_until = time.monotonic() + delay
        if not self._backend_down:
            log.warning(
                "dashboard at %s unavailable (%s): writes continue in the local mirror %s and are retried "
                "(next try in %.1fs)",
                self.base_url,
                reason,
                self.log_dir,
                delay,
            )
        else:
            log.debug("dashboard still unavailable (%s); next try in %.1fs", reason, delay)
        self._backend_down = True

    def _mark_up(self) -> None:
        if self._backend_down:
            log.warning("dashboard at %s reachable again; replaying %d queued writes", self.base_url, len(self._outbox))
        self._backend_down = False
        self._failures = 0
        self._down_until = 0.0

    def _enqueue_request(self, item: _Request) -> None:
        self._outbox.append(item)
        if len(self._outbox) > self.max_queued_requests:
            self._outbox.popleft()
            self._dropped += 1
            if self._dropped == 1:
                log.warning(
                    "dashboard write queue full: older writes are dropped from memory (they stay in the "
                    "mirror; replay them with `evsys dashboard sync %s`)",
                    self.log_dir,
                )

    def _drain(self, *, force: bool = False) -> bool:
        """Send queued writes in order until one fails; True when the outbox is empty. Caller holds no lock."""
        import httpx

        session = self._session
        if session is None:
            return True
        with self._send_lock:
            while self._outbox:
                if not force and time.monotonic() < self._down_until:
                    return False
                force = False  # a forced drain tries once, then honours the backoff again
                item = self._outbox[0]
                try:
                    content = item.content if item.content is not None else json.dumps(item.body, default=str)
                    resp = session.post(self._url(item.route), content=content)
                except httpx.HTTPError as exc:
                    self._mark_down(f"{type(exc).__name__}: {exc}")
                    return False
                status = resp.status_code
                if status >= 500 and status not in DOWN_STATUSES:
                    item.failures += 1
                    if item.failures >= SET_ASIDE_AFTER:
                        self._outbox.popleft()
                        self._set_aside(item, f"HTTP {status} {SET_ASIDE_AFTER} times: {_text(resp)}")
                        self._mark_up()
                        continue
                if status >= 500 or status in DOWN_STATUSES:
                    self._mark_down(f"HTTP {status}", _retry_after(resp))
                    return False
                self._outbox.popleft()
                self._mark_up()
                if status >= 400:
                    error = DashboardClientError(status, _body(resp), item.route)
                    if item.waited:
                        item.error = error
                    else:
                        log.warning("dashboard refused a queued write: %s", error)
                    continue
                item.response = _parse(resp)
            return True

    def _set_aside(self, item: _Request, reason: str) -> None:
        record = SetAside(item.route, reason, time.time())
        self.set_aside.append(record)
        log.warning(
            "dashboard: set aside a write to %s (%s); it stays in the mirror %s for `evsys dashboard sync`, "
            "the writes behind it go on",
            item.route,
            reason,
            self.log_dir,
        )
        try:
            self.mirror.append(self.mirror.root, "set_aside.jsonl", [record.__dict__])
        except OSError:
            log.warning("recording the set-aside write in the mirror failed", exc_info=True)

    def _post(self, route: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A write: queued behind earlier writes, sent now unless the server is backing off.

        Returns the parsed response, or None (offline, or queued for a later retry). Raises
        ``DashboardClientError`` when the server refuses this very write (4xx)."""
        if self._session is None:
            return None
        item = _Request(route, body, waited=True)
        with self._send_lock:
            self._enqueue_request(item)
            self._drain()
        if item.error is not None:
            raise item.error
        return item.response

    def _request_now(self, method: str, route: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """A call that needs its answer (reads, benchmark uploads): never queued."""
        import httpx

        if self._session is None:
            raise DashboardUnavailableError(f"{route}: the dashboard client is offline (EVSYS_OFFLINE)")
        try:
            resp = self._session.request(
                method,
                self._url(route),
                content=None if body is None else json.dumps(body, default=str),
                params=params,
            )
        except httpx.HTTPError as exc:
            self._mark_down(f"{type(exc).__name__}: {exc}")
            raise DashboardUnavailableError(f"{route}: dashboard at {self.base_url} unreachable: {exc}") from exc
        if resp.status_code >= 500:
            self._mark_down(f"HTTP {resp.status_code}", _retry_after(resp))
            raise DashboardUnavailableError(
                f"{route}: dashboard answered HTTP {resp.status_code}: {_text(resp)}", status=resp.status_code
            )
        if resp.status_code >= 400:
            raise DashboardClientError(resp.status_code, _body(resp), route)
        return _parse(resp)

    def check_key(self) -> None:
        """Before an experiment starts: a key this server refuses raises ``EvsysAuthError`` (one line), so
        no arm runs unrecorded; an unreachable server is only a warning (writes wait in the mirror)."""
        if self._session is None:
            return
        try:
            self._request_now("GET", "/sdk/datasets/")  # the cheapest authenticated read
        except DashboardClientError as exc:
            if exc.status not in (401, 403):
                return  # the key was accepted; this read's own problem does not matter here
            raise EvsysAuthError(
                f"{exc.status}: the key is not valid for this server ({self.base_url}, project "
                f"{self.project_id}); set EVSYS_API_KEY to a key from `evsys dashboard create-key --project "
                f"{self.project_id}` run against that server's database"
            ) from None
        except DashboardUnavailableError as exc:
            log.warning("could not check the API key: %s; writes are mirrored locally and retried", exc)

    # ------------------------------------------------------------ step metrics

    def _start_worker(self) -> None:
        with self._worker_lock:
            if self._worker is None and not self._closed:
                self._worker = threading.Thread(target=self._work, name="evsys-dashboard-sender", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._ship_pending()
            except Exception:  # the sender must never die: the mirror keeps the rows
                log.warning("dashboard sender failed", exc_info=True)
            if stopping:
                return

    def _ship_pending(self, *, force: bool = False) -> bool:
        """Mirror then send every queued step row; True when nothing is left undelivered.

        Each row is serialized once: the same JSON line goes to the mirror and into the request body.
        (``json_text``: a tenth of ``json.dumps``'s time, which this thread would take from the training
        thread, through the GIL.)"""
        from evsys_sdk.tracking.store import json_text

        with self._flush_lock:
            by_run: dict[str, list[str]] = {}
            pending = self._pending
            prefix, seq = self._uid_prefix, self._seq
            while pending:
                run_id, step, split, metrics, ts = pending.popleft()
                row = {"step": step, "split": split, "metrics": metrics, "uid": f"{prefix}{next(seq)}", "ts": ts}
                by_run.setdefault(run_id, []).append(json_text(row))
            for run_id, lines in by_run.items():
                try:
                    self.mirror.append_lines(self.mirror.run_dir(run_id), "metrics.jsonl", lines)
                except (OSError, ValueError):
                    log.warning("mirroring %d step rows of run %s failed", len(lines), run_id, exc_info=True)
                if self._session is None:
                    continue
                route = f"/sdk/runs/{run_id}/metrics/"
                with self._send_lock:
                    for start in range(0, len(lines), self.batch_size):
                        content = '{"rows":[' + ",".join(lines[start : start + self.batch_size]) + "]}"
                        self._enqueue_request(_Request(route, None, content=content))
        return self._drain(force=force)

    def _enqueue_step(self, run_id: str, step: int, split: str, metrics: dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("the dashboard client is closed")
        if self._worker is None:
            self._start_worker()
        self._pending.append((run_id, int(step), split, metrics, time.time()))
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    def log_step_metric(
        self,
        run_id: str,
        *,
        step: int,
        split: str = "train",
        loss: float | None = None,
        accuracy: float | None = None,
        learning_rate: float | None = None,
        grad_norm: float | None = None,
        tokens_per_sec: float | None = None,
        **metrics: Any,
    ) -> dict[str, Any]:
        """Queue one step row (mirrored and sent by the background sender); never waits on the network."""
        # Called once per training step: plain tests instead of building and filtering a dict.
        values: dict[str, Any] = {}
        if loss is not None:
            values["loss"] = loss
        if accuracy is not None:
            values["accuracy"] = accuracy
        if learning_rate is not None:
            values["learning_rate"] = learning_rate
        if grad_norm is not None:
            values["grad_norm"] = grad_norm
        if tokens_per_sec is not None:
            values["tokens_per_sec"] = tokens_per_sec
        if metrics:
            values.update(_drop_none(metrics))
        self._enqueue_step(run_id, step, split, values)
        return {"ok": True, "queued": True}

    def log_metrics(self, *, run_id: str, step: int, metrics: dict[str, float], split: str = "train") -> None:
        self._enqueue_step(run_id, step, split, _drop_none(metrics))

    def log_metrics_batch(self, run_id: str, rows: list[tuple[int, str, dict[str, float]]]) -> None:
        for step, split, metrics in rows:
            self._enqueue_step(run_id, step, split, _drop_none(metrics))

    def flush(self, *, force: bool = True) -> bool:
        """Mirror and send every queued step row and write now; True when the server has everything.

        ``force`` tries the server once even while it is backing off."""
        return self._ship_pending(force=force)

    def close(self) -> None:
        """Ship what is queued, stop the sender and close the HTTP session (idempotent)."""
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=max(5.0, self.timeout_s))
        self._closed = True
        delivered = self._ship_pending(force=True)
        if not delivered:
            log.warning(
                "dashboard: %d writes could not be delivered; they are in the local mirror, replay them with "
                "`evsys dashboard sync %s`",
                len(self._outbox),
                self.log_dir,
            )
        if self._session is not None:
            self._session.close()
            self._session = None  # later writes (an ExperimentRun exiting after close) go to the mirror only
        _live.discard(self)

    def __enter__(self) -> DashboardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def create_experiment(
        self,
        *,
        experiment_name: str,
        hypothesis: str | None = None,
        hypothesis_reasoning: str | None = None,
        plan: str | None = None,
        tags: list[str] | None = None,
        project_goal_id: str | None = None,
        config: dict[str, Any] | None = None,
        declaration_path: str | None = None,
        is_valid: bool | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "experiment_name": experiment_name}
        if self.project_id:
            body["project_id"] = self.project_id
        body.update(
            _drop_none(
                {
                    "hypothesis": hypothesis,
                    "hypothesis_reasoning": hypothesis_reasoning,
                    "plan": plan,
                    "tags": tags,
                    "project_goal_id": project_goal_id,
                    "config": config,
                    "declaration_path": declaration_path,
                    "is_valid": is_valid,
                    **fields,
                }
            )
        )
        self.mirror.write_experiment(body)
        resp = self._post("/sdk/experiments/", body)
        experiment = (resp or {}).get("experiment") or {}
        return {**body, **experiment, "id": experiment.get("id") or body["id"]}

    def update_experiment(self, experiment_id: str, **patch: Any) -> dict[str, Any]:
        patch = _drop_none(patch)
        self.mirror.update_experiment(experiment_id, patch)
        resp = self._post(f"/sdk/experiments/{experiment_id}/", patch)
        return resp if resp is not None else {"id": experiment_id, **patch}

    def create_group(self, experiment_id: str, name: str) -> dict[str, Any]:
        record = {"id": str(uuid.uuid4()), "experiment_id": experiment_id, "name": name}
        self.mirror.add_group(record)
        self._post(f"/sdk/experiments/{experiment_id}/groups/", {"id": record["id"], "name": name})
        return record

    def create_run(
        self,
        *,
        experiment_id: str,
        group_id: str | None = None,
        dataset_id: str | None = None,
        seed: int | None = None,
        recipe_kind: str | None = None,
        run_config: dict[str, Any] | None = None,
        status: str = "pending",
        wandb_run_url: str | None = None,
        tensorboard_path: str | None = None,
        tensorboard_archive_url: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "experiment_id": experiment_id, "status": status}
        body.update(
            _drop_none(
                {
                    "group_id": group_id,
                    "dataset_id": dataset_id,
                    "seed": seed,
                    "recipe_kind": recipe_kind,
                    "run_config": run_config,
                    "wandb_run_url": wandb_run_url,
                    "tensorboard_path": tensorboard_path,
                    "tensorboard_archive_url": tensorboard_archive_url,
                    **fields,
                }
            )
        )
        self.mirror.write_run(body)
        resp = self._post("/sdk/runs/", body)
        run = (resp or {}).get("run") or {}
        return {**body, **run, "id": run.get("id") or body["id"]}

    def update_run(self, run_id: str, **patch: Any) -> dict[str, Any]:
        patch = _drop_none(patch)
        self.mirror.update_run(run_id, patch)
        resp = self._post(f"/sdk/runs/{run_id}/", patch)
        return resp if resp is not None else {"id": run_id, **patch}

    # upstream names (seed 003)
    create_generation = create_run
    update_generation = update_run

    def create_eval(
        self,
        run_id: str,
        *,
        metrics: dict[str, float],
        benchmark_id: str | None = None,
        checkpoint_id: str | None = None,
        model_ref: str | None = None,
        step: int | None = None,
        breakdowns: dict[str, Any] | None = None,
        sdk_version: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "metrics": metrics}
        body.update(
            _drop_none(
                {
                    "benchmark_id": benchmark_id,
                    "checkpoint_id": checkpoint_id,
                    "model_ref": model_ref,
                    "step": step,
                    "breakdowns": breakdowns,
                    "sdk_version": sdk_version,
                    **fields,
                }
            )
        )
        self.mirror.add_run_records(run_id, "evals.jsonl", [body])
        resp = self._post(f"/sdk/runs/{run_id}/evals/", body)
        return resp if resp is not None else {"ok": True, "id": body["id"]}

    log_eval_run = create_eval

    def record_benchmark(
        self,
        run_id: str,
        score: BenchmarkScore,
        *,
        name: str,
        benchmark_id: str | None = None,
        step: int | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """One benchmark scored on a run: an eval row (its metrics with their ``<metric>_se`` standard
        errors, and breakdowns) plus one prediction per task (output, expected, reward). Returns
        ``{"id": <eval id>, "run_id", "name", "metrics", "predictions": <count>}``, online or offline."""
        metrics = {**score.metrics, **{f"{k}_se": v for k, v in score.stderr.items()}}
        created = self.create_eval(
            run_id,
            metrics=metrics,
            benchmark_id=benchmark_id,
            step=step,
            breakdowns=score.breakdowns or None,
            name=name,
            tags=tags,
        )
        predictions = [
            _drop_none(
                {
                    "benchmark": name,
                    "step": step,
                    "task_id": t.task_id,
                    "instruction": t.instruction,
                    "model_output": t.model_output,
                    "expected": t.expected,
                    "reward": t.reward,
                    "errors": t.errors or None,
                }
            )
            for t in score.per_task
        ]
        self.log_predictions(run_id, predictions)
        eval_id = (created.get("eval") or {}).get("id") or created["id"]  # the server's answer, or the mirror's
        return {"id": eval_id, "run_id": run_id, "name": name, "metrics": metrics, "predictions": len(predictions)}

    def add_checkpoint(
        self,
        run_id: str,
        *,
        uri: str,
        label: str | None = None,
        step: int | None = None,
        base_model: str | None = None,
        is_final: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "uri": uri, "is_final": bool(is_final)}
        body.update(_drop_none({"label": label, "step": step, "base_model": base_model, **fields}))
        self.mirror.add_run_records(run_id, "checkpoints.jsonl", [body])
        resp = self._post(f"/sdk/runs/{run_id}/checkpoints/", body)
        return resp if resp is not None else {"ok": True, "id": body["id"]}

    def log_predictions(self, run_id: str, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        if not predictions:
            return {"ok": True, "inserted": 0}
        uids = [f"{self._uid_prefix}p{next(self._seq)}" for _ in predictions]
        self.mirror.add_run_records(
            run_id, "predictions.jsonl", [{**p, "_uid": u} for p, u in zip(predictions, uids, strict=True)]
        )
        inserted, answered = 0, True
        for start, stop in request_batches(predictions):
            body = {"predictions": predictions[start:stop], "uids": uids[start:stop]}
            resp = self._post(f"/sdk/runs/{run_id}/predictions/", body)
            answered = answered and resp is not None
            inserted += int((resp or {}).get("inserted", 0))
        return {"ok": True, "inserted": inserted if answered else len(predictions)}

    # ------------------------------------------------------- datasets, benchmarks

    def _get_record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        try:
            resp = self._request_now("GET", f"/sdk/{kind}s/{record_id}/")
        except DashboardClientError as exc:
            if exc.status == 404:
                return None
            raise
        record: dict[str, Any] | None = resp.get(kind)
        return record

    def get_dataset(self, dataset_id: str) -> dict[str, Any] | None:
        return self._get_record("dataset", dataset_id)

    def list_datasets(self) -> list[dict[str, Any]]:
        return list(self._request_now("GET", "/sdk/datasets/")["datasets"])

    def get_dataset_rows(self, dataset_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        resp = self._request_now("GET", f"/sdk/datasets/{dataset_id}/rows/", params={"limit": limit, "offset": offset})
        return list(resp["rows"])

    def create_dataset(self, *, name: str, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = self._request_now("POST", "/sdk/datasets/", body={"name": name, **_drop_none(fields)})[
            "dataset"
        ]
        return record

    def add_dataset_rows(self, dataset_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._add_rows("dataset", dataset_id, rows)

    def get_benchmark(self, benchmark_id: str) -> dict[str, Any] | None:
        return self._get_record("benchmark", benchmark_id)

    def list_benchmarks(self) -> list[dict[str, Any]]:
        return list(self._request_now("GET", "/sdk/benchmarks/")["benchmarks"])

    def get_benchmark_rows(self, benchmark_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        resp = self._request_now(
            "GET", f"/sdk/benchmarks/{benchmark_id}/rows/", params={"limit": limit, "offset": offset}
        )
        return list(resp["rows"])

    def create_benchmark(self, *, name: str, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = self._request_now(
            "POST", "/sdk/benchmarks/", body={"name": name, **_drop_none(fields)}
        )["benchmark"]
        return record

    def add_benchmark_rows(self, benchmark_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._add_rows("benchmark", benchmark_id, rows)

    def _add_rows(self, kind: str, record_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        inserted = 0
        for start, stop in request_batches(rows):
            resp = self._request_now("POST", f"/sdk/{kind}s/{record_id}/rows/", body={"rows": rows[start:stop]})
            inserted += int(resp.get("inserted", 0))
        return {"ok": True, "inserted": inserted}


def request_batches(items: list[Any]) -> list[tuple[int, int]]:
    """(start, stop) slices of ``items`` of at most MAX_REQUEST_ROWS items and about MAX_REQUEST_BYTES of JSON."""
    from evsys_sdk.tracking.store import json_text

    out: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, item in enumerate(items):
        n = len(json_text(item)) + 1
        if i > start and (i - start >= MAX_REQUEST_ROWS or size + n > MAX_REQUEST_BYTES):
            out.append((start, i))
            start, size = i, 0
        size += n
    if start < len(items):
        out.append((start, len(items)))
    return out


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _text(resp: httpx.Response, limit: int = 200) -> str:
    body = _body(resp)
    text = str(body.get("error", body)) if isinstance(body, dict) else str(body)
    return text[:limit]


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _parse(resp: httpx.Response) -> dict[str, Any]:
    try:
        value = resp.json()
    except ValueError:
        return {"_raw": resp.text}
    return value if isinstance(value, dict) else {"_raw": value}
