"""The plugin's hooks: ``evsys mlflow export`` and the log store ``mlflow``. Imports only core and argparse;
httpx loads in the command, or when a run with the log store starts."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry


def _export(args: argparse.Namespace) -> int:
    from evsys_mlflow.cli import cmd_export

    return cmd_export(args)


@hookimpl
def evsys_register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("mlflow", help="MLflow interop: export recorded experiments to an MLflow server")
    sub = p.add_subparsers(dest="mlflow_command", required=True, metavar="SUBCOMMAND")
    q = sub.add_parser(
        "export", help="send a recorded experiment to an MLflow server (exactly once: a re-run sends only what is new)"
    )
    q.add_argument("experiment", metavar="NAME_OR_ID", help="a recorded experiment (`evsys runs` lists them)")
    q.add_argument("--uri", required=True, help="the MLflow tracking server, e.g. http://127.0.0.1:5000")
    q.add_argument("--experiment", dest="mlflow_experiment", help="the MLflow experiment (default: the evsys name)")
    q.set_defaults(func=_export)


@hookimpl
def evsys_register_log_stores(registry: Registry[Any]) -> None:
    registry.add_lazy("mlflow", "evsys_mlflow.live:MlflowLogStore")
