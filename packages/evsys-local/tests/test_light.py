"""Listing, validating and schema export never import the training stack."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")

SCRIPT = f"""
import json, sys
import evsys_local.hooks
from evsys_sdk.plugins.registry import list_algorithms, schema_for, resolve_algorithm, get_backend, get_inference
names = list_algorithms()
for name in ("local_sft", "local_rl", "local_sdft", "local_dpo", "local_distill"):
    schema_for("algorithm", name)
get_backend("local"); get_inference("local")
print(json.dumps({{"names": names, "sdft": resolve_algorithm("sdft", "local"),
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_hooks_and_listing_import_no_torch() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"local_sft", "local_rl", "local_sdft", "local_dpo", "local_distill"} <= set(data["names"])
    assert data["sdft"] == "local_sdft"
    assert data["heavy"] == []


def test_family_configs_subclass_shared_params() -> None:
    from evsys_local.distill import LocalDistillConfig
    from evsys_local.dpo import LocalDPOConfig
    from evsys_local.rl import LocalRLConfig
    from evsys_local.sdft import LocalSDFTConfig
    from evsys_local.sft import LocalSFTConfig
    from evsys_sdk.spec.families import DistillParams, DPOParams, RLParams, SDFTParams, SFTParams

    assert issubclass(LocalDPOConfig, DPOParams)
    assert issubclass(LocalDistillConfig, DistillParams)
    assert issubclass(LocalSFTConfig, SFTParams)
    assert issubclass(LocalRLConfig, RLParams)
    assert issubclass(LocalSDFTConfig, SDFTParams)
