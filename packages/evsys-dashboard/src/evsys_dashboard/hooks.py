"""The plugin's hooks: ``evsys dashboard serve|sync|create-key|list-keys|revoke-key`` and ``evsys run --store
dashboard``.

evsys imports this module when it discovers plugins, so it imports only core and argparse: httpx and
the server stack load inside the commands.
"""

from __future__ import annotations

import argparse
from typing import Any

from evsys_sdk.plugins.hookspecs import hookimpl


def _run(name: str) -> Any:
    def call(args: argparse.Namespace) -> int:
        from evsys_dashboard import cli

        code: int = getattr(cli, name)(args)
        return code

    return call


@hookimpl
def evsys_register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("dashboard", help="the tracking dashboard: serve it, sync a local mirror, API keys")
    sub = p.add_subparsers(dest="dashboard_command", required=True, metavar="SUBCOMMAND")
    db_help = "the SQLite file (default: $EVSYS_WORKSPACE/evsys.db, the store `evsys run` records to)"

    q = sub.add_parser("serve", help="serve the dashboard API and web UI")
    q.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    q.add_argument("--port", type=int, default=8000)
    q.add_argument("--db", help=db_help)
    q.add_argument("--log-level", default="info")
    q.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host is NAME (repeatable; default: localhost, 127.0.0.1, ::1 and --host; "
        "'*' answers any)",
    )
    q.add_argument(
        "--max-body-mb", type=float, default=16.0, help="requests with a larger body answer 413 (default: 16)"
    )
    q.set_defaults(func=_run("cmd_serve"))

    q = sub.add_parser("create-key", help="create an API key for a project (the key is the last word printed)")
    q.add_argument("--project", required=True, help="the project id clients send as EVSYS_PROJECT_ID")
    q.add_argument("--expires-in", metavar="DURATION", help="the key stops working after this long: 90d, 12h, 30m")
    q.add_argument("--db", help=db_help)
    q.set_defaults(func=_run("cmd_create_key"))

    q = sub.add_parser("list-keys", help="list API keys: prefix, project, created, last used, expiry, revoked")
    q.add_argument("--db", help=db_help)
    q.set_defaults(func=_run("cmd_list_keys"))

    q = sub.add_parser("revoke-key", help="revoke an API key (effective on its next request)")
    q.add_argument("key", metavar="KEY_OR_PREFIX", help="the key, or its prefix as `list-keys` shows it")
    q.add_argument("--db", help=db_help)
    q.set_defaults(func=_run("cmd_revoke_key"))

    q = sub.add_parser("sync", help="replay a local mirror to the server (idempotent)")
    q.add_argument("log_dir", nargs="?", help="the mirror folder (default: $EVSYS_LOG_DIR or ./evsys_sdk)")
    q.set_defaults(func=_run("cmd_sync"))


@hookimpl
def evsys_tracking_store(name: str) -> Any:
    """``evsys run --store dashboard``: record to the server named by EVSYS_API_URL (mirrored locally)."""
    if name != "dashboard":
        return None
    from evsys_dashboard.client import DashboardClient

    client = DashboardClient()
    try:
        client.check_key()  # a wrong key stops the run here, before any arm
    except BaseException:
        client.close()
        raise
    return client
