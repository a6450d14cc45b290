"""Data and model for the local_tiny demo: reverse a string of digits.

Writes (next to this file) data/train.jsonl (rows that are both chat rows for SFT and Harbor tasks for
RL), data/pairs.jsonl (chat rows that are also DPO preference pairs: chosen = the reversal, rejected = a
near miss), bench/heldout/tasks.jsonl and bench/val/tasks.jsonl (held-out Harbor tasks, never trained
on), bench/heldout_pairs.jsonl (near-miss pairs of the held-out strings), model/ (a tiny random Llama +
offline tokenizer) and student/ (a smaller Llama with the same tokenizer, for distillation).
Deterministic: the same files every time.

    python examples/local_tiny/make_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIGITS = "0123456789"


def sample(rng: random.Random) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(rng.randint(3, 6)))


def task(i: int, s: str, split: str) -> dict[str, object]:
    return {
        "task_id": f"{split}-{i}",
        "instruction": s,
        "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": s[::-1]},
        "metadata": {"length": len(s)},
    }


def near_miss(answer: str, rng: random.Random) -> str:
    """The answer with two adjacent differing digits swapped (one digit bumped when all are equal)."""
    spots = [i for i in range(len(answer) - 1) if answer[i] != answer[i + 1]]
    if not spots:
        return str((int(answer[0]) + 1) % 10) + answer[1:]
    i = rng.choice(spots)
    return answer[:i] + answer[i + 1] + answer[i] + answer[i + 2 :]


def pair(s: str, rng: random.Random) -> dict[str, object]:
    """A chat row (for SFT) that is also a preference pair (for DPO), in conversational form."""
    prompt = [{"role": "user", "content": s}]
    return {
        "messages": [*prompt, {"role": "assistant", "content": s[::-1]}],
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": s[::-1]}],
        "rejected": [{"role": "assistant", "content": near_miss(s[::-1], rng)}],
    }


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    rng = random.Random(1234)
    held: list[str] = []
    while len(held) < 150:
        s = sample(rng)
        if s not in held:
            held.append(s)
    unseen = set(held)
    train: list[str] = []
    while len(train) < 4000:
        s = sample(rng)
        if s not in unseen:
            train.append(s)
    # Each row is both a chat row (SFT reads `messages`) and a Harbor task (RL reads the verifier),
    # so one dataset serves every phase of the sft -> rl combo.
    write_jsonl(
        HERE / "data" / "train.jsonl",
        [
            {
                **task(i, s, "train"),
                "messages": [{"role": "user", "content": s}, {"role": "assistant", "content": s[::-1]}],
            }
            for i, s in enumerate(train)
        ],
    )
    pair_rng = random.Random(99)
    write_jsonl(HERE / "data" / "pairs.jsonl", [pair(s, pair_rng) for s in train[:2000]])
    write_jsonl(HERE / "bench" / "heldout_pairs.jsonl", [pair(s, pair_rng) for s in held[:100]])
    write_jsonl(HERE / "bench" / "heldout" / "tasks.jsonl", [task(i, s, "test") for i, s in enumerate(held[:100])])
    write_jsonl(HERE / "bench" / "val" / "tasks.jsonl", [task(i, s, "val") for i, s in enumerate(held[100:])])

    from evsys_local.testing import make_tiny_model

    make_tiny_model(HERE / "model", hidden=128, layers=2, heads=4, kv_heads=4)
    make_tiny_model(HERE / "student", hidden=64, layers=2, heads=4, kv_heads=4)  # same tokenizer: same corpus
    print(f"wrote {len(train)} train rows, 2000 pairs, held-out tasks and pairs, model/ and student/ under {HERE}")


if __name__ == "__main__":
    main()
