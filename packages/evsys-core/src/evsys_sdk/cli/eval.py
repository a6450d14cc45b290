"""``evsys eval model`` and ``evsys benchmark run``: score any registered inference client.

``add_commands(subparsers)`` is called by ``evsys_sdk.cli.main``. Other plugins add
verbs to the ``benchmark`` group through ``benchmark_group(subparsers)``, which returns the group's
sub-command action whichever hook runs first (it is also kept as ``BENCHMARK_COMMANDS``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TypeAlias

from evsys_sdk.base.errors import EvsysError

__all__ = ["BENCHMARK_COMMANDS", "add_commands", "benchmark_group", "make_client", "parse_params"]

if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
BENCHMARK_COMMANDS: SubParsers | None = None


def _sub_action(parser: argparse.ArgumentParser) -> SubParsers | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _group(subparsers: SubParsers, name: str, help_text: str) -> SubParsers:
    """The sub-command action of top-level verb ``name``, created on first use."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text)
    action = _sub_action(parser)
    if action is None:
        action = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
    return action


def benchmark_group(subparsers: SubParsers) -> SubParsers:
    """``evsys benchmark``'s sub-commands (``run`` here; ``upload`` by the workspace module)."""
    global BENCHMARK_COMMANDS
    BENCHMARK_COMMANDS = _group(subparsers, "benchmark", "score and manage Harbor benchmarks")
    return BENCHMARK_COMMANDS


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``k=v`` pairs; a value that parses as JSON (numbers, true/false, lists) is taken as such."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise EvsysError(f"--param expects key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _accepted(cls: type[Any]) -> set[str] | None:
    """Param names ``cls`` accepts (None = anything)."""
    config = getattr(cls, "Config", None)
    fields = getattr(config, "model_fields", None)
    if isinstance(fields, dict):
        names = set(fields)
        names |= {f.alias for f in fields.values() if isinstance(getattr(f, "alias", None), str)}
        extra = getattr(config, "model_config", {}).get("extra")
        return None if extra == "allow" else names
    import inspect  # only for the verb that runs: `evsys --help` never needs it

    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def make_client(kind: str, *, implicit: dict[str, Any] | None = None, explicit: dict[str, Any] | None = None) -> Any:
    """Construct inference client ``kind`` with only the params its Config accepts.

    ``implicit`` params (the CLI's --model-name, --adapter-path...) are dropped, with a note, when the
    kind doesn't take them (``model_name`` becomes ``model`` for kinds that call it that); ``explicit``
    ones (``--param``) must be accepted. Construction errors become EvsysError.
    """
    from evsys_sdk.plugins.registry import registry

    cls = registry("inference_client").get(kind)
    accepted = _accepted(cls)
    params: dict[str, Any] = {}
    for key, value in (implicit or {}).items():
        if value is None:
            continue
        if accepted is not None and key == "model_name" and "model_name" not in accepted and "model" in accepted:
            key = "model"
        if accepted is None or key in accepted:
            params[key] = value
        else:
            print(f"note: inference kind '{kind}' takes no '{key}'; ignored", file=sys.stderr)
    for key, value in (explicit or {}).items():
        if accepted is not None and key not in accepted:
            takes = ", ".join(sorted(accepted)) or "no params"
            raise EvsysError(f"inference kind '{kind}' has no param '{key}' (takes: {takes})")
        params[key] = value
    try:
        return cls(**params)
    except (ValueError, ImportError, RuntimeError, OSError) as exc:
        raise EvsysError(f"can't create inference client '{kind}': {exc}") from exc


def _limiter(rate: float | None) -> Any:
    if rate is None:
        return None
    from evsys_sdk.eval.engine import RateLimiter

    return RateLimiter(rate, burst=max(1, int(rate)))


def _cmd_eval_model(args: argparse.Namespace) -> int:
    from evsys_sdk.eval.alias import AliasMatcher
    from evsys_sdk.eval.harness import ModelEvalConfig, evaluate_model, format_summary_markdown, load_eval_dataset

    try:  # data errors first, before a model is loaded
        load_eval_dataset(args.dataset)
        AliasMatcher.from_files(args.aliases, args.secondary_aliases)
    except (OSError, ValueError) as exc:
        raise EvsysError(str(exc)) from exc
    client = make_client(
        args.inference_kind,
        implicit={
            "model_name": args.model_name,
            "adapter_path": args.adapter_path,
            "checkpoint_path": args.checkpoint_path,
        },
        explicit=parse_params(args.param),
    )
    config = ModelEvalConfig(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        max_attempts=args.max_attempts,
        batch_size=args.batch_size,
        max_concurrency=args.max_concurrency,
        cache_dir=args.cache,
        rate_limiter=_limiter(args.rate_limit),
    )
    artifacts = evaluate_model(
        dataset_path=args.dataset,
        aliases_path=args.aliases,
        secondary_aliases_path=args.secondary_aliases,
        client=client,
        config=config,
        output_dir=args.output_dir,
        progress=not args.no_progress,
    )
    print(format_summary_markdown(artifacts.summary, title=f"Model eval ({args.inference_kind})"), end="")
    failures = int(artifacts.summary.retry_report.get("total_failures") or 0)
    return 2 if failures and args.fail_on_retries else 0


