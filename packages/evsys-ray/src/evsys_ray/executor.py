"""The ``ray`` executor: each arm of an experiment is one Ray task with its own resources.

Ray is the engine: it places tasks on nodes by their resource requests and isolates them in worker
processes. evsys only submits arms (``evsys_sdk.orchestration.arm.run_arm_in_worker``) and gathers what each returns;
the driver records every run in its tracking store, so with several machines the store to use is the
dashboard server, and ``output_dir`` must be a path every node can write (a shared file system).
Module import stays light: ``ray`` is imported when the executor starts.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

from pydantic import Field

from evsys_sdk.base.logger import get_logger
from evsys_sdk.orchestration.arm import ArmTask, over_budget, run_arm_in_worker
from evsys_sdk.orchestration.executors import Executor, Outcome, WorkerDied, kill_deadline, seconds_until
from evsys_sdk.run.progress import Progress

log = get_logger("ray")

# Per-arm resource keys read from executor.params.resources and from a run's backend.params.
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory", "accelerator_type")


def run_arm_task(task: ArmTask) -> dict[str, Any]:
    """The Ray task: one arm, in a Ray worker process."""
    return run_arm_in_worker(task)


class RayExecutor(Executor):
    """Arms as Ray tasks on the cluster at ``address`` (default: a local Ray instance started here, or the
    one this process already initialised)."""

    name: ClassVar[str] = "ray"

    class Config(Executor.Config):
        address: str | None = Field(
            default=None, description="the cluster to join ('auto', 'ray://host:10001'); default: local Ray"
        )
        num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local Ray instance started here")
        max_concurrent: int | None = Field(
            default=None, ge=1, description="arms in flight at once (default: as many as the cluster's resources fit)"
        )
        resources: dict[str, Any] = Field(
            default_factory=dict,
            description="each arm's request: num_cpus (default 1), num_gpus, memory, accelerator_type, or custom "
            "resources by name; a run's backend.params num_cpus/num_gpus/memory override it",
        )
        runtime_env: dict[str, Any] | None = Field(default=None, description="Ray runtime_env for the arms")

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._ray: Any = None
        self._remote: Any = None
        self._owns_ray = False
        self._slots = self.config.max_concurrent or 1  # the cluster's fit is known once started
        self._budgets: dict[Any, tuple[float, ArmTask]] = {}  # task ref -> (when it is killed, its task)

    @property
    def slots(self) -> int:
        return self._slots

    def start(self) -> None:
        if self.started:
            return
        import ray

        self._ray = ray
        if not ray.is_initialized():
            ray.init(
                address=self.config.address,
                num_cpus=self.config.num_cpus if self.config.address is None else None,
                runtime_env=self.config.runtime_env,
                include_dashboard=False,
                logging_level="WARNING",
            )
            self._owns_ray = True
        self._remote = ray.remote(run_arm_task)
        self._slots = self.config.max_concurrent or self._fit(ray.cluster_resources())
        self.started = True

    def _fit(self, cluster: dict[str, float]) -> int:
        """How many arms with the default request the cluster holds at once."""
        request = self._request({})
        asks = {"CPU": request.get("num_cpus", 0), "GPU": request.get("num_gpus", 0), **request.get("resources", {})}
        counts = [math.floor(cluster.get(key, 0) / amount + 1e-9) for key, amount in asks.items() if amount]
        return max(1, min(counts)) if counts else max(1, int(cluster.get("CPU", 1)))

    def _request(self, backend_params: dict[str, Any]) -> dict[str, Any]:
        """Ray ``.options()`` for one arm: executor defaults, then the run's backend.params."""
        merged = {"num_cpus": 1, **self.config.resources}
        merged.update({k: backend_params[k] for k in RESOURCE_KEYS if k in backend_params})
        options = {k: merged.pop(k) for k in RESOURCE_KEYS if k in merged}
        if merged:  # anything else is a custom resource (``{"TPU": 1}``, ``{"node:10.0.0.2": 0.01}``)
            options["resources"] = merged
        return options

    def submit(self, task: ArmTask, *, store: Any = None, progress: Progress | None = None) -> Any:
        self.start()
        options = self._request(task.run.backend.params)
        # max_retries=0: a crashed arm is that arm's failure, never silently run twice.
        ref = self._remote.options(**options, max_retries=0, name=f"evsys-arm:{task.name}").remote(task)
        kill_at = kill_deadline(task, self.config.kill_grace_seconds)
        if kill_at is not None:
            self._budgets[ref] = (kill_at, task)
        return ref

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        ray = self._ray
        timeout = seconds_until([self._budgets[ref][0] for ref in handles if ref in self._budgets])
        ready, rest = ray.wait(handles, num_returns=1, timeout=timeout)
        if rest:  # collect whatever else has finished too, without waiting
            more, rest = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        out = [(ref, self._outcome(ref)) for ref in ready]
        for ref in rest:
            kill_at, task = self._budgets.get(ref, (None, None))
            if kill_at is not None and task is not None and time.monotonic() >= kill_at:
                log.warning("arm '%s' is past its time budget of %g s: killing it", task.name, task.max_seconds)
                self.cancel([ref])
                out.append((ref, over_budget(task)))
        for ref, _ in out:
            self._budgets.pop(ref, None)
        return out

    def _outcome(self, ref: Any) -> Outcome:
        from ray import exceptions

        try:
            result: dict[str, Any] = self._ray.get(ref)
            return result
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.OutOfMemoryError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return WorkerDied(f"the Ray worker running this arm died ({type(exc).__name__}: {first})")
        except exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            return cause
        except exceptions.RayError as exc:
            return exc

    def cancel(self, handles: list[Any]) -> None:
        for ref in handles:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone: nothing left to stop
                pass

    def close(self) -> None:
        if self._owns_ray and self._ray is not None:
            self._ray.shutdown()
        self._owns_ray = False
        self.started = False
