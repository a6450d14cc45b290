"""Data and model for the local_tiny demo: reverse a string of digits.

Writes (next to this file) data/train.jsonl (rows that are both chat rows for SFT and Harbor tasks for
RL), bench/heldout/tasks.jsonl and bench/val/tasks.jsonl (held-out Harbor tasks, never trained on), and
model/ (a tiny random Llama + offline tokenizer). Deterministic: the same files every time.

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
    write_jsonl(HERE / "bench" / "heldout" / "tasks.jsonl", [task(i, s, "test") for i, s in enumerate(held[:100])])
    write_jsonl(HERE / "bench" / "val" / "tasks.jsonl", [task(i, s, "val") for i, s in enumerate(held[100:])])

    from evsys_local.testing import make_tiny_model

    make_tiny_model(HERE / "model", hidden=128, layers=2, heads=4, kv_heads=4)
    print(f"wrote {len(train)} train rows, 100 held-out + 50 validation tasks and the model under {HERE}")


if __name__ == "__main__":
    main()
