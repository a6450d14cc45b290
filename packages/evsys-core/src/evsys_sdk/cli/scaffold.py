"""``evsys init-project`` and ``evsys new-experiment``: the researcher-project layout."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

SCAFFOLD_DIRS = (
    "data",
    "data/raw",
    "data/fetch",
    "data/process",
    "data/datasets",
    "data/benchmark",
    "data/validation",
    "scripts",
    "experiments",
)
GITKEEP_DIRS = tuple(d for d in SCAFFOLD_DIRS if d not in ("data", "scripts"))

_README = """# {name}

An evsys research project.

- `data/`: raw dumps (`raw/`, ignored), fetch and process scripts, versioned `datasets/`, harbor-format
  `benchmark/` (test) and `validation/` (in-loop) suites.
- `scripts/`: project extensions (verifiers, metrics, transforms) imported by every experiment.
- `experiments/`: one folder per experiment, made by `evsys new-experiment <slug>`; run one with
  `evsys run experiments/<folder>/config.yaml`.

Upload a benchmark with `evsys benchmark upload data/benchmark/<name>` and reference it by name.
"""

_MODULES = {
    "verifiers": '# from evsys_sdk.builtins.verifier_fns import register_fn\n#\n# @register_fn("my_check")\n'
    "# def my_check(model_output, expected, params):\n#     return float(model_output.strip() == expected)\n",
    "metrics": '# from evsys_sdk import register_metric\n#\n# @register_metric("my_metric")\n# class MyMetric:\n'
    "#     def compute(self, task_rewards):\n#         return ...\n",
    "transforms": '# from evsys_sdk import register_transform\n#\n# @register_transform("my_transform")\n'
    "# class MyTransform:\n#     def __call__(self, rows):\n#         yield from rows\n",
}

_CONFIG = """# {slug}: trains on the mock backend as written; set backend.kind to local or tinker to train for real.
version: 1
name: {slug}
output_dir: ./.evsys/outputs/{slug}
metadata:
  hypothesis: "TODO: what do you expect, and why?"
  tags: []
  # success_metric: test.pass_rate
  # benchmark:
  #   - {{name: test, path: data/benchmark/<name>, tags: [test], breakdown_keys: [toolkit], max_tokens: 512}}
run:
  name: {slug}
  seed: 42
  data:
    source_kind: jsonl
    path: data/datasets/<name>/v1/train.jsonl
  model: {{name: Qwen/Qwen3-4B}}
  algorithm:
    kind: sft
    params: {{learning_rate: 1.0e-4, num_epochs: 1, batch_size: 8}}
  backend: {{kind: mock}}
"""

_RUN = '''"""Run this experiment from anywhere: python experiments/<this folder>/run.py

(or, from the project root: evsys run experiments/<this folder>/config.yaml).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the project: <root>/experiments/<this folder>/run.py


def main() -> None:
    sys.path.insert(0, str(ROOT))  # the project's own packages (scripts) import from its root
    os.chdir(ROOT)  # the config names project folders (data/..., .evsys/...) relative to the root

    import scripts  # noqa: F401  (registers the project's verifiers, metrics and transforms)
    from evsys_sdk import Experiment

    print(Experiment.from_yaml(HERE / "config.yaml").run().conclusion)


if __name__ == "__main__":
    main()
'''


def _write_new(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(text, encoding="utf-8")


def init_project(target: str | Path, *, name: str | None = None, force: bool = False) -> Path:
    root = Path(target).expanduser().resolve()
    if root.is_file():
        raise FileExistsError(f"{root} is a file, not a directory")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise FileExistsError(f"{root} is not empty (pass force=True, or --force, to scaffold into it)")
    project = name or root.name
    for d in SCAFFOLD_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    for d in GITKEEP_DIRS:
        _write_new(root / d / ".gitkeep", "")
    _write_new(
        root / "pyproject.toml",
        f'[project]\nname = "{project}"\nversion = "0.1.0"\n'
        'dependencies = ["evsys-core"]\n\n[build-system]\nrequires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n\n[tool.hatch.build.targets.wheel]\npackages = ["scripts"]\n',
    )
    _write_new(root / "README.md", _README.format(name=project))
    _write_new(root / ".gitignore", ".evsys/\ndata/raw/\n__pycache__/\n")
    _write_new(
        root / "data" / "README.md", "# data\n\nraw/ is never committed; datasets/ and benchmark/ are versioned.\n"
    )
    _write_new(
        root / "scripts" / "__init__.py",
        '"""Project extensions: importing this package registers them."""\n\n'
        "from scripts import metrics, transforms, verifiers  # noqa: F401\n",
    )
    for module, text in _MODULES.items():
        _write_new(root / "scripts" / f"{module}.py", text)
    return root


def normalize_slug(slug: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", slug.strip().lower().replace(" ", "_"))


def new_experiment(project_root: str | Path, slug: str, *, today: dt.date | None = None) -> Path:
    clean = normalize_slug(slug)
    if not clean:
        raise ValueError(f"slug {slug!r} reduces to empty after normalization")
    date = (today or dt.date.today()).strftime("%Y%m%d")
    folder = Path(project_root).expanduser() / "experiments" / f"{date}_{clean}"
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; pick another slug")
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(_CONFIG.format(slug=clean), encoding="utf-8")
    (folder / "run.py").write_text(_RUN, encoding="utf-8")
    return folder