def _cmd_benchmark_run(args: argparse.Namespace) -> int:
    from evsys_sdk.eval.benchmark import Benchmark

    spec = {"path": args.path, "id": args.id, "name": args.name}
    try:
        bench = Benchmark.load({k: v for k, v in spec.items() if v})
    except (OSError, ValueError) as exc:
        raise EvsysError(str(exc)) from exc
    if bench is None:  # unreachable: argparse requires one of them
        raise EvsysError("give --path, --id or --name")
    client = make_client(args.model, implicit={"model_name": args.model_name}, explicit=parse_params(args.param))
    try:
        score = bench.score(
            client,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            limit=args.limit,
            metrics=args.metrics,
            num_samples=args.num_samples,
            breakdown_keys=args.breakdown,
            max_concurrency=args.max_concurrency,
            max_attempts=args.max_attempts,
            rate_limiter=_limiter(args.rate_limit),
            cache=args.cache,
            progress=None if not args.no_progress else False,
        )
    except (NotImplementedError, ValueError) as exc:  # unscorable tasks (E2B, LLM judge, unknown fn)
        raise EvsysError(str(exc)) from exc
    estimates = {k: v for k, v in score.stats.items() if k.endswith("_unbiased")}
    report = score.retry_report
    payload = {
        "benchmark": bench.name,
        "model": args.model,
        "metrics": score.metrics,
        "stderr": score.stderr,
        "estimates": estimates,
        "breakdowns": score.breakdowns,
        "retry_report": {k: report.get(k) for k in ("total_failures", "by_exception_type")},
    }
    text = json.dumps(payload, indent=2)
    print(text)
    if args.output:
        from dataclasses import asdict

        from evsys_sdk.base.io import atomic_write_json

        atomic_write_json(
            args.output,
            {
                **payload,
                "retry_report": report,
                "per_task": [asdict(t) for t in score.per_task],
                "rollouts": score.rollouts,
            },
        )
    if report.get("total_failures"):
        print(f"warning: {report['total_failures']} generation(s) failed for good (scored 0)", file=sys.stderr)
    return 2 if report.get("total_failures") and args.fail_on_retries else 0


def _common(p: argparse.ArgumentParser, *, max_tokens: int) -> None:
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="an inference client param (repeatable)")
    p.add_argument("--max-tokens", type=int, default=max_tokens)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-attempts", type=int, default=5, help="tries per request on transient errors")
    p.add_argument("--max-concurrency", type=int, default=16, help="requests in flight at once")
    p.add_argument("--rate-limit", type=float, metavar="RPS", help="at most this many requests per second")
    p.add_argument("--cache", metavar="DIR", help="completion cache: a re-run sends only what is missing")
    p.add_argument("--fail-on-retries", action="store_true", help="exit 2 if any request failed for good")
    p.add_argument("--no-progress", action="store_true", help="no progress line on the terminal")


def add_commands(subparsers: SubParsers) -> SubParsers:
    """Add ``eval model`` and ``benchmark run``; returns the ``benchmark`` group's sub-commands."""
    evals = _group(subparsers, "eval", "evaluate a model")
    p = evals.add_parser("model", help="alias-aware tool-search eval of an inference client")
    p.add_argument("--dataset", required=True, help="eval rows: JSON list of {tool_slug, toolkit, queries}")
    p.add_argument("--aliases", required=True, help="primary aliases JSON {slug: alias}")
    p.add_argument("--secondary-aliases", help="secondary aliases JSON {slug: [aliases]} (ignored if missing)")
    p.add_argument("--output-dir", required=True)
    p.add_argument(
        "--inference-kind", required=True, help="any registered inference kind (evsys list --kind inference)"
    )
    p.add_argument("--model-name", help="passed to kinds that take model_name (or model)")
    p.add_argument("--adapter-path")
    p.add_argument("--checkpoint-path")
    p.add_argument("--batch-size", type=int, default=1, help="prompts per generate_batch call, if the client has it")
    _common(p, max_tokens=256)
    p.set_defaults(func=_cmd_eval_model)

    bench = benchmark_group(subparsers)
    p = bench.add_parser("run", help="score a benchmark on an inference client, no training")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--path", help="a benchmark folder (tasks.jsonl, metadata.yaml)")
    where.add_argument("--id", help="a dashboard benchmark id")
    where.add_argument("--name", help="a dashboard benchmark name (newest version)")
    p.add_argument("--model", required=True, metavar="KIND", help="any registered inference kind")
    p.add_argument("--model-name", help="passed to kinds that take model_name (or model)")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--limit", type=int, help="score only the first N tasks")
    p.add_argument("--metrics", nargs="+", help="metric names (default: mean_reward pass_rate)")
    p.add_argument("--breakdown", nargs="+", metavar="KEY", help="dotted task-metadata keys to break results down by")
    p.add_argument("-o", "--output", help="also write per-task results and rollouts to this JSON file")
    _common(p, max_tokens=512)
    p.set_defaults(func=_cmd_benchmark_run)
    return bench
