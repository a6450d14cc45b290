"""evsys-local overhead: the same SFT or DPO (model, data, steps, hyper-parameters) through `evsys run`
and through a hand-written TRL script, each in its own process, alternating, repeated.

Reports the per-step time (median gap between consecutive step ends within a run; best run of each
kind, as other jobs on a shared machine inflate single runs), their ratio (budget <= 1.05), train wall
time, process wall time and peak RSS. DPO is full fine-tuning with precomputed reference log-probs on
both sides (what ``local_dpo`` does with ``lora_rank: 0``).

    OMP_NUM_THREADS=1 python benchmarks/local_overhead.py [--method sft|dpo] [--steps 60] [--repeats 3] [--hidden 128]

Needs evsys-core and evsys-local installed (pip install packages/evsys-core packages/evsys-local torch==2.13.0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROWS = [
    {"messages": [{"role": "user", "content": s}, {"role": "assistant", "content": s[::-1]}]}
    for s in (f"{(i * 7919) % 1000000:0{3 + i % 4}d}"[: 3 + i % 4] for i in range(512))
]
# Preference pairs on the same strings: the reversal against the string itself.
PAIRS = [
    {"prompt": r["messages"][:1], "chosen": r["messages"][1:], "rejected": [{**r["messages"][1], "content": s}]}
    for r in ROWS
    for s in [r["messages"][0]["content"]]
]

# The same hyper-parameters evsys-local passes to TRL for the YAML below.
HAND_SFT = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer
    from transformers.trainer_callback import PrinterCallback
    model_dir, rows_file, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rows = [json.loads(l) for l in open(rows_file)]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ends = []
    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k): ends.append(time.perf_counter())
    args = SFTConfig(output_dir=out, max_steps=steps, learning_rate=3e-3, per_device_train_batch_size=32,
        gradient_accumulation_steps=1, warmup_steps=0, lr_scheduler_type="linear", weight_decay=0.0,
        max_grad_norm=1.0, logging_steps=1, gradient_checkpointing=False, seed=42, data_seed=42, use_cpu=True,
        bf16=False, fp16=False, report_to="none", save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, max_length=2048, assistant_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
        callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    t1 = time.perf_counter(); trainer.train(); t2 = time.perf_counter()
    trainer.save_model(out + "/final")
    print(json.dumps({"ends": ends, "train_s": t2 - t1, "total_s": time.perf_counter() - t0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)

HAND_DPO = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer
    from transformers.trainer_callback import PrinterCallback
    model_dir, rows_file, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rows = [json.loads(l) for l in open(rows_file)]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ends = []
    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k): ends.append(time.perf_counter())
    args = DPOConfig(output_dir=out, max_steps=steps, learning_rate=5e-4, per_device_train_batch_size=32,
        gradient_accumulation_steps=1, warmup_steps=0, lr_scheduler_type="linear", weight_decay=0.0,
        max_grad_norm=1.0, logging_steps=1, gradient_checkpointing=False, seed=42, data_seed=42, use_cpu=True,
        bf16=False, fp16=False, report_to="none", save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, max_length=1024, beta=0.1, loss_type=["sigmoid"], label_smoothing=0.0,
        precompute_ref_log_probs=True)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
        callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    t1 = time.perf_counter(); trainer.train(); t2 = time.perf_counter()
    trainer.save_model(out + "/final")
    print(json.dumps({"ends": ends, "train_s": t2 - t1, "total_s": time.perf_counter() - t0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)
# method -> (hand-written script, rows, the family params evsys runs with)
METHODS = {
    "sft": (HAND_SFT, ROWS, {"learning_rate": 3e-3}),
    "dpo": (HAND_DPO, PAIRS, {"learning_rate": 5e-4}),
}

EVSYS = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from evsys_sdk.cli.main import main
    code = main(["run", sys.argv[1]])
    print(json.dumps({"code": code, "total_s": time.perf_counter() - t0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def config(model: Path, data_root: Path, out: Path, steps: int, method: str) -> str:
    return json.dumps(
        {
            "version": 1,
            "name": "local_overhead",
            "output_dir": str(out),
            "data_store": {"kind": "local", "params": {"root": str(data_root)}},
            "log_store": {"kind": "jsonl"},
            "run": {
                "name": method,
                "data": {"source_kind": "jsonl", "path": "rows.jsonl"},
                "model": {"name": str(model)},
                "backend": {"kind": "local", "params": {"device": "cpu", "dtype": "float32"}},
                "algorithm": {
                    "kind": method,
                    "params": {
                        **METHODS[method][2],
                        "max_steps": steps,
                        "batch_size": 32,
                        "lora_rank": 0,
                        "logging_steps": 1,
                        "save_at_fractions": [1.0],
                    },
                },
            },
        }
    )


def step_time(ends: list[float]) -> float:
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    return statistics.median(gaps[1:])  # the first step pays warm-up


def last_json(stdout: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=sorted(METHODS), default="sft")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    a = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    from evsys_local.testing import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_tiny_model(root / "model", hidden=a.hidden, layers=a.layers, heads=4, kv_heads=4)
        hand_script, rows, _ = METHODS[a.method]
        (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        hand, ev = [], []
        for i in range(a.repeats):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    hand_script,
                    str(model),
                    str(root / "rows.jsonl"),
                    str(root / f"hand{i}"),
                    str(a.steps),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            hand.append(last_json(out.stdout))
            cfg = root / f"cfg{i}.yaml"
            cfg.write_text(config(model, root, root / f"ev{i}", a.steps, a.method))
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", EVSYS, str(cfg)], capture_output=True, text=True, env=env)
            result = last_json(out.stdout)
            if result.get("code") != 0:
                sys.exit(f"evsys run failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
            rows = [
                json.loads(x) for x in (root / f"ev{i}" / a.method / "logs" / "metrics.jsonl").read_text().splitlines()
            ]
            ts = [r["ts"] for r in rows if "train/loss" in r["metrics"]]
            record = json.loads((root / f"ev{i}" / a.method / "run_result.json").read_text())
            ev.append({**result, "ends": ts, "run_s": record["seconds"], "wall": time.perf_counter() - start})
        # The best (least contended) run of each: shared machines make medians swing both ways.
        h_step = min(step_time(h["ends"]) for h in hand)  # type: ignore[arg-type]
        e_step = min(step_time(e["ends"]) for e in ev)  # type: ignore[arg-type]
        h_med = statistics.median(step_time(h["ends"]) for h in hand)  # type: ignore[arg-type]
        e_med = statistics.median(step_time(e["ends"]) for e in ev)  # type: ignore[arg-type]
        report = {
            "method": a.method,
            "steps": a.steps,
            "model": f"llama hidden={a.hidden} layers={a.layers}",
            "hand_step_ms": round(1000 * h_step, 2),
            "evsys_step_ms": round(1000 * e_step, 2),
            "step_ratio": round(e_step / h_step, 3),
            "step_ratio_of_medians": round(e_med / h_med, 3),
            "hand_train_s": round(statistics.median(float(h["train_s"]) for h in hand), 2),  # type: ignore[arg-type]
            "evsys_run_s": round(statistics.median(float(e["run_s"]) for e in ev), 2),  # type: ignore[arg-type]
            "hand_process_s": round(statistics.median(float(h["total_s"]) for h in hand), 2),  # type: ignore[arg-type]
            "evsys_process_s": round(statistics.median(float(e["total_s"]) for e in ev), 2),  # type: ignore[arg-type]
            "hand_peak_rss_mb": round(max(float(h["rss_mb"]) for h in hand)),  # type: ignore[arg-type]
            "evsys_peak_rss_mb": round(max(float(e["rss_mb"]) for e in ev)),  # type: ignore[arg-type]
            "budget_step_ratio": 1.05,
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
