"""Extension protocols (duck-typed: no subclassing needed) and the records passed between stages."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from evsys_sdk.base.budget import TimeBudget

if TYPE_CHECKING:
    from evsys_sdk.spec.config import ExperimentConfig, RunConfig

RunStatus = Literal["completed", "failed", "cancelled", "stopped"]  # stopped: at a search's rung


@dataclass
class RunResult:
    """What ``Algorithm.train`` returns and ``run_result.json`` records."""

    run_id: str
    status: RunStatus
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerificationResult:
    reward: float
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LogStore(Protocol):
    """Where a run's metrics, hyperparams and artifacts go. A store may also define ``start_run(ctx)``
    (called with the run's context before training: which run it logs) and ``end_run(status)`` (the
    run's final status, before ``close``)."""

    name: ClassVar[str]

    def log_scalar(self, key: str, value: float, step: int) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_hyperparams(self, params: dict[str, Any]) -> None: ...
    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class DataStore(Protocol):
    """Reads and writes the files a config names, by path relative to its root (``data_store.kind``)."""

    name: ClassVar[str]

    def read_jsonl(self, path: str) -> list[dict[str, Any]]: ...
    def write_jsonl(self, path: str, rows: Iterable[dict[str, Any]]) -> None: ...
    def read_json(self, path: str) -> Any: ...
    def write_json(self, path: str, value: Any) -> None: ...
    def exists(self, path: str) -> bool: ...
    def list(self, prefix: str = "") -> list[str]: ...


@runtime_checkable
class Backend(Protocol):
    """What trains the model: ``prepare`` loads it and returns the handles an algorithm uses (in
    ``ctx.extras["backend_handles"]``), ``teardown`` releases them."""

    name: ClassVar[str]

    def prepare(self, *, model: dict[str, Any], run_dir: str) -> dict[str, Any]: ...
    def teardown(self, handles: dict[str, Any]) -> None: ...


def _null_log_store() -> LogStore:
    # Imported at first use: the null store is a pydantic-configured kind, and this module stays free of pydantic
    # (the plugin host imports it to start the CLI).
    from evsys_sdk.spec.null_log_store import NullLogStore

    return NullLogStore()


@dataclass
class RunContext:
    """Everything an algorithm needs. ``extras`` carries train_rows, n_train_rows, backend_handles,
    model_name, tags, the validation callback and any ``extra_context`` given to the runner; ``budget``
    is the run's ``run.max_seconds`` (None: unbounded)."""

    run_id: str
    output_dir: str
    config: ExperimentConfig
    data_store: DataStore
    backend: Backend
    log_store: LogStore = field(default_factory=_null_log_store)
    extras: dict[str, Any] = field(default_factory=dict)
    budget: TimeBudget | None = None

    def check_budget(self) -> None:
        """Raise ``TimeBudgetExceeded`` once the run is past its time budget: call it once per step."""
        if self.budget is not None:
            self.budget.check()

    @property
    def run_config(self) -> RunConfig:
        """The run this context trains (the single ``run`` of the per-run config)."""
        from evsys_sdk.spec.config import RunConfig

        run = self.extras.get("run_config")
        return run if isinstance(run, RunConfig) else self.config.all_runs()[0]

    def validate(self, step: int, client: InferenceClient | Callable[[], InferenceClient] | None = None) -> None:
        """Call the in-loop validation callback, if the experiment installed one, after ``step``.

        ``client`` serves the live model (or is a zero-argument factory of one, built only when a
        validation set is due at this step); without it the run's default inference factory is used.
        """
        callback: Callable[..., None] | None = self.extras.get("on_validation_step")
        if callback is not None:
            callback(self, step, client)


@runtime_checkable
class Algorithm(Protocol):
    """A training algorithm: ``train(ctx)`` trains on ``ctx``'s rows and backend, logs through
    ``ctx.log_store``, calls ``ctx.check_budget()`` and ``ctx.validate(step)`` once per step, and returns a
    ``RunResult`` with the ``final_checkpoint`` (and ``state-final``) artifacts."""

    name: ClassVar[str]

    def train(self, ctx: RunContext) -> RunResult: ...


@runtime_checkable
class Verifier(Protocol):
    """Rewards one completion of a task: ``verify`` returns a ``VerificationResult`` (reward, info)."""

    name: ClassVar[str]

    def verify(self, *, prompt: str, completion: str, target: dict[str, Any]) -> VerificationResult: ...


@runtime_checkable
class Metric(Protocol):
    """``compute(task_rewards)`` (reward family) or ``compute(*, predictions, targets)`` (older family)."""

    name: ClassVar[str]

    def compute(self, *args: Any, **kwargs: Any) -> float: ...


@runtime_checkable
class InferenceClient(Protocol):
    """Answers prompts: ``generate`` returns one completion (see also the async and batch variants)."""

    name: ClassVar[str]

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str: ...


@runtime_checkable
class AsyncInferenceClient(Protocol):
    """Optional: an inference client with a native async path. The eval engine awaits ``agenerate``
    (many requests in flight on one event loop) instead of calling ``generate`` on threads."""

    name: ClassVar[str]

    async def agenerate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str: ...


@runtime_checkable
class BatchInferenceClient(Protocol):
    """Optional: an inference client that serves many prompts in one call, completions in prompt order.
    The eval engine uses it in chunks of ``batch_size`` when ``batch_size > 1``."""

    name: ClassVar[str]

    def generate_batch(
        self,
        *,
        prompts: list[str],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> list[str]: ...


@runtime_checkable
class Transform(Protocol):
    """Rows in, rows out. A transform that is a function of the rows alone may say so with a class
    attribute ``pure = True``: deep validation then runs it to check the training set is not empty."""

    name: ClassVar[str]

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]: ...


InferenceFactory = Callable[[RunResult, "RunConfig"], InferenceClient]
