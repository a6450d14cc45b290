"""The ``evsys dashboard`` commands (loaded only when one of them runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evsys_sdk.errors import EvsysError


def _db_path(value: str | None) -> Path:
    if value:
        return Path(value).expanduser()
    from evsys_sdk.store import workspace_root

    return workspace_root() / "evsys.db"


def _server_missing(exc: ImportError) -> EvsysError:
    from evsys_sdk.install_hints import pip_install

    return EvsysError(f"the dashboard server needs its extra: {pip_install('evsys-dashboard[server]')} ({exc})")


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from evsys_dashboard.server import serve
    except ImportError as exc:
        raise _server_missing(exc) from None
    path = _db_path(args.db)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: the web UI has no login; writes still need an API key", file=sys.stderr)
    print(f"evsys dashboard: http://{args.host}:{args.port}/ (database {path})", flush=True)
    serve(path, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    try:
        from evsys_dashboard.server.db import ServerDB
    except ImportError as exc:
        raise _server_missing(exc) from None
    project = args.project.strip()
    if not project:
        raise EvsysError("--project must not be empty")
    db = ServerDB(_db_path(args.db))
    try:
        key = db.create_key(project)
    finally:
        db.close()
    print(f"created an API key for project {project} (shown once; export EVSYS_API_KEY=<key>):")
    print(key)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from evsys_dashboard.client import DashboardClient
    from evsys_dashboard.errors import DashboardUnavailableError
    from evsys_dashboard.sync import sync_mirror

    client = DashboardClient(log_dir=args.log_dir, offline=False)
    try:
        report = sync_mirror(client, args.log_dir)
    except (DashboardUnavailableError, FileNotFoundError) as exc:
        raise EvsysError(str(exc)) from None
    finally:
        client.close()
    for error in report.errors:
        print(f"refused: {error}", file=sys.stderr)
    print(f"OK: {report.summary()}")
    return 1 if report.errors else 0
