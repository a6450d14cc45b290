"""The import contracts (root pyproject's [tool.importlinter], run by `nox -s lint`) keep up with the repo: they
name every package, and core's public modules (the list in its README) and internal ones (the protected
contract) cover core exactly, so a new module is a deliberate choice of one or the other."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from typing import Any

from conftest import ROOT

CORE = ROOT / "packages/evsys-core/src"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]


def _contract(contract_id: str) -> dict[str, Any]:
    [found] = [c for c in CONFIG["contracts"] if c["id"] == contract_id]
    return found


def _core_modules() -> set[str]:
    """Every module of core that is a file of code (package ``__init__``s are containers)."""
    return {
        ".".join(path.relative_to(CORE).with_suffix("").parts)
        for path in CORE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }


def _readme_public() -> list[str]:
    text = (ROOT / "packages/evsys-core/README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- public-modules -->(.*?)<!-- /public-modules -->", text, re.S)
    assert block, "packages/evsys-core/README.md lost its public-modules list"
    return re.findall(r"`(evsys_sdk[\w.*]*)`", block.group(1))


def test_the_contracts_name_every_package() -> None:
    packages = {
        path.parent.name
        for path in [*ROOT.glob("packages/*/src/*/__init__.py"), *ROOT.glob("examples/plugin/src/*/__init__.py")]
    }
    assert set(CONFIG["root_packages"]) == packages
    assert set(_contract("core-imports-no-plugin")["forbidden_modules"]) == packages - {"evsys_sdk"}


def test_every_layer_is_a_subpackage_of_core() -> None:
    contract = _contract("core-layers")
    layers = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    subpackages = {path.parent.name for path in CORE.glob("evsys_sdk/*/__init__.py")}
    modules = {path.stem for path in CORE.glob("evsys_sdk/*.py") if path.name != "__init__.py"}
    assert layers == subpackages
    assert set(contract["exhaustive_ignores"]) == modules  # the root's modules are named as outside the layers


def test_core_modules_are_public_or_internal_never_both() -> None:
    internal = _contract("plugins-import-public-api")["protected_modules"]
    public = _readme_public()
    modules = _core_modules()

    def matches(module: str, patterns: list[str]) -> bool:
        return any(module == p or module.startswith(p + ".") or fnmatch(module, p) for p in patterns)

    both = sorted(m for m in modules if matches(m, public) and matches(m, internal))
    neither = sorted(m for m in modules if not matches(m, public) and not matches(m, internal))
    assert both == [], "public in packages/evsys-core/README.md and protected in pyproject.toml"
    assert neither == [], "add each to the README's public modules or to the protected contract's list"
    stale = sorted(p for p in [*public, *internal] if not any(matches(m, [p]) for m in modules))
    assert stale == [], "names no module of core"
