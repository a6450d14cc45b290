"""``evsys validate`` as a function. Deep validation spans the layers: a config's ``search:`` block is checked the
way ``evsys evolve`` checks it, so this sits above the search layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.loading.yaml_loader import check_config, load_yaml


def validate_yaml(source: str | Path | dict[str, Any], *, deep: bool = False) -> list[str]:
    """Every problem as a line (``[]`` when clean); never raises for config problems."""
    try:
        cfg = load_yaml(source)
        if deep:
            check_config(cfg)
            if cfg.search is not None:  # its space against the extensions' schemas, its proposer
                from evsys_sdk.search.engine import check_search  # loaded for configs that search only

                check_search(cfg)
    except ConfigError as exc:
        return exc.problems
    return []
