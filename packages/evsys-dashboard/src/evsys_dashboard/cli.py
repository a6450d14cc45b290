"""The ``evsys dashboard`` commands (loaded only when one of them runs)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from evsys_dashboard.constants import MLFLOW_PREFIX
from evsys_sdk.base.errors import EvsysError


def _db_path(value: str | None) -> Path:
    if value:
        return Path(value).expanduser()
    from evsys_sdk.tracking.store import workspace_root

    return workspace_root() / "evsys.db"


def _server_missing(exc: ImportError) -> EvsysError:
    from evsys_sdk.base.install_hints import pip_install

    return EvsysError(f"the dashboard server needs its extra: {pip_install('evsys-dashboard[server]')} ({exc})")


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from evsys_dashboard.server import serve
    except ImportError as exc:
        raise _server_missing(exc) from None
    path = _db_path(args.db)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: binding {args.host}: the web UI has no login; writes still need an API key. It answers "
            "Host names localhost, 127.0.0.1, ::1 and the bind address only: add --allowed-host NAME for the "
            "names clients use",
            file=sys.stderr,
        )
    if args.max_body_mb <= 0:
        raise EvsysError(f"--max-body-mb must be positive, got {args.max_body_mb:g}")
    print(f"evsys dashboard: http://{args.host}:{args.port}/ (database {path})", flush=True)
    print(
        f"MLflow clients: MLFLOW_TRACKING_URI=http://{args.host}:{args.port}{MLFLOW_PREFIX}"
        " and an API key as MLFLOW_TRACKING_TOKEN",
        flush=True,
    )
    serve(
        path,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        extra_hosts=tuple(args.allowed_host),
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
    )
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text.lower())
    if match is None or float(match[1]) <= 0:
        raise EvsysError(f"--expires-in: {text!r} is not a duration; write e.g. 90d, 12h or 30m")
    return float(match[1]) * _UNITS[match[2]]


def _server_db(args: argparse.Namespace) -> Any:
    try:
        from evsys_dashboard.server.db import ServerDB
    except ImportError as exc:
        raise _server_missing(exc) from None
    return ServerDB(_db_path(args.db))


def cmd_create_key(args: argparse.Namespace) -> int:
    project = args.project.strip()
    if not project:
        raise EvsysError("--project must not be empty")
    expires_at = time.time() + _duration(args.expires_in) if args.expires_in else None
    db = _server_db(args)
    try:
        key = db.create_key(project, expires_at=expires_at)
    finally:
        db.close()
    until = f", valid until {_when(expires_at)}" if expires_at else ""
    print(f"created an API key for project {project}{until} (shown once; export EVSYS_API_KEY=<key>):")
    print(key)
    return 0


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def cmd_list_keys(args: argparse.Namespace) -> int:
    db = _server_db(args)
    try:
        keys = db.list_keys()
    finally:
        db.close()
    if not keys:
        print("no API keys (`evsys dashboard create-key --project NAME` makes one)")
        return 0
    now = time.time()
    rows = [("prefix", "project", "created", "last used", "expires", "state")]
    for k in keys:
        expired = k["expires_at"] is not None and k["expires_at"] <= now
        state = "revoked" if k["revoked_at"] is not None else "expired" if expired else "active"
        rows.append(
            (
                k["key_prefix"],
                k["project_id"],
                _when(k["created_at"]),
                _when(k["last_used_at"]),
                _when(k["expires_at"]),
                state,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_revoke_key(args: argparse.Namespace) -> int:
    db = _server_db(args)
    try:
        key = db.revoke_key(args.key.strip())
    except LookupError as exc:
        raise EvsysError(str(exc)) from None
    finally:
        db.close()
    print(f"revoked API key {key['key_prefix']} of project {key['project_id']} (refused from its next request on)")
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
    for problem in report.set_aside:
        print(f"set aside: {problem}", file=sys.stderr)
    print(f"{'OK' if not (report.errors or report.set_aside) else 'INCOMPLETE'}: {report.summary()}")
    return 1 if report.errors or report.set_aside else 0
