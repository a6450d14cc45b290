"""Contract suites: what evsys relies on from every extension kind, as pytest test classes.

Subclass a suite in your plugin's tests and set its class attributes; pytest then runs every inherited
test against your extension::

    from evsys_sdk.testing import AlgorithmContract

    class TestMyAlgo(AlgorithmContract):
        algorithm_kind = "my_algo"
        params = {"learning_rate": 0.1}

The suites are named ``*Contract`` so pytest collects only your ``Test*`` subclasses. Names are looked
up in the current plugin host, so an installed plugin is found through its entry point; to test a hooks
module without installing it, list it in ``plugin_hooks`` and the suite runs in an isolated host holding
the built-ins and those hooks. Every test runs under the network guard (loopback only).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import pytest
from pydantic import BaseModel, ValidationError

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.plugins.host import PluginHost, use_host
from evsys_sdk.plugins.registry import registry, resolve_algorithm, schema_for
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.spec.protocols import (
    Backend,
    DataStore,
    InferenceClient,
    LogStore,
    Metric,
    RunResult,
    Transform,
    VerificationResult,
    Verifier,
)
from evsys_sdk.testing.configs import DEFAULT_ROWS, mock_experiment_config
from evsys_sdk.testing.network import network_guard

__all__ = [
    "AlgorithmContract",
    "BackendContract",
    "ContractRun",
    "DataStoreContract",
    "ExecutorContract",
    "InferenceClientContract",
    "LogStoreContract",
    "MetricContract",
    "TransformContract",
    "VerifierContract",
]

_UNKNOWN_PARAM = "evsys_contract_unknown_param"


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


class _Contract:
    """Shared machinery: the environment, the look-up of the extension under test, and the tests every
    kind passes (registered, strict ``Config``, exported schema)."""

    registry_kind: ClassVar[str]
    name_attr: ClassVar[str]  # the attribute a subclass sets to the registered name under test
    plugin_hooks: ClassVar[Sequence[object]] = ()

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _evsys_contract_env(cls) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(network_guard())
            if cls.plugin_hooks:
                host = PluginHost(entry_points=False)
                for i, hooks in enumerate(cls.plugin_hooks):
                    host.add_plugin(hooks, getattr(hooks, "__name__", f"contract_hooks_{i}"))
                stack.enter_context(use_host(host))
            yield

    def contract_params(self, tmp_path: Path) -> dict[str, Any]:
        """The params the suite builds the extension with (a fresh copy per call)."""
        raise NotImplementedError

    @classmethod
    def extension_name(cls) -> str:
        name = getattr(cls, cls.name_attr, None)
        if not isinstance(name, str) or not name:
            _fail(f"{cls.__name__} must set `{cls.name_attr}` to the registered name under test")
        return name

    @classmethod
    def extension_class(cls) -> type[Any]:
        found: type[Any] = registry(cls.registry_kind).get(cls.extension_name())
        return found

    def build(self, tmp_path: Path) -> Any:
        return self.extension_class()(**self.contract_params(tmp_path))

    def test_registered_with_strict_config(self, tmp_path: Path) -> None:
        """The name is registered, and its pydantic ``Config`` accepts the suite's params and rejects an
        unknown one, both when validated and when the class is constructed.

        Troubleshooting: register the class in your hooks module's ``evsys_register_<kind>s`` hook and
        install the package (or list the hooks module in ``plugin_hooks``); give the class a nested
        ``class Config(StrictModel)`` and build it in ``__init__`` with ``self.config = self.Config(**params)``.
        """
        cls = self.extension_class()
        config = getattr(cls, "Config", None)
        assert isinstance(config, type) and issubclass(config, BaseModel), (
            f"{cls.__name__} needs a nested pydantic `Config` class (subclass evsys_sdk.spec.config.StrictModel)"
        )
        params = self.contract_params(tmp_path)
        config.model_validate(params)
        with pytest.raises(ValidationError):
            config.model_validate({**params, _UNKNOWN_PARAM: 1})
        with pytest.raises(ValidationError):
            cls(**{**params, _UNKNOWN_PARAM: 1})

    def test_schema_for(self, tmp_path: Path) -> None:
        """``schema_for`` exports a strict JSON object schema covering the suite's params (editors and
        the evolution loop read it). Troubleshooting: declare every param as a field of ``Config``."""
        schema = schema_for(self.registry_kind, self.extension_name())
        assert isinstance(schema, dict)
        json.dumps(schema)  # must be plain JSON
        assert schema.get("type") == "object", schema
        assert schema.get("additionalProperties") is False, "Config must forbid extra keys (extra='forbid')"
        missing = set(self.contract_params(tmp_path)) - set(schema.get("properties", {}))
        assert not missing, f"params missing from the schema: {sorted(missing)}"

    # How many param sets the property test draws (derandomized: the same ones every run).
    property_examples: ClassVar[int] = 60
    # Whether it also builds the extension from them: off for stores, which write where params point.
    builds_from_schema: ClassVar[bool] = True

    def test_params_are_described(self) -> None:
        """Every param (nested models' too) has a ``description``: editors show it, and a search loop
        reads what it mutates. Troubleshooting: ``Field(..., description="...")`` on each field."""
        missing = undescribed(schema_for(self.registry_kind, self.extension_name()))
        assert not missing, f"params without a description: {missing}"

    def test_schema_params_build_or_fail_validation(self, tmp_path: Path) -> None:
        """Params drawn from the extension's own JSON schema, or its keys with any JSON value, validate or
        raise a ValidationError (and so does building the extension from them, or an EvsysError): never
        another exception. Troubleshooting: give each field the bounds its domain has (``ge``, ``le``,
        ``gt``), and raise ``ValueError`` in a validator, never ``TypeError``/``KeyError``/``OverflowError``."""
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        from evsys_sdk.testing.schema_strategies import schema_params, wild_params

        cls = self.extension_class()
        schema = schema_for(self.registry_kind, self.extension_name())
        config = getattr(cls, "Config", None)

        @settings(
            max_examples=self.property_examples,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.one_of(schema_params(schema), wild_params(schema)))
        def check(params: dict[str, Any]) -> None:
            try:
                if config is not None:
                    config.model_validate(params)
                if self.builds_from_schema:
                    cls(**params)
            except (ValidationError, EvsysError):
                return
            except Exception as exc:
                _fail(f"params {params!r:.400} raised {type(exc).__name__}: {exc}, not a validation error")

        check()


def undescribed(schema: dict[str, Any]) -> list[str]:
    """Dotted names of the properties of ``schema`` (and of its ``$defs``) that have no description."""
    missing = [name for name, prop in schema.get("properties", {}).items() if not _described(prop)]
    for def_name, sub in schema.get("$defs", {}).items():
        missing += [f"{def_name}.{name}" for name in undescribed(sub)]
    return missing


def _described(prop: dict[str, Any]) -> bool:
    return bool(prop.get("description"))


class _StaticParams(_Contract):
    params: ClassVar[dict[str, Any]] = {}

    def contract_params(self, tmp_path: Path) -> dict[str, Any]:
        return copy.deepcopy(self.params)


class _FactoryParams(_Contract):
    """Suites whose params depend on the test's ``tmp_path`` (stores writing files)."""

    builds_from_schema = False

    def params(self, tmp_path: Path) -> dict[str, Any]:
        """Override to return the params for a store writing under ``tmp_path``."""
        return {}

    def contract_params(self, tmp_path: Path) -> dict[str, Any]:
        return self.params(tmp_path)


@dataclass
class ContractRun:
    """The suite's one run of the algorithm, shared by its tests (a real backend's run can be slow)."""

    result: RunResult
    run_dir: Path
    validation_steps: list[int]


class AlgorithmContract(_StaticParams):
    """A training algorithm: registered, strict, and a full ``run_experiment`` on ``backend_kind``
    completes, writes ``run_result.json``, reports the standard artifacts and logs metrics.

    ``algorithm_kind`` may be a family (``sft``): it is resolved on ``backend_kind``.
    """

    registry_kind = "algorithm"
    name_attr = "algorithm_kind"
    algorithm_kind: ClassVar[str]
    backend_kind: ClassVar[str] = "mock"
    backend_params: ClassVar[dict[str, Any]] = {}
    model: ClassVar[dict[str, Any]] = {"name": "mock-model"}
    rows: ClassVar[list[dict[str, Any]]] = DEFAULT_ROWS
    # Every training algorithm calls ctx.validate(step) in its loop; set False for one that has no loop.
    calls_validation: ClassVar[bool] = True
    # Schema-valid configs the suite trains on ``backend_kind``, each under ``run.max_seconds``, with
    # ``property_executor``: ``process`` kills an arm whose single step outlasts the budget (a generation
    # of a huge ``max_tokens`` on a real model), which ``sequential`` cannot.
    property_runs: ClassVar[int] = 6
    property_max_seconds: ClassVar[float] = 1.0
    property_executor: ClassVar[str] = "sequential"

    @classmethod
    def extension_name(cls) -> str:
        return resolve_algorithm(super().extension_name(), cls.backend_kind)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_run(cls, tmp_path_factory: pytest.TempPathFactory) -> ContractRun:
        cls.extension_name()  # fails clearly when algorithm_kind is unset or unknown
        output_dir = tmp_path_factory.mktemp(cls.__name__)
        config = mock_experiment_config(
            output_dir,
            algorithm=cls.algorithm_kind,
            params=cls.params,
            rows=cls.rows,
            backend=cls.backend_kind,
            backend_params=cls.backend_params,
            model=cls.model,
        )
        steps: list[int] = []

        def record(ctx: Any, step: int, client: Any) -> None:
            steps.append(step)

        [result] = run_experiment(config, extra_context={"on_validation_step": record})
        return ContractRun(result, output_dir / "contract", steps)

    def test_run_completes(self, contract_run: ContractRun) -> None:
        """Troubleshooting: the error is the exception ``train`` raised; run_result.json has its traceback."""
        assert contract_run.result.status == "completed", contract_run.result.error

    def test_run_result_json(self, contract_run: ContractRun) -> None:
        """run_result.json is complete JSON saying completed, and no temp file of an atomic write is left."""
        record = json.loads((contract_run.run_dir / "run_result.json").read_text(encoding="utf-8"))
        assert record["status"] == "completed", record.get("error")
        assert record["run_id"] == contract_run.result.run_id
        leftovers = [str(p) for p in contract_run.run_dir.rglob("*.tmp")]
        assert not leftovers, f"half-written files left behind: {leftovers}"

    def artifact_exists(self, uri: str) -> bool:
        """Whether a reported artifact exists; override for remote URIs (e.g. ``tinker://...``)."""
        return Path(uri).exists()

    def test_reports_standard_artifacts(self, contract_run: ContractRun) -> None:
        """``final_checkpoint`` (what inference loads) and ``state-final`` (what a continual chain resumes
        from) are reported and exist. Troubleshooting: return them in ``RunResult.artifacts``."""
        for key in ("final_checkpoint", "state-final"):
            path = contract_run.result.artifacts.get(key)
            assert path, f"RunResult.artifacts has no {key!r}: {sorted(contract_run.result.artifacts)}"
            assert self.artifact_exists(path), f"artifact {key!r} points at a missing path: {path}"

    def test_logs_metrics(self, contract_run: ContractRun) -> None:
        """At least one metric row reaches the log store. Troubleshooting: call
        ``ctx.log_store.log_metrics({...}, step)`` in the training loop."""
        metrics_file = contract_run.run_dir / "logs" / "metrics.jsonl"
        assert metrics_file.exists(), "nothing was logged: metrics.jsonl is missing"
        rows = [json.loads(line) for line in metrics_file.read_text(encoding="utf-8").splitlines() if line]
        assert rows, "metrics.jsonl is empty"
        assert all(row["metrics"] for row in rows), "a log_metrics call logged no metric"

    def test_schema_valid_configs_finish_or_fail_recorded(self, tmp_path: Path) -> None:
        """Configs drawn from the algorithm's JSON schema, run under a time budget, complete or fail with
        the error recorded in run_result.json, and stop in about the budget: a search loop can sample the
        schema. Troubleshooting: bound each param (a huge size must not crash or exhaust memory before
        the first step) and call ``ctx.check_budget()`` once per step."""
        import time

        from hypothesis import HealthCheck, given, settings

        from evsys_sdk.loading.yaml_loader import load_yaml
        from evsys_sdk.orchestration.experiment import Experiment
        from evsys_sdk.testing.schema_strategies import schema_params
        from evsys_sdk.tracking.store import LocalStore

        config_cls = self.extension_class().Config
        drawn = iter(range(10**6))

        @settings(
            max_examples=self.property_runs,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(schema_params(schema_for(self.registry_kind, self.extension_name())))
        def check(params: dict[str, Any]) -> None:
            try:
                config_cls.model_validate(params)
            except ValidationError:
                return  # a validator refused what the schema alone allows: the other test's business
            out = tmp_path / f"draw{next(drawn)}"
            config = mock_experiment_config(
                out,
                algorithm=self.algorithm_kind,
                params=params,
                rows=self.rows,
                backend=self.backend_kind,
                backend_params=self.backend_params,
                model=self.model,
            )
            config["run"]["max_seconds"] = self.property_max_seconds
            grace = {"kill_grace_seconds": 5} if self.property_executor != "sequential" else {}
            config["executor"] = {"kind": self.property_executor, "params": grace}
            started = time.monotonic()
            result = Experiment(load_yaml(config), store=LocalStore(out / "store.db")).run()
            elapsed = time.monotonic() - started
            [arm] = result.arms
            assert elapsed < self.property_max_seconds + 60, f"params {params!r:.400} ran {elapsed:.0f} s"
            assert arm.status in ("completed", "failed"), (params, arm.status, arm.error)
            assert arm.status == "completed" or arm.error, f"params {params!r:.400} failed with no error recorded"
            record = out / "contract" / "run_result.json"
            if record.is_file():  # not there only when the executor killed the arm
                assert json.loads(record.read_text(encoding="utf-8"))["status"] == arm.status, (params, arm.error)

        check()

    def test_calls_validation_callback(self, contract_run: ContractRun) -> None:
        """The in-loop validation callback (``ctx.validate(step)``) fires with int steps. Steps may
        restart (a combo's phases count their own). Troubleshooting: call ``ctx.validate(step)`` after
        each training step, or set ``calls_validation = False`` for an algorithm without a loop."""
        steps = contract_run.validation_steps
        if not self.calls_validation:
            assert not steps, f"calls_validation = False, yet the callback fired at steps {steps}"
            return
        assert steps, "ctx.extras['on_validation_step'] was never called"
        assert all(isinstance(s, int) and s >= 0 for s in steps), f"steps must be ints >= 0: {steps}"


class BackendContract(_StaticParams):
    """A training backend: ``prepare`` returns a dict of handles, ``teardown`` accepts them, and a mock
    algorithm trains on it end to end."""

    registry_kind = "backend"
    name_attr = "backend_kind"
    backend_kind: ClassVar[str]
    model: ClassVar[dict[str, Any]] = {"name": "mock-model"}
    algorithm_kind: ClassVar[str] = "mock_sft"
    algorithm_params: ClassVar[dict[str, Any]] = {"max_steps": 2}

    def test_prepare_and_teardown(self, tmp_path: Path) -> None:
        backend = self.build(tmp_path)
        assert isinstance(backend, Backend)
        handles = backend.prepare(model=copy.deepcopy(self.model), run_dir=str(tmp_path))
        assert isinstance(handles, dict), f"prepare returned {type(handles).__name__}, not a dict"
        backend.teardown(handles)

    def test_mock_algorithm_trains_on_it(self, tmp_path: Path) -> None:
        config = mock_experiment_config(
            tmp_path,
            algorithm=self.algorithm_kind,
            params=self.algorithm_params,
            backend=self.backend_kind,
            backend_params=self.params,
            model=self.model,
        )
        [result] = run_experiment(config)
        assert result.status == "completed", result.error


class InferenceClientContract(_StaticParams):
    """An inference client: ``generate`` returns a str, takes the sampling keywords, honours ``stop``."""

    registry_kind = "inference_client"
    name_attr = "inference_kind"
    inference_kind: ClassVar[str]
    prompt: ClassVar[str] = "What is 2 + 2? Answer in one sentence."
    # The stop string tested; by default a piece of the middle of the unstopped output.
    stop: ClassVar[str | None] = None

    def test_generate_returns_str(self, tmp_path: Path) -> None:
        client = self.build(tmp_path)
        assert isinstance(client, InferenceClient)
        text = client.generate(prompt=self.prompt)
        assert isinstance(text, str), f"generate returned {type(text).__name__}, not a str"

    def test_accepts_sampling_keywords(self, tmp_path: Path) -> None:
        client = self.build(tmp_path)
        assert isinstance(client.generate(prompt=self.prompt, max_tokens=8, temperature=0.7, stop=None), str)
        assert isinstance(client.generate(prompt=self.prompt, max_tokens=1, temperature=0.0, stop=[]), str)

    def test_honours_stop(self, tmp_path: Path) -> None:
        """The output never contains a stop string. Troubleshooting: pass ``stop`` to the provider, and
        cut the text at the first stop string yourself when the provider may return it."""
        client = self.build(tmp_path)
        stop = self.stop
        if stop is None:
            text = client.generate(prompt=self.prompt, max_tokens=64, temperature=0.0)
            if not text:
                _fail("generate returned '' for the suite's prompt: set `stop` (and `prompt`) on the suite")
            middle = len(text) // 2
            stop = text[middle : middle + 3]
        never = "\x00evsys-never\x00"
        out = client.generate(prompt=self.prompt, max_tokens=64, temperature=0.0, stop=[never, stop])
        assert isinstance(out, str)
        assert stop not in out, f"stop string {stop!r} appears in the output {out!r}"


class MetricContract(_StaticParams):
    """A metric: each case's ``compute(**kwargs)`` returns the expected float, also when the runner
    calls it through ``compute_metric``.

    ``cases`` is a list of ``(kwargs, expected)``, e.g. ``({"task_rewards": [[1.0], [0.0]]}, 0.5)``.
    """

    registry_kind = "metric"
    name_attr = "metric_kind"
    metric_kind: ClassVar[str]
    cases: ClassVar[Sequence[tuple[dict[str, Any], float]]] = ()

    def _cases(self) -> Sequence[tuple[dict[str, Any], float]]:
        if not self.cases:
            _fail(f"{type(self).__name__} must set `cases`: a list of (compute kwargs, expected float)")
        return copy.deepcopy(self.cases)

    def test_cases(self, tmp_path: Path) -> None:
        metric = self.build(tmp_path)
        assert isinstance(metric, Metric)
        for kwargs, expected in self._cases():
            value = metric.compute(**kwargs)
            assert isinstance(value, float), f"compute({kwargs}) returned {type(value).__name__}, not a float"
            assert value == pytest.approx(expected), f"compute({kwargs}) = {value}, expected {expected}"

    def test_compute_metric_dispatch(self, tmp_path: Path) -> None:
        """The runner calls metrics through ``compute_metric`` without knowing their API family.
        Troubleshooting: name ``compute``'s parameters ``task_rewards`` or ``predictions``/``targets``."""
        from evsys_sdk.builtins.metrics import compute_metric

        metric = self.build(tmp_path)
        runner_keys = {"task_rewards", "predictions", "targets"}
        checked = 0
        for kwargs, expected in self._cases():
            if set(kwargs) <= runner_keys:
                assert compute_metric(metric, **kwargs) == pytest.approx(expected), kwargs
                checked += 1
        assert checked, "give at least one case using only task_rewards, or predictions and targets"


class VerifierContract(_StaticParams):
    """A verifier: each case's reward is a float in ``reward_range`` and equals the expected reward.

    ``cases`` is a list of ``(prompt, completion, target, expected_reward)``.
    """

    registry_kind = "verifier"
    name_attr = "verifier_kind"
    verifier_kind: ClassVar[str]
    cases: ClassVar[Sequence[tuple[str, str, dict[str, Any], float]]] = ()
    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def test_cases(self, tmp_path: Path) -> None:
        if not self.cases:
            _fail(f"{type(self).__name__} must set `cases`: a list of (prompt, completion, target, expected)")
        verifier = self.build(tmp_path)
        assert isinstance(verifier, Verifier)
        low, high = self.reward_range
        for prompt, completion, target, expected in self.cases:
            given = copy.deepcopy(target)
            result = verifier.verify(prompt=prompt, completion=completion, target=given)
            assert isinstance(result, VerificationResult), f"verify returned {type(result).__name__}"
            assert isinstance(result.reward, float), f"reward is {type(result.reward).__name__}, not a float"
            assert low <= result.reward <= high, f"reward {result.reward} outside {self.reward_range}"
            assert result.reward == pytest.approx(expected), f"{completion!r}: reward {result.reward} != {expected}"
            assert given == target, "verify mutated its target"


def _generator(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from rows


class TransformContract(_StaticParams):
    """A row transform: maps ``rows_in`` to ``rows_out``, takes any iterable (a one-shot generator
    included), returns an iterable, and leaves its input rows untouched."""

    registry_kind = "transform"
    name_attr = "transform_kind"
    transform_kind: ClassVar[str]
    rows_in: ClassVar[list[dict[str, Any]]] = []
    rows_out: ClassVar[list[dict[str, Any]]] = []

    def test_maps_rows(self, tmp_path: Path) -> None:
        transform = self.build(tmp_path)
        assert isinstance(transform, Transform)
        assert list(transform(copy.deepcopy(self.rows_in))) == self.rows_out

    def test_accepts_any_iterable(self, tmp_path: Path) -> None:
        """Troubleshooting: iterate the input once (it may be a generator); never index it or take len()."""
        makers: list[Callable[[list[dict[str, Any]]], Iterable[dict[str, Any]]]] = [list, tuple, iter, _generator]
        for make in makers:
            out = self.build(tmp_path)(make(copy.deepcopy(self.rows_in)))
            assert isinstance(out, Iterable), f"returned {type(out).__name__}, which is not iterable"
            assert list(out) == self.rows_out, f"wrong rows for a {make.__name__} input"
        assert list(self.build(tmp_path)(iter([]))) == []

    def test_does_not_mutate_input(self, tmp_path: Path) -> None:
        """Troubleshooting: build new rows (``{**row, "key": value}``) instead of assigning into ``row``."""
        rows = copy.deepcopy(self.rows_in)
        list(self.build(tmp_path)(rows))
        assert rows == self.rows_in, "the transform changed its input rows"


class DataStoreContract(_FactoryParams):
    """A data store: JSONL and JSON round-trip (overwriting, not appending), ``exists`` and ``list``
    see what was written, reading a missing path raises FileNotFoundError. Override ``params(tmp_path)``."""

    registry_kind = "data_store"
    name_attr = "data_store_kind"
    data_store_kind: ClassVar[str]

    sample_rows: ClassVar[list[dict[str, Any]]] = [
        {"id": 1, "text": "héllo ✓", "nested": {"values": [1, 2.5, None, True]}},
        {"id": 2, "text": "", "messages": [{"role": "user", "content": "hi"}]},
    ]
    sample_value: ClassVar[dict[str, Any]] = {"name": "ünï", "list": [1, 2.5, None, False], "nested": {"a": {"b": "c"}}}

    def test_jsonl_roundtrip(self, tmp_path: Path) -> None:
        store = self.build(tmp_path)
        assert isinstance(store, DataStore)
        store.write_jsonl("contract/rows.jsonl", _generator(copy.deepcopy(self.sample_rows)))
        assert store.read_jsonl("contract/rows.jsonl") == self.sample_rows
        store.write_jsonl("contract/rows.jsonl", self.sample_rows[:1])
        assert store.read_jsonl("contract/rows.jsonl") == self.sample_rows[:1], "write_jsonl must replace the file"

    def test_json_roundtrip(self, tmp_path: Path) -> None:
        store = self.build(tmp_path)
        store.write_json("contract/value.json", self.sample_value)
        assert store.read_json("contract/value.json") == self.sample_value
        store.write_json("contract/value.json", [1, "two"])
        assert store.read_json("contract/value.json") == [1, "two"]

    def test_exists(self, tmp_path: Path) -> None:
        store = self.build(tmp_path)
        assert not store.exists("contract/rows.jsonl")
        store.write_jsonl("contract/rows.jsonl", self.sample_rows)
        store.write_json("contract/value.json", self.sample_value)
        assert store.exists("contract/rows.jsonl") and store.exists("contract/value.json")

    def test_list(self, tmp_path: Path) -> None:
        store = self.build(tmp_path)
        store.write_jsonl("contract/a.jsonl", self.sample_rows)
        store.write_json("contract/sub/b.json", self.sample_value)
        store.write_json("other/c.json", self.sample_value)
        assert store.list("contract") == ["contract/a.jsonl", "contract/sub/b.json"]
        assert {"contract/a.jsonl", "contract/sub/b.json", "other/c.json"} <= set(store.list())

    def test_missing_path_raises_file_not_found(self, tmp_path: Path) -> None:
        store = self.build(tmp_path)
        with pytest.raises(FileNotFoundError):
            store.read_jsonl("contract/missing.jsonl")
        with pytest.raises(FileNotFoundError):
            store.read_json("contract/missing.json")


class LogStoreContract(_FactoryParams):
    """A log store: every logging call works, ``close`` is idempotent, and a call after ``close``
    raises RuntimeError (a run logging past its end is a bug to surface). Override ``params(tmp_path)``."""

    registry_kind = "log_store"
    name_attr = "log_store_kind"
    log_store_kind: ClassVar[str]
    # False only for a store with nothing to close (e.g. one discarding everything).
    raises_after_close: ClassVar[bool] = True

    def test_logging_methods_work(self, tmp_path: Path) -> None:
        store = self.build(tmp_path)
        assert isinstance(store, LogStore)
        store.log_metrics({"train/loss": 0.5, "count": 3}, 1)
        store.log_metrics({"train/loss": 0.25}, step=2)
        store.log_scalar("train/lr", 1e-4, 2)
        store.log_hyperparams({"learning_rate": 1e-4, "model": {"name": "m", "tags": ["a"]}})
        store.log_artifact("final_checkpoint", str(tmp_path), kind="checkpoint")
        store.log_artifact("notes", str(tmp_path))
        store.close()
        store.close()

    def test_writes_after_close_raise(self, tmp_path: Path) -> None:
        store = self.build(tmp_path)
        store.close()
        calls: list[Callable[[], object]] = [
            lambda: store.log_metrics({"x": 1.0}, 1),
            lambda: store.log_scalar("x", 1.0, 1),
            lambda: store.log_hyperparams({"x": 1}),
            lambda: store.log_artifact("x", str(tmp_path)),
        ]
        for call in calls:
            if self.raises_after_close:
                with pytest.raises(RuntimeError):
                    call()
            else:  # a discarding store (``null``) accepts and drops everything, even after close
                call()


class ExecutorContract(_StaticParams):
    """An executor: registered, strict, described, and built from its params with at least one slot
    (running arms is the executor test kit's business: ``evsys_sdk.testing.executors``)."""

    registry_kind = "executor"
    name_attr = "executor_kind"
    executor_kind: ClassVar[str]

    def test_builds_with_slots(self, tmp_path: Path) -> None:
        from evsys_sdk.orchestration.executors import Executor

        executor = self.build(tmp_path)
        assert isinstance(executor, Executor), (
            f"{type(executor).__name__} must subclass evsys_sdk.orchestration.executors.Executor"
        )
        assert executor.slots >= 1
