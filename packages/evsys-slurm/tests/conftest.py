"""Fixtures: a workspace per test, the driver's plugin host with the test algorithms, and the one-node
Slurm cluster ``ci/start-slurm.sh`` starts (the ``slurm`` tests need it: ``nox -s slurm`` runs the script)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.testing import executors as kit

START = Path(__file__).resolve().parents[1] / "ci" / "start-slurm.sh"


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test records into its own workspace, never into ./.evsys of the checkout."""
    monkeypatch.setenv("EVSYS_WORKSPACE", str(tmp_path / "workspace"))


@pytest.fixture
def host(plugin_host: PluginHost) -> PluginHost:
    """The driver's registries: core, this package's hooks and the test algorithms (jobs load them by name)."""
    import evsys_slurm.hooks
    import evsys_slurm.testing

    plugin_host.add_plugin(evsys_slurm.hooks, "slurm")
    evsys_slurm.testing.add_testing_plugin(plugin_host)
    return kit.add_executor_test_plugin(plugin_host)


def slurm_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return "UP" in ping.stdout


@pytest.fixture(scope="session")
def slurm() -> Callable[[str, int], list[dict[str, str]]]:
    """The local cluster, which must be up (a missing Slurm fails these tests, it never skips them); the
    fixture is ``sacct``: the finished jobs of a name, once there are as many as expected."""
    if not slurm_up():
        pytest.fail(f"no Slurm cluster answers here: start the one-node cluster with `sudo {START}`", pytrace=False)
    return settled_jobs


def settled_jobs(name: str, count: int) -> list[dict[str, str]]:
    """The jobs named ``name`` once ``count`` are listed and none is still running or completing (a job
    writes its result a moment before Slurm sees it end; slurmdbd hears of jobs a moment later still)."""
    deadline = time.monotonic() + 60
    while True:
        jobs = sacct(name)
        live = any(j["State"] in ("RUNNING", "COMPLETING", "PENDING") for j in jobs)
        if (len(jobs) >= count and not live) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.2)


def sacct(name: str) -> list[dict[str, str]]:
    """The jobs (allocations, not steps) named ``name``: ``JobID``, ``State``, ``Partition``, in order."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-3600", "--name", name, "-o", "JobID,State,Partition"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [dict(zip(("JobID", "State", "Partition"), line.split("|"), strict=True)) for line in out.splitlines()]
