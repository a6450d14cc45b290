"""Configs in and out: a file or dict to a validated ``ExperimentConfig`` (one located line per problem),
deep checks against the installed extensions and the data files, and YAML back out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.loading.validation import deep_problems
from evsys_sdk.spec import source as yaml_source
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.spec.paths import anchor_paths, project_root
from evsys_sdk.spec.problems import Problem, pydantic_problems
from evsys_sdk.spec.source import Source, format_problems, parse_yaml_text, yaml_text


class ConfigNotFoundError(ConfigError, FileNotFoundError):
    """The config file does not exist."""


def _read(source: str | Path) -> tuple[Any, Source]:
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigNotFoundError(f"YAML not found: {path}")
    size = path.stat().st_size
    if size > yaml_source.MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {size} bytes is too large for a config (at most {yaml_source.MAX_CONFIG_BYTES})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    return parse_yaml_text(text, str(source))


def load_yaml(source: str | Path | dict[str, Any]) -> ExperimentConfig:
    """Read and validate an experiment config (a path or an already-parsed dict).

    A ``matrix`` is expanded into ``runs``. Raises ConfigError with one located line per problem.
    """
    data: Any
    src: Source | None
    if isinstance(source, dict):
        data, src = source, None
    else:
        data, src = _read(source)
    if not isinstance(data, dict):
        where = f"{src.filename}: " if src else ""
        raise ConfigError(f"{where}YAML root must be a mapping, got {type(data).__name__}")
    if src is not None and isinstance(data.get("matrix"), dict):
        src.had_matrix = True
        axes = data["matrix"].get("axes")
        src.axes = tuple(str(a) for a in axes) if isinstance(axes, dict) else ()
    problems: list[Problem] = []
    try:
        cfg = ExperimentConfig.model_validate(data, context={"problems": problems})
    except ValidationError as exc:
        raise ConfigError(format_problems(pydantic_problems(exc, ExperimentConfig), src)) from None
    if problems:
        raise ConfigError(format_problems(problems, src, cfg))
    cfg._source = src
    if not isinstance(source, dict):
        cfg._root = project_root(source)
        anchor_paths(cfg, cfg._root)
    return cfg


def check_config(cfg: ExperimentConfig) -> None:
    """Deep validation: every kind is installed and every params block valid, every data file and
    benchmark exists and parses, and no training set is empty. Raises ConfigError."""
    problems = deep_problems(cfg)
    if not problems:  # the files are read through the config's own (now known valid) stores and transforms
        from evsys_sdk.loading.data_checks import data_problems

        problems = data_problems(cfg)
    if problems:
        raise ConfigError(format_problems(problems, cfg._source, cfg))


def dump_yaml(cfg: ExperimentConfig, *, path: str | Path | None = None) -> str:
    """Block-style YAML of ``cfg`` without None fields, in field order; written to ``path`` if given."""
    text = yaml_text(cfg.model_dump(mode="json", exclude_none=True))
    if path is not None:
        from evsys_sdk.base.io import atomic_write_text

        atomic_write_text(path, text)
    return text
