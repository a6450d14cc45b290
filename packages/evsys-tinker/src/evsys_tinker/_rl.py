"""``rl`` on Tinker: GRPO-style on-policy RL over Harbor tasks scored by in-process verifier functions.

Each step samples ``num_samples`` completions per task from a snapshot of the current weights, scores
them, drops groups whose rewards are all equal (they carry no signal), and trains with an
importance-sampling loss whose advantage is the reward minus the group mean (no std scaling).
"""

from __future__ import annotations

from typing import Any

from tinker import types

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.builtins import verifier_fns
from evsys_sdk.spec.data_types import HarborTask, InProcessVerifier, TargetFormat, parse_rows
from evsys_sdk.spec.protocols import RunContext
from evsys_tinker import _chat
from evsys_tinker._data import batch_indices, policy_datum
from evsys_tinker._loop import Batch, Session, mean_std, service_call
from evsys_tinker.config import TinkerRLConfig


class RLRecipe:
    def __init__(self, config: TinkerRLConfig, ctx: RunContext) -> None:
        self.config = config
        rows = ctx.extras.get("train_rows") or []
        if not rows:
            raise EvsysError(
                "tinker_rl needs train_rows: give the run `data` with Harbor tasks (task_id, instruction, verifier)"
            )
        self.tasks: list[HarborTask] = parse_rows(rows, TargetFormat.HARBOR_TASK)  # type: ignore[assignment]
        self.fns = [self._verifier_fn(t) for t in self.tasks]
        self.stop: list[int] = []

    def _verifier_fn(self, task: HarborTask) -> verifier_fns.VerifierFn:
        verifier = task.verifier
        if not isinstance(verifier, InProcessVerifier):
            raise EvsysError(
                f"task '{task.task_id}': tinker_rl scores with in-process verifiers only "
                f"(got {type(verifier).__name__ if verifier is not None else 'no verifier'})"
            )
        name = verifier.fn_name or self.config.verifier_name
        if not name:
            raise EvsysError(
                f"task '{task.task_id}' has no verifier fn_name; set it in the task or give the algorithm "
                f"a fallback with params.verifier_name (registered: {verifier_fns.list_fns()})"
            )
        try:
            return verifier_fns.get_fn(name)
        except ValueError:
            what = "unknown verifier_name" if not verifier.fn_name else "unknown verifier fn"
            raise EvsysError(f"task '{task.task_id}': {what} '{name}'; registered: {verifier_fns.list_fns()}") from None

    def n_items(self) -> int:
        return len(self.tasks)

    def setup(self, session: Session) -> None:
        self.stop = _chat.stop_tokens(session.tokenizer)
        self.prompts = [
            _chat.prompt_tokens(
                session.tokenizer,
                _chat.user_prompt(self.config.system_prompt, self.config.user_template.format(prompt=t.instruction)),
                enable_thinking=self.config.enable_thinking,
            )
            for t in self.tasks
        ]

    def batch(self, session: Session, step: int) -> Batch:
        cfg = self.config
        picked = batch_indices(len(self.tasks), cfg.batch_size, step, cfg.seed)
        sampler = service_call("save_weights_and_get_sampling_client", session.sampler)
        params = types.SamplingParams(max_tokens=cfg.max_tokens, temperature=cfg.temperature, stop=self.stop)
        futures = [sampler.sample(types.ModelInput.from_ints(self.prompts[i]), cfg.num_samples, params) for i in picked]
        data: list[types.Datum] = []
        all_rewards: list[float] = []
        kept_groups = 0
        for i, future in zip(picked, futures, strict=True):
            response = service_call("sample", future.result)
            verifier = self.tasks[i].verifier
            assert isinstance(verifier, InProcessVerifier)
            group = []
            for seq in response.sequences:
                text = session.tokenizer.decode([t for t in seq.tokens if t not in self.stop], skip_special_tokens=True)
                reward = float(self.fns[i](text, verifier.expected, dict(verifier.params)))
                group.append((seq, reward))
            rewards = [r for _, r in group]
            all_rewards += rewards
            if len(group) > 1 and cfg.drop_constant_reward and max(rewards) == min(rewards):
                continue
            kept_groups += 1
            baseline = sum(rewards) / len(rewards) if len(group) > 1 else 0.0
            for seq, reward in group:
                if seq.tokens and seq.logprobs is not None:
                    data.append(policy_datum(self.prompts[i], list(seq.tokens), list(seq.logprobs), reward - baseline))
        mean, std = mean_std(all_rewards)
        metrics = {
            "reward/mean": mean,
            "reward/std": std,
            "reward/n_trajectories": float(len(data)),
            "reward/n_groups": float(kept_groups),
            "reward/n_sampled": float(len(all_rewards)),
        }
        config = (
            {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2} if cfg.loss_fn != "importance_sampling" else None
        )
        return Batch(data, cfg.loss_fn, config, metrics)

    def hyperparams(self) -> dict[str, Any]:
        return {"n_tasks": len(self.tasks)}
