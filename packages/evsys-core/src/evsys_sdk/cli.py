"""The ``evsys`` command line. User errors print one clear message (no traceback) and exit 1."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from evsys_sdk.errors import EvsysError

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
}


def _cmd_validate(args: argparse.Namespace) -> int:
    from evsys_sdk.yaml_loader import validate_yaml

    problems = validate_yaml(args.path, deep=args.deep)
    for p in problems:
        print(f"ERROR: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"OK: {args.path} parses and validates{' (deep)' if args.deep else ''}.")
    return 0


def _fmt_metric(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _summary(results: list[Any]) -> str:
    rows = []
    for r in results:
        shown = {k: v for k, v in r.metrics.items() if k.startswith(("eval/", "train/final", "reward/"))} or r.metrics
        metrics = ", ".join(f"{k}={_fmt_metric(v)}" for k, v in list(shown.items())[:4])
        rows.append((r.run_id, r.status, metrics or "-", r.error or ""))
    width = max([len(r[0]) for r in rows] + [3])
    lines = [f"{'run'.ljust(width)}  {'status':<9}  metrics"]
    for name, status, metrics, error in rows:
        lines.append(
            f"{name.ljust(width)}  {status:<9}  {metrics}" + (f"\n{' ' * width}  error: {error}" if error else "")
        )
    done = sum(r.status == "completed" for r in results)
    lines.append(f"{done}/{len(results)} runs completed.")
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> int:
    from evsys_sdk.runner import run_experiment

    results = run_experiment(args.path)
    payload = [{"run_id": r.run_id, "status": r.status, "metrics": r.metrics, "error": r.error} for r in results]
    text = json.dumps(payload, indent=2)
    if args.output:
        from evsys_sdk._io import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text if args.json else _summary(results))
    return 0 if all(r.status == "completed" for r in results) else 2


def _cmd_list(args: argparse.Namespace) -> int:
    from evsys_sdk.families import FAMILIES
    from evsys_sdk.registry import family_backends, normalize_kind, registry

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
    from evsys_sdk.registry import schema_for

    if args.all:
        from evsys_sdk.schema import full_schema

        schema = full_schema()
    elif args.kind and args.name:
        schema = schema_for(args.kind, args.name)
    else:
        raise EvsysError("usage: evsys schema KIND NAME, or evsys schema --all")
    print(json.dumps(schema, indent=2))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    from evsys_sdk.plugins import list_plugins

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
    return 0 if all(i.status != "broken" for i in infos) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evsys", description="Declarative LLM training experiments.")
    from evsys_sdk import __version__

    parser.add_argument("--version", action="version", version=f"evsys {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="parse and validate a config")
    p.add_argument("path")
    p.add_argument(
        "--deep", action="store_true", help="also check every kind and params block against installed plugins"
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("run", help="run an experiment")
    p.add_argument("path")
    p.add_argument("-o", "--output", help="also write the JSON results to this file")
    p.add_argument("--json", action="store_true", help="print JSON results instead of the summary")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("list", help="list installed extensions")
    p.add_argument(
        "--kind",
        help="one section: algorithms, backends, verifiers, metrics, transforms, data_stores, log_stores, inference",
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("schema", help="JSON schema of one extension's params, or of the whole config")
    p.add_argument("kind", nargs="?")
    p.add_argument("name", nargs="?")
    p.add_argument(
        "--all", action="store_true", help="one schema for the whole config, every installed extension included"
    )
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("plugins", help="installed plugins, their status and fix hints")
    p.set_defaults(func=_cmd_plugins)

    from evsys_sdk.plugins import current_host

    host = current_host()
    host.ensure_loaded()
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


if __name__ == "__main__":
    raise SystemExit(main())
