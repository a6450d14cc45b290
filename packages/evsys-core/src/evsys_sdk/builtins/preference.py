"""On-policy preference pairs: any benchmark with verifiers becomes DPO data.

For each Harbor task, sample ``k`` completions from an inference client, score each with the task's
verifier, and pair a passing completion (chosen) with a failing one (rejected). Tasks where every
sample passes or every sample fails carry no preference signal and are skipped. Each pair records
where it came from in ``metadata["provenance"]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from evsys_sdk.builtins.verifier_fns import verify_task
from evsys_sdk.spec.data_types import HarborTask, PreferenceRow
from evsys_sdk.spec.protocols import InferenceClient

__all__ = ["PairStats", "on_policy_pairs"]


@dataclass
class PairStats:
    """What a pass over the tasks produced: pairs, and the tasks skipped for lack of contrast."""

    tasks: int = 0
    pairs: int = 0
    all_pass: list[str] = field(default_factory=list)
    all_fail: list[str] = field(default_factory=list)


def on_policy_pairs(
    tasks: Iterable[HarborTask],
    client: InferenceClient,
    *,
    k: int = 4,
    max_tokens: int = 256,
    temperature: float = 1.0,
    threshold: float = 1.0,
    pairs_per_task: int = 1,
    conversational: bool = False,
    stats: PairStats | None = None,
) -> Iterator[PreferenceRow]:
    """Preference pairs from ``k`` samples per task: reward >= ``threshold`` passes, below fails.

    Up to ``pairs_per_task`` pairs per task, matching the i-th passing sample with the i-th failing one
    (sample order), so no completion appears in two pairs. ``conversational`` writes message lists
    instead of strings. Pass a ``PairStats`` to learn how many tasks were skipped.
    """
    if k < 2:
        raise ValueError(f"on_policy_pairs: k must be >= 2 to contrast samples, got {k}")
    stats = stats if stats is not None else PairStats()
    sampler = str(getattr(client, "name", type(client).__name__))
    for task in tasks:
        stats.tasks += 1
        samples = [
            client.generate(prompt=task.instruction, max_tokens=max_tokens, temperature=temperature) for _ in range(k)
        ]
        rewards = [float(verify_task(task, text).reward) for text in samples]
        passing = [i for i, r in enumerate(rewards) if r >= threshold]
        failing = [i for i, r in enumerate(rewards) if r < threshold]
        if not failing:
            stats.all_pass.append(task.task_id)
            continue
        if not passing:
            stats.all_fail.append(task.task_id)
            continue
        for c, r in list(zip(passing, failing, strict=False))[:pairs_per_task]:
            provenance: dict[str, Any] = {
                "source": "on_policy_pairs",
                "task_id": task.task_id,
                "sampler": sampler,
                "k": k,
                "temperature": temperature,
                "threshold": threshold,
                "chosen": {"sample": c, "reward": rewards[c]},
                "rejected": {"sample": r, "reward": rewards[r]},
                "pass_rate": len(passing) / k,
            }
            stats.pairs += 1
            yield PreferenceRow(
                prompt=[{"role": "user", "content": task.instruction}] if conversational else task.instruction,
                chosen=[{"role": "assistant", "content": samples[c]}] if conversational else samples[c],
                rejected=[{"role": "assistant", "content": samples[r]}] if conversational else samples[r],
                metadata={**task.metadata, "provenance": provenance},
            )
