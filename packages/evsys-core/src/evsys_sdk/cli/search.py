"""``evsys evolve PATH`` and ``evsys evolve show NAME_OR_ID``; added by ``evsys_sdk.cli.main``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from evsys_sdk.base.errors import EvsysError

if TYPE_CHECKING:
    from evsys_sdk.search.engine import Candidate, SearchResult

TOP = 5  # candidates in the closing table


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "evolve",
        help="search a config's `search:` space (evsys evolve PATH), or show one (evsys evolve show NAME_OR_ID)",
    )
    p.add_argument("target", metavar="PATH", help="the experiment config with a `search:` block, or `show`")
    p.add_argument("name", nargs="?", metavar="NAME_OR_ID", help="with `show`: the search's name (newest) or id")
    p.add_argument("--resume", action="store_true", help="continue the newest search of this config where it stopped")
    p.add_argument("--store", default="local", help="where to record: local (./.evsys/evsys.db) or a plugin's store")
    p.add_argument("--executor", help="where arms run, overriding executor.kind: sequential, process, ray, slurm")
    p.add_argument("--json", action="store_true", help="with `show`: print the search as JSON")
    p.add_argument(
        "--plot", metavar="FILE.png", help="with `show`: save best-so-far against budget and score against each param"
    )
    p.set_defaults(func=_cmd_evolve)


def _cmd_evolve(args: argparse.Namespace) -> int:
    if args.target == "show":
        if not args.name:
            raise EvsysError("usage: evsys evolve show NAME_OR_ID [--json]")
        return _show(args.name, as_json=args.json, plot=args.plot)
    if args.name:
        raise EvsysError(f"unexpected argument '{args.name}': evsys evolve PATH [--resume] [--store NAME]")
    from evsys_sdk.loading.yaml_loader import load_yaml
    from evsys_sdk.plugins.host import tracking_store
    from evsys_sdk.search.engine import evolve
    from evsys_sdk.spec.config import ExecutorSpec

    cfg = load_yaml(args.target)
    if args.executor and args.executor != cfg.executor.kind:
        cfg = cfg.model_copy(update={"executor": ExecutorSpec(kind=args.executor)})
    store = tracking_store(args.store)
    try:
        result = evolve(cfg, resume=args.resume, store=store, progress=sys.stderr)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished arms are kept; continue with: evsys evolve {args.target} --resume",
            file=sys.stderr,
        )
        return 130
    finally:
        if hasattr(store, "close"):
            store.close()
    print(summary_text(result))
    return 0 if result.best is not None else 2


def summary_text(result: SearchResult) -> str:
    """The top candidates, the best (and its confirmation), what was spent, where best.yaml is."""
    from evsys_sdk.cli.report import table
    from evsys_sdk.search.engine import conclusion

    scored = [c for c in result.candidates if c.mean is not None]
    scored.sort(key=lambda c: c.mean or 0.0, reverse=result.direction == "maximize")
    rows = [
        [
            c.id,
            c.operator + (f"<{','.join(c.parents)}" if c.parents else ""),
            f"{c.mean:.4g}",
            f"[{c.ci95[0]:.4g}, {c.ci95[1]:.4g}]" if c.ci95 else "-",
            ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in c.patch.items()),
        ]
        for c in scored[:TOP]
    ]
    out = [f"search {result.name} ({result.experiment_id}): {result.metric}, {result.direction}"]
    if rows:
        out.append(table(["candidate", "lineage", "mean", "95% CI", "patch"], rows))
    out.append(conclusion(result))
    failed = sum(c.status == "failed" for c in result.candidates)
    if failed or result.rejected:
        out.append(f"{failed} candidate(s) failed, {len(result.rejected)} proposal(s) rejected (never charged)")
    stopped = sum(c.status == "stopped" for c in result.candidates)
    if stopped:
        out.append(f"{stopped} candidate(s) stopped at a rung (charged the steps they ran)")
    out.append("spent: " + ", ".join(f"{k}={v}" for k, v in result.spent.items()))
    if result.best_path:
        out.append(f"best recipe: {result.best_path} (evsys run {result.best_path})")
    return "\n".join(out)


def _mean(c: Candidate) -> str:
    """The candidate's mean, or at a rung its mean there (``0.41 @50``)."""
    if c.mean is not None:
        return f"{c.mean:.4g}"
    if c.rung_means:
        step, mean = max(c.rung_means.items())
        return f"{mean:.4g} @{step}"
    return "-"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _show(name_or_id: str, *, as_json: bool, plot: str | None = None) -> int:
    from evsys_sdk.base.errors import did_you_mean
    from evsys_sdk.cli.report import table
    from evsys_sdk.search.engine import conclusion, read_search
    from evsys_sdk.search.records import list_searches
    from evsys_sdk.tracking.records import open_store

    db = open_store()
    found = read_search(db, name_or_id)
    if found is None:
        names = list_searches(db)
        raise EvsysError(
            f"no search named or with id '{name_or_id}'{did_you_mean(name_or_id, names)}"
            + (f" (searches: {', '.join(names)})" if names else "; start one with `evsys evolve CONFIG`")
        )
    cfg, state, experiment_id = found
    metric = str(cfg.metadata.get("success_metric"))
    result = state.result(cfg.name, experiment_id, metric)
    if plot:
        from evsys_sdk.search.plot import plot_search

        space = cfg.search.space if cfg.search is not None else "auto"
        logs = {p for p, d in space.items() if d.kind == "log_uniform"} if isinstance(space, dict) else set()
        print(f"wrote {plot_search(result, plot, logs)}")
        return 0
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    rows = [
        [
            c.id,
            ",".join(c.parents) or "-",
            c.operator,
            c.message or c.status,
            _mean(c),
            ", ".join(f"{k}={_short(v)}" for k, v in c.patch.items()),
        ]
        for c in result.candidates
    ]
    print(f"search {cfg.name} ({experiment_id}): {metric}, {result.direction}")
    print(table(["candidate", "parents", "operator", "status", "mean", "patch"], rows))
    for r in result.rejected:
        print(f"rejected {r['patch']}: {r['reason']}")
    print(conclusion(result))
    print("spent: " + ", ".join(f"{k}={v}" for k, v in result.spent.items()))
    return 0
