"""The ``evsys`` command line. User errors print one clear message (no traceback) and exit 1."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from evsys_sdk.base.errors import EvsysError

LIST_SECTIONS = {
    "algorithms": "algorithm",
    "backends": "backend",
    "verifiers": "verifier",
    "metrics": "metric",
    "transforms": "transform",
    "data_stores": "data_store",
    "log_stores": "log_store",
    "inference": "inference_client",
    "callbacks": "callback",
    "executors": "executor",
    "proposers": "proposer",
}


def _cmd_validate(args: argparse.Namespace) -> int:
    from evsys_sdk.cli.validate import validate_yaml
    from evsys_sdk.spec.paths import project_root

    problems = validate_yaml(args.path, deep=args.deep)
    for p in problems:
        print(f"ERROR: {p}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"OK: {args.path} parses and validates{' (deep)' if args.deep else ''}; "
        f"relative paths resolve against {project_root(args.path)}"
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from evsys_sdk.cli.report import experiment_summary
    from evsys_sdk.loading.yaml_loader import load_yaml
    from evsys_sdk.orchestration.experiment import Experiment
    from evsys_sdk.plugins.host import tracking_store

    cfg = load_yaml(args.path)
    if args.executor and args.executor != cfg.executor.kind:
        from evsys_sdk.spec.config import ExecutorSpec

        # The config's params belong to its own kind; another kind starts from its defaults.
        cfg = cfg.model_copy(update={"executor": ExecutorSpec(kind=args.executor)})
    store = None if args.no_store else tracking_store(args.store)
    try:
        result = Experiment(cfg, store=store, resume=args.resume).run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished arms are kept; continue with: evsys run {args.path} --resume", file=sys.stderr)
        return 130
    finally:
        if store is not None and hasattr(store, "close"):
            store.close()  # a remote store sends what it still queues
    text = json.dumps(result.summary(), indent=2)
    if args.output:
        from evsys_sdk.base.io import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text if args.json else experiment_summary(result))
    return 0 if all(a.status == "completed" for a in result.arms) else 2


def _cmd_runs(args: argparse.Namespace) -> int:
    from datetime import datetime

    from evsys_sdk.cli.report import fmt, table
    from evsys_sdk.tracking.records import open_store

    rows = [
        [
            e["name"],
            datetime.fromtimestamp(e["created_at"]).strftime("%Y-%m-%d %H:%M"),
            e["status"],
            str(e["n_runs"]),
            fmt(e["best_score"]),
            e["id"],
        ]
        for e in open_store().list_experiments()
    ]
    print(
        table(["experiment", "date", "status", "arms", "best score", "id"], rows) if rows else "no experiments recorded"
    )
    return 0


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from evsys_sdk.cli.report import fmt, table
    from evsys_sdk.spec.results import baseline_model
    from evsys_sdk.tracking.records import find_experiment, load_result, open_store, stored_record

    store = open_store()
    exp = find_experiment(store, args.experiment)
    if args.json:
        print(json.dumps(stored_record(store, exp), indent=2, default=str))
        return 0
    result = load_result(store, exp)
    print(f"experiment {exp['name']} ({exp['id']}): {exp['status']}")
    if exp.get("hypothesis"):
        print(f"hypothesis: {exp['hypothesis']}")
    metric = result.success_metric
    rows: list[list[str]] = []
    for arm in result.arms:
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in list(arm.metrics.items())[:4]) or "-"
        rows.append([arm.name, arm.status, shown, arm.error or ""])
        for e in arm.evals:
            label = f"eval {e.name}" + ("" if e.step is None else f" @ step {e.step}")
            rows.append(["", label, ", ".join(f"{k}={fmt(v)}" for k, v in e.metrics.items()), ""])
    for e in result.baselines:
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in e.metrics.items())
        rows.append([f"baseline {baseline_model(e)}", f"eval {e.name}", metrics, ""])
    print(table(["arm", "status", "metrics", "error"], rows))
    for name, s in result.group_stats().items():
        print(
            f"group {name}: {metric} {fmt(s.mean)} +- {fmt(s.std)} (n={s.n}, "
            f"95% CI [{fmt(s.ci95_low)}, {fmt(s.ci95_high)}])"
        )
    if exp.get("conclusion"):
        print(f"conclusion: {exp['conclusion']}")
    return 0


def _cmd_runs_plot(args: argparse.Namespace) -> int:
    from evsys_sdk.cli.plots import plot_metric
    from evsys_sdk.tracking.records import find_experiment, open_store

    store = open_store()
    path = plot_metric(store, find_experiment(store, args.experiment), args.metric, args.output)
    print(f"OK: wrote {path}")
    return 0


def _cmd_benchmark_upload(args: argparse.Namespace) -> int:
    from evsys_sdk.cli.benchmark_upload import as_dict, upload_benchmark
    from evsys_sdk.tracking.store import LocalStore

    try:
        result = upload_benchmark(LocalStore(), args.path)
    except (FileNotFoundError, ValueError) as exc:
        raise EvsysError(str(exc)) from None
    print(json.dumps(as_dict(result), indent=2))
    print(f"\n# paste into your experiment config.yaml:\n# metadata.benchmark.id: {result.benchmark_id}")
    print(f"# or by name (its newest version): metadata.benchmark.name: {result.name}")
    return 0


def _cmd_init_project(args: argparse.Namespace) -> int:
    from evsys_sdk.cli.scaffold import init_project

    try:
        root = init_project(args.path, name=args.name, force=args.force)
    except (FileExistsError, ValueError) as exc:
        raise EvsysError(str(exc)) from None
    print(f"OK: scaffolded research project at {root}")
    return 0


def _cmd_new_experiment(args: argparse.Namespace) -> int:
    import datetime as dt

    from evsys_sdk.cli.scaffold import new_experiment

    today = None
    if args.date:
        try:
            today = dt.datetime.strptime(args.date, "%Y%m%d").date()
        except ValueError:
            raise EvsysError(f"--date '{args.date}' is not in YYYYMMDD format") from None
    try:
        folder = new_experiment(args.project_root, args.slug, today=today)
    except (FileExistsError, ValueError) as exc:
        raise EvsysError(str(exc)) from None
    print(f"OK: scaffolded experiment at {folder}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from evsys_sdk.plugins.registry import family_backends, normalize_kind, registry
    from evsys_sdk.spec.families import FAMILIES

    sections = LIST_SECTIONS
    if args.kind:
        kind = normalize_kind(args.kind)
        sections = {s: k for s, k in LIST_SECTIONS.items() if k == kind}
    for section, kind in sections.items():
        print(f"{section}:")
        for name in registry(kind).list():
            print(f"  - {name}")
        if kind == "algorithm":
            for family in sorted(FAMILIES):
                routes = ", ".join(f"{b} -> {a}" for b, a in family_backends(family).items()) or "no backend installed"
                print(f"  - {family} (family: {routes})")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from evsys_sdk.plugins.registry import schema_for

    if args.all:
        from evsys_sdk.loading.schema import full_schema

        schema = full_schema()
    elif args.kind and args.name:
        schema = schema_for(args.kind, args.name)
    else:
        raise EvsysError("usage: evsys schema KIND NAME, or evsys schema --all")
    print(json.dumps(schema, indent=2))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    from evsys_sdk.plugins.host import list_plugins

    infos = list_plugins()
    for info in infos:
        try:
            ver = version(info.dist)
        except (PackageNotFoundError, ValueError):
            ver = "?"
        print(f"{info.name}  {info.dist} {ver}  {info.status}  {info.module}")
        if info.error:
            print(f"    error: {info.error}")
        if info.hint:
            print(f"    fix:   {info.hint}")
    from evsys_sdk.base.install_hints import pip_install
    from evsys_sdk.plugins.registry import plugin_distributions

    installed = {i.dist for i in infos}
    for dist in plugin_distributions():
        if dist not in installed:
            print(f"{dist}  not installed: {pip_install(dist)}")
    return 0 if all(i.status != "broken" for i in infos) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evsys", description="Declarative LLM training experiments.")
    from evsys_sdk import __version__

    parser.add_argument("--version", action="version", version=f"evsys {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="parse and validate a config")
    p.add_argument("path", help="the config YAML")
    p.add_argument(
        "--deep", action="store_true", help="also check every kind and params block against installed plugins"
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("run", help="run an experiment (recorded in the project's .evsys/evsys.db)")
    p.add_argument("path", help="the config YAML")
    p.add_argument("-o", "--output", help="also write the JSON results to this file")
    p.add_argument("--json", action="store_true", help="print JSON results instead of the summary")
    p.add_argument("--resume", action="store_true", help="skip arms already completed with the same config")
    p.add_argument(
        "--store", default="local", help="where to record: local (the project's .evsys/evsys.db) or a plugin's store"
    )
    p.add_argument("--no-store", action="store_true", help="do not record the experiment")
    p.add_argument("--executor", help="where arms run, overriding executor.kind: sequential, process, ray, slurm")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("runs", help="recorded experiments (the local tracking store)")
    p.set_defaults(func=_cmd_runs)
    runs = p.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")
    q = runs.add_parser("show", help="arms, metrics, evals, group statistics and baselines of one experiment")
    q.add_argument("experiment", help="name (newest) or id")
    q.add_argument("--json", action="store_true", help="print the whole record as one JSON object")
    q.set_defaults(func=_cmd_runs_show)
    q = runs.add_parser("plot", help="one curve per arm of a step metric, as a PNG")
    q.add_argument("experiment", help="name (newest) or id")
    q.add_argument("--metric", default="train/loss", help="the step metric to draw")
    q.add_argument("-o", "--output", required=True, help="the PNG file to write")
    q.set_defaults(func=_cmd_runs_plot)

    p = sub.add_parser("init-project", help="scaffold a research project")
    p.add_argument("path", help="the project folder (created if missing)")
    p.add_argument("--name", help="the project's name (default: the folder's)")
    p.add_argument("--force", action="store_true", help="scaffold into a non-empty directory (never overwrites)")
    p.set_defaults(func=_cmd_init_project)

    p = sub.add_parser("new-experiment", help="scaffold experiments/<date>_<slug>/ with config.yaml and run.py")
    p.add_argument("slug", help="a short name for the experiment")
    p.add_argument("--project-root", default=".", help="the project to scaffold it in")
    p.add_argument("--date", help="YYYYMMDD (default: today)")
    p.set_defaults(func=_cmd_new_experiment)

    from evsys_sdk.cli.eval import benchmark_group

    p = benchmark_group(sub).add_parser("upload", help="store a harbor benchmark folder (tasks.jsonl) as a new version")
    p.add_argument("path", help="the benchmark folder")
    p.set_defaults(func=_cmd_benchmark_upload)

    p = sub.add_parser("list", help="list installed extensions")
    p.add_argument(
        "--kind",
        help="one section: algorithms, backends, verifiers, metrics, transforms, data_stores, log_stores, inference, "
        "callbacks, executors, proposers",
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("schema", help="JSON schema of one extension's params, or of the whole config")
    p.add_argument("kind", nargs="?", help="an extension kind: algorithm, backend, inference, executor, ...")
    p.add_argument("name", nargs="?", help="the extension's registered name")
    p.add_argument(
        "--all", action="store_true", help="one schema for the whole config, every installed extension included"
    )
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("plugins", help="installed plugins, their status and fix hints")
    p.set_defaults(func=_cmd_plugins)

    from evsys_sdk.cli import eval as eval_cli
    from evsys_sdk.cli import search as search_cli

    eval_cli.add_commands(sub)
    search_cli.add_commands(sub)

    from evsys_sdk.plugins.host import current_host

    host = current_host()
    host.ensure_plugins()  # the verbs only: registries fill at their first look-up
    for impl in host.pm.hook.evsys_register_commands.get_hookimpls():
        try:
            impl.function(subparsers=sub)
        except Exception as exc:  # a broken plugin verb must not take the CLI down
            print(f"warning: plugin '{impl.plugin_name}' failed to add its commands: {exc}", file=sys.stderr)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code: int = args.func(args)
        return code
    except EvsysError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
