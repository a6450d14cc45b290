"""Where a config's relative paths point: its project root, whatever the current directory.

The project root is the nearest folder, from the config's own folder upwards, that holds a
``pyproject.toml`` (``evsys init-project`` writes one), else the config's folder. So
``experiments/<slug>/config.yaml`` of a research project names ``data/benchmark/<name>`` from the project
root, and ``evsys run config.yaml`` inside the experiment folder does what ``evsys run
experiments/<slug>/config.yaml`` does from the root. A config given as a dict resolves against the
current directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the workspace (evsys_sdk.tracking.store) finds its project here without loading the schema
    from evsys_sdk.spec.config import DataConfig, ExperimentConfig

PROJECT_MARKER = "pyproject.toml"


def enclosing_project(folder: Path) -> Path | None:
    """The nearest folder from ``folder`` upwards that holds a ``pyproject.toml``, if any."""
    return next((d for d in (folder, *folder.parents) if (d / PROJECT_MARKER).is_file()), None)


def project_root(config_file: str | Path) -> Path:
    """The folder a config file's relative paths resolve against."""
    folder = Path(config_file).expanduser().resolve().parent
    return enclosing_project(folder) or folder


def _under(root: Path, value: str) -> str:
    path = Path(value).expanduser()
    return value if path.is_absolute() else str(root / path)


def _if_present(root: Path, value: str | None) -> str | None:
    """A local path when one exists under the root; anything else (a hub id, ``tinker://...``) as written."""
    if not value or Path(value).expanduser().is_absolute() or "://" in value:
        return value
    return str(root / value) if (root / value).exists() else value


def _dir_params(params: dict[str, Any], root: Path, keys: tuple[str, ...]) -> None:
    for key in keys:
        if isinstance(params.get(key), str):
            params[key] = _under(root, params[key])


class _Local:
    """``_if_present`` once per distinct value: ten thousand matrix arms name the same few paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str | None, str | None] = {}

    def __call__(self, value: str | None) -> str | None:
        if value not in self.seen:
            self.seen[value] = _if_present(self.root, value)
        return self.seen[value]

    def data(self, data: DataConfig | None) -> None:
        if data is not None and data.source_kind == "hf_dataset" and self(data.hf_dataset) != data.hf_dataset:
            data.hf_dataset = self(data.hf_dataset)


def anchor_paths(cfg: ExperimentConfig, root: Path) -> None:
    """Make the config's relative paths absolute under ``root``, in place. Data paths stay relative to
    the data store, whose ``local`` root (default: the project root) is anchored here."""
    from evsys_sdk.spec.config import FILE_LOG_STORES

    cfg.output_dir = _under(root, cfg.output_dir)
    if cfg.data_store.kind == "local":
        cfg.data_store.params["root"] = _under(root, str(cfg.data_store.params.get("root", ".")))
    if cfg.log_store.kind in FILE_LOG_STORES:
        _dir_params(cfg.log_store.params, root, ("log_dir",))
    for child in cfg.log_store.params.get("children") or [] if cfg.log_store.kind == "multiplex" else []:
        if isinstance(child, dict) and child.get("kind") in FILE_LOG_STORES and isinstance(child.get("params"), dict):
            _dir_params(child["params"], root, ("log_dir",))
    for callback in cfg.callbacks:
        if callback.kind in ("jsonl", "tensorboard"):
            _dir_params(callback.params, root, ("path", "log_dir"))
    local = _Local(root)
    for run in cfg.all_runs():
        model = run.model  # assigned only when anchored: a pydantic __setattr__ is costly over 10k arms
        for key in ("name", "load_checkpoint_path", "init_from_checkpoint"):  # name: a local model folder
            value = getattr(model, key)
            if value and local(value) != value:
                setattr(model, key, local(value))
        local.data(run.data)
        local.data(run.eval.eval_data)
    for data in cfg.continual.datasets if cfg.continual else []:
        local.data(data)
    raw = cfg.metadata.get("benchmark")
    for entry in (raw if isinstance(raw, list) else [raw]) if raw else []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entry["path"] = _under(root, entry["path"])
