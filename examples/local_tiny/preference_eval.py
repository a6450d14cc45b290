"""Held-out preference accuracy and exact match of local checkpoints (the DPO demo's before/after).

Preference accuracy: the share of bench/heldout_pairs.jsonl (near-miss pairs of strings never trained
on) where the model gives the correct reversal a higher log-probability than the near miss. Exact match:
greedy answers on bench/heldout (the same 100 strings), scored by their exact_match verifiers.

    python examples/local_tiny/preference_eval.py CHECKPOINT [CHECKPOINT ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


Turns = list[dict[str, str]]


def completion_logp(model: Any, tokenizer: Any, prompt: Turns, reply: Turns) -> float:
    """Summed log-probability of ``reply``'s tokens after ``prompt``, as the chat template renders them."""
    import torch

    head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(prompt + reply, tokenize=False)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    ids = head_ids + tokenizer(full[len(head) :], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return float(sum(logp[t - 1, ids[t]] for t in range(len(head_ids), len(ids))))


def evaluate(checkpoint: str) -> dict[str, float]:
    from evsys_local.inference import LocalInference
    from evsys_sdk.eval.benchmark import Benchmark

    client = LocalInference(model_name=checkpoint, device="cpu", batch_size=50)
    pairs = [json.loads(line) for line in (HERE / "bench" / "heldout_pairs.jsonl").read_text().splitlines() if line]
    wins = 0
    for p in pairs:
        chosen = completion_logp(client._model, client._tokenizer, p["prompt"], p["chosen"])
        rejected = completion_logp(client._model, client._tokenizer, p["prompt"], p["rejected"])
        wins += chosen > rejected
    score = Benchmark.from_dir(HERE / "bench" / "heldout").score(client, max_tokens=12)
    return {"preference_accuracy": wins / len(pairs), "exact_match": score.metrics["pass_rate"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args()
    print(f"{'checkpoint':60s} {'pref_acc':>8s} {'exact':>6s}")
    for checkpoint in args.checkpoints:
        result = evaluate(checkpoint)
        print(f"{checkpoint:60s} {result['preference_accuracy']:8.2f} {result['exact_match']:6.2f}")


if __name__ == "__main__":
    main()
