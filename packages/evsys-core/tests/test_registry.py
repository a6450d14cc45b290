from __future__ import annotations

from typing import Any, ClassVar

import pytest

from evsys_sdk import hookimpl
from evsys_sdk.base.errors import PluginError, UnknownKindError
from evsys_sdk.plugins.host import PluginHost, use_host
from evsys_sdk.plugins.registry import (
    Registry,
    get_algorithm,
    get_default_inference_factory,
    list_algorithms,
    register_algorithm,
    resolve_algorithm,
    schema_for,
)
from evsys_sdk.spec.config import StrictModel


@pytest.fixture
def host() -> Any:
    with use_host(PluginHost(entry_points=False)) as h:
        yield h


class Toy:
    name: ClassVar[str] = "toy"

    class Config(StrictModel):
        steps: int = 3


def test_builtins_are_registered(host: PluginHost) -> None:
    assert {"mock_sft", "mock_sdft", "mock_rl", "combo"} <= set(list_algorithms())
    assert host.registries["backend"].list() == ["mock"]
    assert {"jsonl", "multiplex", "null", "tensorboard"} <= set(host.registries["log_store"].list())
    assert host.registries["algorithm"].source_of("mock_sft") == "evsys-core"


def test_register_decorator_and_errors(host: PluginHost) -> None:
    register_algorithm()(Toy)
    assert get_algorithm("toy") is Toy
    register_algorithm("toy")(Toy)  # same class again: idempotent
    other = type("Other", (), {})
    with pytest.raises(ValueError, match="algorithm 'toy' already registered"):
        register_algorithm("toy")(other)
    with pytest.raises(ValueError, match="has no `name`"):
        register_algorithm()(type("Nameless", (), {}))
    with pytest.raises(ValueError, match="is an algorithm family"):
        register_algorithm("sft")(Toy)
    assert register_algorithm("toy2")(other).name == "toy2"  # type: ignore[attr-defined]


def test_unknown_name_lists_available_and_suggests(host: PluginHost) -> None:
    with pytest.raises(UnknownKindError) as info:
        get_algorithm("mock_sfft")
    text = str(info.value)
    assert text.startswith("No algorithm registered under 'mock_sfft'; did you mean 'mock_sft'? Available: combo, ")
    assert "Families (resolved by backend): distill, dpo, rl, sdft, sft." in text
    with pytest.raises(UnknownKindError, match=r"by evsys-gepa: pip install evsys-gepa \(from this checkout: "):
        get_algorithm("gepa_prompt")


def test_family_routing(host: PluginHost) -> None:
    assert resolve_algorithm("sft", "mock") == "mock_sft"
    assert resolve_algorithm("sdft", "mock") == "mock_sdft"
    assert resolve_algorithm("rl", "mock") == "mock_rl"
    assert resolve_algorithm("combo", "anything") == "combo"
    with pytest.raises(
        UnknownKindError, match=r"family 'sft' for backend 'tinker'.*mock \(mock_sft\).*pip install evsys-tinker"
    ):
        resolve_algorithm("sft", "tinker")


def test_plugin_hooks_route_families_and_register(host: PluginHost) -> None:
    class Plugin:
        @hookimpl
        def evsys_register_backends(self, registry: Registry[Any]) -> None:
            registry.register("remote")(type("Remote", (), {"prepare": None, "teardown": None}))

        @hookimpl
        def evsys_register_algorithms(self, registry: Registry[Any]) -> None:
            registry.register("remote_sft")(Toy)

        @hookimpl
        def evsys_resolve_algorithm(self, kind: str, backend_kind: str) -> str | None:
            return "remote_sft" if (kind, backend_kind) == ("sft", "remote") else None

    host.add_plugin(Plugin(), "remote", "evsys-remote")
    assert resolve_algorithm("sft", "remote") == "remote_sft"
    assert resolve_algorithm("sft", "mock") == "mock_sft"
    assert host.registries["algorithm"].source_of("remote_sft") == "evsys-remote"


def test_two_distributions_claiming_a_name(host: PluginHost) -> None:
    class Clash:
        @hookimpl
        def evsys_register_algorithms(self, registry: Registry[Any]) -> None:
            registry.register("mock_sft")(Toy)

    with pytest.raises(PluginError, match="registered by both evsys-core and evsys-clash"):
        host.ensure_loaded()
        host._add(Clash(), "clash", "evsys-clash")
        host.current_source = "evsys-clash"
        host.registries["algorithm"].add(Toy, "mock_sft")


class Broken:
    @hookimpl
    def evsys_register_metrics(self, registry: Registry[Any]) -> None:
        raise RuntimeError("boom")


