"""Install hints name the published package and, inside a checkout, the path pip installs from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsys_sdk.base import install_hints
from evsys_sdk.base.install_hints import pip_install


def fake_checkout(root: Path, *dists: str) -> Path:
    for dist in dists:
        (root / "packages" / dist).mkdir(parents=True)
        (root / "packages" / dist / "pyproject.toml").write_text(f'[project]\nname = "{dist}"\n')
    return root


def test_inside_a_checkout_the_local_path_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(fake_checkout(tmp_path, "evsys-tinker", "evsys-core"))
    assert pip_install("evsys-tinker") == (
        "pip install evsys-tinker (from this checkout: pip install ./packages/evsys-tinker)"
    )
    assert pip_install("evsys-core[plot]") == (
        'pip install "evsys-core[plot]" (from this checkout: pip install "./packages/evsys-core[plot]")'
    )
    (tmp_path / "experiments").mkdir()
    monkeypatch.chdir(tmp_path / "experiments")  # elsewhere in the checkout: the path that works is absolute
    assert pip_install("evsys-tinker").endswith(f"pip install {tmp_path.as_posix()}/packages/evsys-tinker)")


def test_outside_a_checkout_only_the_published_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(install_hints, "__file__", str(tmp_path / "site-packages" / "evsys_sdk" / "install_hints.py"))
    assert pip_install("evsys-tinker") == "pip install evsys-tinker"
    assert pip_install("evsys-core[tensorboard]") == 'pip install "evsys-core[tensorboard]"'
    assert pip_install("numpy") == "pip install numpy"
