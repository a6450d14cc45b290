"""Executors: where an experiment's arms run.

The experiment layer decides everything (arm order, groups, continual chains, resume, recording);
an executor only runs ``ArmTask``s through ``evsys_sdk.orchestration.arm`` and hands back what each returned. The
driver keeps at most ``slots`` arms in flight and submits the next ready arm as one finishes, so a
chain's next stage goes out as soon as its previous stage is back, and chains run side by side.

Built in: ``sequential`` (in the driver, one arm at a time, the default) and ``process`` (a process pool
on this machine). ``ray`` comes with the evsys-ray package. A third party registers its own through
``evsys_register_executors``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.config import StrictModel

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from evsys_sdk.orchestration.arm import ArmTask
    from evsys_sdk.run.progress import Progress

# The arm runner and the process machinery load when arms run: `evsys validate` registers these classes
# (for their configs) and never runs one.

log = get_logger("executors")

# What an arm hands back: run_arm's dict, or the exception that kept it from returning one.
Outcome = dict[str, Any] | BaseException


class WorkerDied(RuntimeError):
    """The process running an arm ended without returning (killed, out of memory, ``os._exit``)."""


class Executor:
    """The interface the experiment layer drives. Subclasses set ``name`` and a pydantic ``Config``.

    ``submit`` returns a handle; ``wait`` blocks until at least one of the given handles is done and
    returns ``(handle, outcome)`` pairs; ``cancel`` stops arms in flight (Ctrl-C). ``in_process``
    executors get the driver's live store and progress line; the others get only the picklable task.
    """

    name: ClassVar[str] = ""
    in_process: ClassVar[bool] = False

    class Config(StrictModel):
        plugins: list[str] = Field(
            default_factory=list,
            description="hooks modules each worker loads, for plugins not installed as entry points",
        )
        kill_grace_seconds: float = Field(
            default=10.0,
            ge=0,
            description="how long an arm past its run.max_seconds may take to stop on its own before it is killed",
        )

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.started = False

    @property
    def plugins(self) -> list[str]:
        return list(getattr(self.config, "plugins", []))

    @property
    def slots(self) -> int:
        """How many arms may be in flight at once."""
        return 1

    def start(self) -> None:
        """Bring the engine up (a fork server, a Ray connection); idempotent, timed apart from the arms."""
        self.started = True

    def submit(self, task: ArmTask, *, store: Any = None, progress: Progress | None = None) -> Any:
        raise NotImplementedError

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        raise NotImplementedError

    def cancel(self, handles: list[Any]) -> None:
        """Stop the given arms; their results are no longer wanted."""

    def close(self) -> None:
        """Release the engine; the executor may be started again afterwards."""
        self.started = False


@dataclass(eq=False)
class _Queued:
    task: ArmTask
    store: Any
    progress: Progress | None


class SequentialExecutor(Executor):
    """Every arm in the driver process, one after the other (the default)."""

    name: ClassVar[str] = "sequential"
    in_process: ClassVar[bool] = True

    class Config(StrictModel):
        pass

    def submit(self, task: ArmTask, *, store: Any = None, progress: Progress | None = None) -> Any:
        return _Queued(task, store, progress)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        job: _Queued = handles[0]
        outcome: Outcome
        from evsys_sdk.orchestration.arm import run_arm

        try:
            outcome = run_arm(job.task, store=job.store, progress=job.progress)
        except Exception as exc:  # KeyboardInterrupt goes up: the driver marks the arm cancelled
            outcome = exc
        return [(job, outcome)]


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


@dataclass(eq=False)
class _Job:
    pool: ProcessPoolExecutor
    future: Future[dict[str, Any]]
    task: ArmTask
    processes: list[Any] = field(default_factory=list)
    kill_at: float | None = None  # time.monotonic() past the arm's budget and grace: killed then


def kill_deadline(task: ArmTask, grace: float) -> float | None:
    """When an executor kills ``task`` (``time.monotonic()``): its budget and the grace from now."""
    return time.monotonic() + task.max_seconds + grace if task.max_seconds is not None else None


def seconds_until(deadlines: list[float | None]) -> float | None:
    """How long a wait may block before the earliest deadline is due (None: no deadline)."""
    due = [d for d in deadlines if d is not None]
    return max(0.0, min(due) - time.monotonic()) if due else None


class ProcessExecutor(Executor):
    """Arms in worker processes on this machine, ``max_workers`` at a time.

    Each arm gets a fresh process of its own (a one-worker ``ProcessPoolExecutor`` per arm), so a crash,
    an ``os._exit`` or the OOM killer fails only that arm: its pool breaks, no other. Processes come from
    a fork server that has imported evsys and discovered plugins once, so starting one costs
    milliseconds where ``spawn`` re-imports everything per arm (about a second of CPU here).
    """

    name: ClassVar[str] = "process"

    class Config(Executor.Config):
        max_workers: int | None = Field(default=None, ge=1, description="arms at once (default: CPU count)")
        start_method: Literal["forkserver", "spawn"] | None = Field(
            default=None, description="how workers start (default: forkserver where the OS has it, else spawn)"
        )

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        method = self.config.start_method or ("forkserver" if "forkserver" in _start_methods() else "spawn")
        self.start_method = method
        self._jobs: set[_Job] = set()

    @property
    def slots(self) -> int:
        return self.config.max_workers or os.cpu_count() or 1

    def _context(self) -> Any:
        import multiprocessing

        return multiprocessing.get_context(self.start_method)

    def start(self) -> None:
        if self.started:
            return
        from concurrent.futures import ProcessPoolExecutor

        if self.start_method == "forkserver":
            from multiprocessing import forkserver

            # The server imports these once; every worker forked from it starts with them loaded.
            self._context().set_forkserver_preload(["__main__", "evsys_sdk.orchestration._forkserver_preload"])
            forkserver.ensure_running()
            # The server preloads before it forks anything: one trivial job waits that out here, so
            # start-up is paid (and timed) once instead of inside the first arms.
            with ProcessPoolExecutor(max_workers=1, mp_context=self._context()) as pool:
                pool.submit(os.getpid).result()
        self.started = True

    def submit(self, task: ArmTask, *, store: Any = None, progress: Progress | None = None) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        from evsys_sdk.orchestration.arm import run_arm_in_worker

        self.start()
        pool = ProcessPoolExecutor(max_workers=1, mp_context=self._context())
        # A forked worker inherits the fork server's environment, not the driver's current one.
        environ = dict(os.environ) if self.start_method == "forkserver" else None
        future = pool.submit(run_arm_in_worker, task, environ)
        processes = list(getattr(pool, "_processes", {}).values())
        job = _Job(pool, future, task, processes, kill_deadline(task, self.config.kill_grace_seconds))
        self._jobs.add(job)
        return job

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_futures
        from concurrent.futures.process import BrokenProcessPool

        by_future = {job.future: job for job in handles}
        timeout = seconds_until([job.kill_at for job in handles])
        done, _ = wait_futures(list(by_future), timeout=timeout, return_when=FIRST_COMPLETED)
        out: list[tuple[Any, Outcome]] = []
        now = time.monotonic()
        for job in handles:
            if job.future not in done and job.kill_at is not None and now >= job.kill_at:
                out.append((job, self._kill_over_budget(job)))
        for future in done:
            job = by_future[future]
            outcome: Outcome
            try:
                outcome = future.result()
            except BrokenProcessPool:
                # The pool's manager thread joins the dead worker; reading its exit status at the same
                # time races it on the forkserver pipe (the loser sees EOF, i.e. "exit code 255").
                job.pool.shutdown(wait=True)
                outcome = WorkerDied(f"the worker process running this arm died ({_exit_reason(job.processes)})")
            except BaseException as exc:  # e.g. a KeyboardInterrupt raised in the worker, sent back
                outcome = exc
            self._release(job)
            out.append((job, outcome))
        return out

    def _kill_over_budget(self, job: _Job) -> Outcome:
        """Stop an arm still running past its budget and grace: SIGTERM, then SIGKILL."""
        from evsys_sdk.orchestration.arm import over_budget

        log.warning("arm '%s' is past its time budget of %g s: killing it", job.task.name, job.task.max_seconds)
        for proc in job.processes:
            if proc.is_alive():
                proc.terminate()
        for proc in job.processes:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2)
        self._release(job)
        return over_budget(job.task)

    def _release(self, job: _Job) -> None:
        self._jobs.discard(job)
        job.pool.shutdown(wait=False, cancel_futures=True)

    def cancel(self, handles: list[Any]) -> None:
        for job in handles:
            job.future.cancel()
            for proc in job.processes:
                if proc.is_alive():
                    proc.terminate()
            self._release(job)

    def close(self) -> None:
        for job in list(self._jobs):
            self._jobs.discard(job)
            job.pool.shutdown(wait=True, cancel_futures=True)
        self.started = False


def _exit_reason(processes: list[Any]) -> str:
    codes = []
    for proc in processes:
        proc.join(timeout=1)
        codes.append(proc.exitcode)
    code = next((c for c in codes if c is not None), None)
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


EXECUTOR_CLASSES: tuple[type[Executor], ...] = (SequentialExecutor, ProcessExecutor)


def build_executor(kind: str, params: dict[str, Any]) -> Executor:
    """The registered executor ``kind`` built with ``params``."""
    from evsys_sdk.plugins.registry import registry

    executor: Executor = registry("executor").get(kind)(**params)
    return executor


def picklable_problem(what: str, value: Any) -> str | None:
    """Why ``value`` cannot be shipped to a worker, or None when it can."""
    import pickle

    try:
        pickle.dumps(value)
    except Exception as exc:
        return f"{what} cannot be sent to a worker process ({type(exc).__name__}: {exc})"
    return None


__all__ = [
    "EXECUTOR_CLASSES",
    "Executor",
    "Outcome",
    "ProcessExecutor",
    "SequentialExecutor",
    "WorkerDied",
    "build_executor",
    "picklable_problem",
]
