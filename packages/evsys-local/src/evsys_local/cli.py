"""``evsys local ...`` verbs."""

from __future__ import annotations

import argparse


def _tiny_model(args: argparse.Namespace) -> int:
    from evsys_local.tiny import make_tiny_model

    path = make_tiny_model(
        args.path,
        layers=args.layers,
        hidden=args.hidden,
        vocab_size=args.vocab_size,
        vocab_from=args.vocab_from,
        seed=args.seed,
    )
    print(f"tiny model written to {path}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = subparsers.add_parser("local", help="evsys-local tools (tiny offline models)")
    verbs = local.add_subparsers(dest="local_command", required=True, metavar="VERB")
    p = verbs.add_parser("tiny-model", help="build a tiny random Llama + offline BPE tokenizer at PATH")
    p.add_argument("path")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--vocab-from", default=None, help="a text file to train the tokenizer on")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_tiny_model)
