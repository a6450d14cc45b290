"""One rank of a distributed arm: ``python -m torch.distributed.run ... -m evsys_local.distributed.worker SPEC``.

Every rank rebuilds the backend, the algorithm and a run context from the spec and trains; rank 0's log
store and in-loop validation talk back to the arm's process over an authenticated loopback connection,
the other ranks log nothing. A rank that fails sends its error (with the time it failed, so the arm
reports the first failure, not the ranks torn down after it) and exits non-zero, which makes torchrun
stop the others.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from multiprocessing.connection import Client, Connection
from typing import Any, ClassVar

from evsys_local.distributed.spec import ArmSpec, read_spec


class RelayLogStore:
    """Rank 0's log store: every call goes to the arm's process, which writes the run's records."""

    name: ClassVar[str] = "relay"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._conn.send(("metrics", {k: float(v) for k, v in metrics.items()}, int(step)))

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self.log_metrics({key: value}, step)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self._conn.send(("hyperparams", params))

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self._conn.send(("artifact", name, path, kind))

    def close(self) -> None:
        """The arm's process closes the real store."""


def relay_validation(conn: Connection) -> Any:
    """Rank 0's ``on_validation_step``: report the step, then serve the arm's generation requests on the
    live model until it says go on (it decides which benchmarks are due and scores them)."""

    def on_step(ctx: Any, step: int, client: Any) -> None:
        conn.send(("step", int(step)))
        while True:
            message = conn.recv()
            if message[0] == "go":
                return
            _, prompts, kwargs = message
            live = client() if not hasattr(client, "generate") else client
            conn.send(("texts", live.generate_batch(prompts, **kwargs)))

    return on_step


def _die_with_parent() -> None:
    """Linux: this rank gets SIGKILL if torchrun dies without stopping it (it is in a session of its own)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call
        os._exit(1)


def run_rank(spec: ArmSpec, conn: Connection, rank: int) -> None:
    from evsys_local.backend import LocalBackend
    from evsys_sdk.spec.null_log_store import NullLogStore
    from evsys_sdk.spec.protocols import RunContext

    backend = LocalBackend(**spec.backend_params)
    handles = backend.load_rank(model=spec.model, run_dir=spec.output_dir)
    extras = {**spec.extras, "backend_handles": handles}
    if rank == 0 and spec.validate:
        extras["on_validation_step"] = relay_validation(conn)
    ctx = RunContext(
        run_id=spec.run_id,
        output_dir=spec.output_dir,
        config=spec.config,
        data_store=spec.data_store,
        backend=backend,
        log_store=RelayLogStore(conn) if rank == 0 else NullLogStore(),
        extras=extras,
        budget=None,  # the arm's process keeps the clock and stops the whole job
    )
    try:
        result = spec.algorithm.train(ctx)
    finally:
        backend.teardown(handles)
    if rank == 0:
        conn.send(("result", result))


def main(argv: list[str]) -> int:
    _die_with_parent()
    spec = read_spec(argv[0])
    rank = int(os.environ.get("RANK", "0"))
    if spec.cwd and os.path.isdir(spec.cwd):
        os.chdir(spec.cwd)
    conn = Client(spec.address, authkey=spec.authkey)
    try:
        run_rank(spec, conn, rank)
    except BaseException as exc:  # every failure is reported, then the rank exits non-zero
        failed = time.time()
        conn.send(("error", rank, failed, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