def test_broken_registration_hook_is_recorded_not_fatal(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVSYS_STRICT_PLUGINS", raising=False)
    host.add_plugin(Broken(), "broken", "evsys-broken")
    info = [p for p in host.plugins if p.name == "broken"]
    assert info and info[0].status == "broken" and info[0].error == "RuntimeError: boom"
    assert "EVSYS_DISABLE_PLUGINS=broken" in (info[0].hint or "")
    assert "mean_reward" in host.registries["metric"].list()


def test_schema_for(host: PluginHost) -> None:
    schema = schema_for("algorithm", "mock_sft")
    assert schema["additionalProperties"] is False and "learning_rate" in schema["properties"]
    assert "topk" in schema_for("algorithm", "sdft")["properties"]  # a family gives its shared params
    assert schema_for("inference", "mock")["properties"]["template"]["type"] == "string"
    with pytest.raises(UnknownKindError, match="Unknown registry kind: algo"):
        schema_for("algo", "x")


def test_default_inference_factory(host: PluginHost) -> None:
    from evsys_sdk.spec.config import RunConfig

    run = RunConfig.model_validate(
        {"name": "r", "model": {"name": "m"}, "algorithm": {"kind": "sft"}, "backend": {"kind": "mock"}}
    )
    factory = get_default_inference_factory(run)
    assert factory is not None
    from evsys_sdk.spec.protocols import RunResult

    client = factory(RunResult("r", "completed"), run)
    assert client.generate(prompt="p") == "<think>mock thinking</think>\n<answer>MOCK_ANSWER</answer>"
    assert (
        get_default_inference_factory(run.model_copy(update={"backend": run.backend.model_copy(update={"kind": "x"})}))
        is None
    )


def test_strict_mode_makes_a_broken_plugin_fatal(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSYS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'broken' \(evsys-broken\) failed to load: RuntimeError: boom"):
        host.add_plugin(Broken(), "broken", "evsys-broken")


def test_builtins_register_by_import_path_and_load_at_first_use(host: PluginHost) -> None:
    import subprocess
    import sys

    from evsys_sdk.builtins.hooks import BUILTINS
    from evsys_sdk.plugins.registry import registry

    listing = (
        "import sys, evsys_sdk; from evsys_sdk.plugins.registry import KINDS, registry; "
        "[registry(k).list() for k in KINDS]; evsys_sdk.list_algorithms(); "
        "heavy = ('pydantic', 'evsys_sdk.builtins.mock', 'evsys_sdk.orchestration.executors'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"  # listing every registry built no class and no pydantic model
    from evsys_sdk.builtins.data_stores import DATA_STORE_CLASSES
    from evsys_sdk.builtins.log_stores import LOG_STORE_CLASSES
    from evsys_sdk.builtins.metrics import METRIC_CLASSES
    from evsys_sdk.builtins.transforms import TRANSFORM_CLASSES
    from evsys_sdk.orchestration.executors import EXECUTOR_CLASSES
    from evsys_sdk.run.callbacks import CALLBACK_CLASSES
    from evsys_sdk.search.llm import LLMProposer
    from evsys_sdk.search.proposers import PROPOSER_CLASSES

    catalogs = {
        "metric": METRIC_CLASSES,
        "transform": TRANSFORM_CLASSES,
        "data_store": DATA_STORE_CLASSES,
        "log_store": LOG_STORE_CLASSES,
        "callback": CALLBACK_CLASSES,
        "executor": EXECUTOR_CLASSES,
        "proposer": (*PROPOSER_CLASSES, LLMProposer),
    }
    for kind, classes in catalogs.items():  # a class added to a module's catalog is in the lazy table too
        assert BUILTINS[kind] == {c.name: f"{c.__module__}:{c.__qualname__}" for c in classes}, kind
    for kind, table in BUILTINS.items():
        assert set(table) <= set(registry(kind).list())
        for name, target in table.items():
            cls = registry(kind).get(name)
            assert (cls.name, f"{cls.__module__}:{cls.__qualname__}") == (name, target)


def test_a_plugin_registers_by_import_path(host: PluginHost) -> None:
    from evsys_sdk.plugins.registry import registry

    class Lazy:
        @hookimpl
        def evsys_register_algorithms(self, registry: Registry[Any]) -> None:
            registry.add_lazy("lazy_toy", "test_registry:Toy")
            registry.add_lazy("lazy_missing", "no_such_module_xyz:Thing")

    host.add_plugin(Lazy(), name="lazy-plugin")
    assert {"lazy_toy", "lazy_missing"} <= set(registry("algorithm").list())
    assert registry("algorithm").source_of("lazy_toy") == "lazy-plugin"
    assert registry("algorithm").get("lazy_toy") is Toy and Toy.name == "lazy_toy"
    Toy.name = "toy"
    with pytest.raises(PluginError, match=r"algorithm 'lazy_missing' from lazy-plugin failed to load"):
        registry("algorithm").get("lazy_missing")
    with pytest.raises(ValueError, match="'sft' is an algorithm family"):
        registry("algorithm").add_lazy("sft", "test_registry:Toy")
