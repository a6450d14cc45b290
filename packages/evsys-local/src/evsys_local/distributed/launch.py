"""The arm's side of a distributed arm: describe it, launch torchrun on it, relay rank 0, stop it cleanly.

The job runs in a session of its own, so a Ctrl-C reaches this process only; this process then stops the
job. Stopping is SIGTERM to torchrun (which stops its ranks), then SIGKILL to every process of the job
still alive after a grace period: the ranks are remembered while the job runs, so none outlives the arm
even when torchrun dies first. torchrun itself gets SIGTERM if this process dies (PR_SET_PDEATHSIG), and
each rank SIGKILL if torchrun dies. The arm's time budget is kept here: past it the job is stopped and
the run fails as a one-process run does (``time budget exceeded``, the last logged metrics).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, Listener, wait
from pathlib import Path
from typing import Any, ClassVar

from evsys_local.distributed.spec import ArmSpec, shippable_extras, write_spec
from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.protocols import RunContext, RunResult

log = get_logger("local.distributed")

STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2
REMEMBER_SECONDS = 1.0


class RankFailed(RuntimeError):
    """A rank of the arm's job failed; the message is that rank's error."""


class RankTraceback(Exception):
    """The failing rank's traceback, chained under RankFailed so run_result.json keeps it."""

    def __str__(self) -> str:
        return str(self.args[0])


class RemoteInference:
    """Serves in-loop validation on rank 0's live model, from the arm's process."""

    name: ClassVar[str] = "local_rank0"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # the eval engine may call from several threads

    def generate_batch(
        self, prompts: list[str], *, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> list[str]:
        with self._lock:
            self._conn.send(
                ("generate", list(prompts), {"max_tokens": max_tokens, "temperature": temperature, "stop": stop})
            )
            kind, texts = self._conn.recv()
        assert kind == "texts"
        return list(texts)

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        return self.generate_batch([prompt], max_tokens=max_tokens, temperature=temperature, stop=stop)[0]


def torchrun_command(num_processes: int, spec_path: Path) -> list[str]:
    """torch's own launcher on one node; --standalone picks a free loopback rendezvous port per job."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={num_processes}",
        "--max-restarts=0",
        "-m",
        "evsys_local.distributed.worker",
        str(spec_path),
    ]


def _term_with_parent() -> Any:
    """What torchrun's process runs before exec (Linux): SIGTERM when the arm's process dies. The libc
    function is looked up here, before the fork: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def train_distributed(algorithm: Any, ctx: RunContext, handles: dict[str, Any]) -> RunResult:
    """Train ``algorithm`` on ``ctx`` as a job of ``handles['launch']['num_processes']`` ranks."""
    name = str(getattr(algorithm, "name", type(algorithm).__name__))
    launch = handles["launch"]
    run_dir = Path(ctx.output_dir)
    authkey = secrets.token_bytes(32)
    listener = Listener(("127.0.0.1", 0), backlog=launch["num_processes"], authkey=authkey)
    try:
        spec = ArmSpec(
            algorithm=algorithm,
            backend_params=launch["backend_params"],
            model=launch["model"],
            run_id=ctx.run_id,
            output_dir=str(run_dir.resolve()),
            config=ctx.config,
            data_store=ctx.data_store,
            extras=shippable_extras(ctx.extras, name),
            address=listener.address,
            authkey=authkey,
            validate=ctx.extras.get("on_validation_step") is not None,
        )
        spec_path = write_spec(spec, run_dir / "distributed" / "arm.pkl")
        with (run_dir / "distributed" / "torchrun.log").open("wb") as out:
            job = _Job(torchrun_command(launch["num_processes"], spec_path), out, listener, ctx)
            try:
                return job.supervise()
            finally:
                job.stop()
                spec_path.unlink(missing_ok=True)  # it holds the job's key and rows; the log stays
    finally:
        listener.close()


class _Job:
    def __init__(self, command: list[str], out: Any, listener: Listener, ctx: RunContext) -> None:
        self.ctx = ctx
        self.conns: list[Connection] = []
        self.result: RunResult | None = None
        self.errors: list[tuple[float, int, str, str]] = []
        self.known: dict[int, Any] = {}  # every process of the job seen so far, by pid
        self._looked = 0.0
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self.proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_term_with_parent(),
        )
        self._accepting.start()

    def _accept(self, listener: Listener) -> None:
        while True:
            try:
                self.conns.append(listener.accept())
            except (OSError, EOFError):  # closed at the end of the arm
                return
            except Exception:  # a connection with a wrong key: not one of ours
                log.warning("refused a connection to a distributed arm's listener", exc_info=True)

    def supervise(self) -> RunResult:
        """Relay rank 0 until the job ends; the arm's budget and Ctrl-C stop it (in ``stop``)."""
        while True:
            self._remember_processes()
            ready = wait(list(self.conns), timeout=POLL_SECONDS)
            for conn in ready:
                self._receive(conn)  # type: ignore[arg-type]
            self.ctx.check_budget()
            if not ready and self.proc.poll() is not None:
                while ready := wait(list(self.conns), timeout=0):  # what was sent just before the exit
                    for conn in ready:
                        self._receive(conn)  # type: ignore[arg-type]
                break
        if self.errors:
            _, rank, error, tb = min(self.errors)
            raise RankFailed(f"rank {rank} failed: {error}") from RankTraceback(tb)
        if self.proc.returncode != 0 or self.result is None:
            raise RankFailed(f"torchrun exited with {_exit_text(self.proc.returncode)} and no rank reported an error")
        return self.result

    def _receive(self, conn: Connection) -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            self.conns.remove(conn)
            return
        kind, *body = message
        store = self.ctx.log_store
        if kind == "metrics":
            store.log_metrics(body[0], body[1])
        elif kind == "hyperparams":
            store.log_hyperparams(body[0])
        elif kind == "artifact":
            store.log_artifact(body[0], body[1], kind=body[2])
        elif kind == "step":
            try:
                self.ctx.validate(body[0], lambda: RemoteInference(conn))
            finally:
                conn.send(("go",))
        elif kind == "result":
            self.result = body[0]
        elif kind == "error":
            rank, failed, error, tb = body
            self.errors.append((failed, rank, error, tb))

    def _remember_processes(self, *, now: bool = False) -> None:
        """Note the job's processes, once a second (a scan of /proc): torchrun starts its ranks once."""
        import psutil

        if not now and time.monotonic() - self._looked < REMEMBER_SECONDS:
            return
        self._looked = time.monotonic()
        try:
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                self.known.setdefault(p.pid, p)
        except psutil.Error:
            pass

    def stop(self) -> None:
        """End the job and every process it started: SIGTERM to torchrun, SIGKILL to what is left."""
        import psutil

        self._remember_processes(now=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        alive = [p for p in self.known.values() if _alive(p)]
        _, alive = psutil.wait_procs(alive, timeout=STOP_GRACE_SECONDS)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=STOP_GRACE_SECONDS)
        self.proc.wait()
        for conn in self.conns:
            conn.close()


def _alive(p: Any) -> bool:
    import psutil

    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
