"""evsys-local at scale: local_sft at 1 and N processes beside the same TRL loop launched by hand with torchrun.

For every process count N, in the same run and interleaved (repeat i: evsys N=1, hand N=1, evsys N=2, ...):
  - evsys: `evsys run` of a local_sft YAML with backend `num_processes: N` (N=1 trains in the process, N>1 is
    the torchrun job evsys-local launches);
  - hand:  `python -m torch.distributed.run --standalone --nproc-per-node N hand.py` (N=1: `python hand.py`)
    running SFTTrainer with the hyper-parameters evsys-local passes it (the global batch split over the N ranks,
    as evsys does).
Step time is the median gap between consecutive step ends (the first step left out), tokens/s the step's tokens
(TRL's `num_tokens`, summed over ranks) over it. The figure is evsys's step time over the hand loop's at the
largest N: per repeat, then the mean with its 95% CI over the repeats (budget <= 1.10).

    OMP_NUM_THREADS=1 python benchmarks/local_scale.py                       # CPU, gloo: N = 1, 2
    python benchmarks/local_scale.py --processes 1,2,4,8 --device cuda --mixed-precision bf16 \
        --strategy fsdp --model /path/to/a/hf/causal-lm --batch-size 64 --steps 50   # one H100/H200 node

Needs evsys-core and evsys-local installed (pip install packages/evsys-core packages/evsys-local torch==2.13.0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROWS = [
    {"messages": [{"role": "user", "content": s}, {"role": "assistant", "content": s[::-1]}]}
    for s in (f"{(i * 7919) % 1000000:06d}"[: 3 + i % 4] for i in range(2048))
]

# SFTTrainer with what evsys-local's trainer_args and local_sft give it for the YAML below.
HAND = textwrap.dedent(
    """
    import json, os, sys, time
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer
    a = json.loads(sys.argv[1])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rows = [json.loads(l) for l in open(a["rows"])]
    tok = AutoTokenizer.from_pretrained(a["model"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.bfloat16 if a["device"] == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(a["model"], dtype=dtype)
    ends, tokens = [], []
    class Clock(TrainerCallback):
        def on_step_end(self, *args, **kw): ends.append(time.perf_counter())
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs: tokens.append(float(logs["num_tokens"]))
    fsdp = {}
    if a["strategy"] == "fsdp" and world > 1:
        fsdp = {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True,
            "state_dict_type": "FULL_STATE_DICT", "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "transformer_layer_cls_to_wrap": list(model._no_split_modules or [])}}
    args = SFTConfig(output_dir=a["out"], max_steps=a["steps"], learning_rate=3e-3,
        per_device_train_batch_size=a["batch_size"] // world, gradient_accumulation_steps=1, warmup_steps=0,
        lr_scheduler_type="linear", weight_decay=0.0, max_grad_norm=1.0, logging_steps=1,
        activation_checkpointing=False, seed=0, data_seed=0, use_cpu=a["device"] == "cpu",
        bf16=a["mixed_precision"] == "bf16" or a["device"] == "cuda", fp16=False, report_to="none",
        save_strategy="no", save_only_model=False, disable_tqdm=True, dataloader_num_workers=0,
        max_length=a["max_seq_len"], packing=False, assistant_only_loss=True, completion_only_loss=False,
        dataset_num_proc=None, **fsdp)
    peft = None
    if a["lora_rank"]:
        from peft import LoraConfig
        peft = LoraConfig(r=a["lora_rank"], lora_alpha=2 * a["lora_rank"], lora_dropout=0.0,
            target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
        peft_config=peft, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    if int(os.environ.get("RANK", "0")) == 0:
        print("RESULT " + json.dumps({"ends": ends, "tokens": tokens}), flush=True)
    """
)


def evsys_config(a: argparse.Namespace, model: str, root: Path, out: Path, n: int) -> dict[str, Any]:
    backend: dict[str, Any] = {"device": a.device, "num_processes": n, "mixed_precision": a.mixed_precision}
    if n > 1:
        backend["strategy"] = a.strategy
    return {
        "version": 1,
        "name": "local_scale",
        "output_dir": str(out),
        "data_store": {"kind": "local", "params": {"root": str(root)}},
        "log_store": {"kind": "jsonl"},
        "run": {
            "name": "sft",
            "seed": 0,
            "data": {"source_kind": "jsonl", "path": "rows.jsonl"},
            "model": {"name": model},
            "backend": {"kind": "local", "params": backend},
            "algorithm": {
                "kind": "sft",
                "params": {
                    "max_steps": a.steps,
                    "batch_size": a.batch_size,
                    "learning_rate": 3e-3,
                    "lora_rank": a.lora_rank,
                    "logging_steps": 1,
                    "max_seq_len": a.max_seq_len,
                    "save_at_fractions": [1.0],
                },
            },
        },
    }


def step_seconds(ends: list[float]) -> float:
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    return statistics.median(gaps[1:])  # the first step pays warm-up


def tokens_per_step(cumulative: list[float]) -> float:
    return statistics.median(b - a for a, b in itertools.pairwise(cumulative))


def run_hand(a: argparse.Namespace, script: Path, model: str, root: Path, out: Path, n: int) -> dict[str, float]:
    args = {**vars(a), "rows": str(root / "rows.jsonl"), "model": model, "out": str(out)}
    # One process is launched plainly, as evsys trains num_processes: 1 in its own process.
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc-per-node={n}"]
    cmd = torchrun if n > 1 else [sys.executable]
    proc = subprocess.run([*cmd, str(script), json.dumps(args)], capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"the hand-launched TRL loop failed (N={n}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    data = json.loads(line.removeprefix("RESULT "))
    return {"step_s": step_seconds(data["ends"]), "tokens_per_step": tokens_per_step(data["tokens"])}


def run_evsys(a: argparse.Namespace, model: str, root: Path, out: Path, n: int) -> dict[str, float]:
    cfg = root / f"{out.name}.json"
    cfg.write_text(json.dumps(evsys_config(a, model, root, out, n)))
    evsys = Path(sys.executable).parent / "evsys"  # the script installed next to this interpreter
    proc = subprocess.run([str(evsys), "run", str(cfg)], capture_output=True, text=True)
    record = json.loads((out / "sft" / "run_result.json").read_text()) if (out / "sft").is_dir() else {}
    if proc.returncode != 0 or record.get("status") != "completed":
        sys.exit(f"evsys run failed (N={n}): {record.get('error')}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    rows = [json.loads(x) for x in (out / "sft" / "logs" / "metrics.jsonl").read_text().splitlines()]
    ends = [r["ts"] for r in rows if "train/loss" in r["metrics"]]
    logged = [r["metrics"]["train/tokens_per_second"] for r in rows if "train/tokens_per_second" in r["metrics"]]
    return {"step_s": step_seconds(ends), "logged_tokens_per_s": statistics.median(logged)}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% CI (t distribution; 0 with one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(values), 2.0)
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch (split over the ranks)")
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--lora-rank", type=int, default=0, help="0: full fine-tuning")
    parser.add_argument("--model", default=None, help="a local HF causal LM dir (default: a tiny Llama built here)")
    parser.add_argument("--hidden", type=int, default=256, help="the built model's width")
    parser.add_argument("--layers", type=int, default=4, help="the built model's depth")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    a = parser.parse_args()
    counts = [int(x) for x in a.processes.split(",")]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = a.model
        if model is None:
            from evsys_local.testing import make_tiny_model

            built = make_tiny_model(root / "model", hidden=a.hidden, layers=a.layers, heads=4, kv_heads=4)
            model = str(built)
        (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        script = root / "hand.py"
        script.write_text(HAND)
        runs: dict[int, list[tuple[dict[str, float], dict[str, float]]]] = {n: [] for n in counts}
        for i, n in itertools.product(range(a.repeats), counts):
            ev = run_evsys(a, model, root, root / f"ev{n}_{i}", n)
            hand = run_hand(a, script, model, root, root / f"hand{n}_{i}", n)
            runs[n].append((ev, hand))
            print(
                f"  repeat {i} N={n}: evsys {ev['step_s'] * 1e3:.1f} ms, hand {hand['step_s'] * 1e3:.1f} ms",
                file=sys.stderr,
            )
        table = {}
        for n, pairs in runs.items():
            ratio, ci = mean_ci([ev["step_s"] / hand["step_s"] for ev, hand in pairs])
            tokens = statistics.median(hand["tokens_per_step"] for _, hand in pairs)
            ev_step = statistics.median(ev["step_s"] for ev, _ in pairs)
            hand_step = statistics.median(hand["step_s"] for _, hand in pairs)
            table[n] = {
                "evsys_step_ms": round(1e3 * ev_step, 2),
                "hand_step_ms": round(1e3 * hand_step, 2),
                "evsys_tokens_per_s": round(tokens / ev_step),
                "hand_tokens_per_s": round(tokens / hand_step),
                "evsys_logged_tokens_per_s": round(statistics.median(ev["logged_tokens_per_s"] for ev, _ in pairs)),
                "step_ratio_mean": round(ratio, 3),
                "step_ratio_ci95": round(ci, 3),
                "n": len(pairs),
            }
        top = table[max(counts)]
        passed = top["step_ratio_mean"] <= 1.10
        report = {
            "name": "local_scale",
            "value": top["step_ratio_mean"],
            "unit": f"x hand-launched TRL step time at N={max(counts)}",
            "budget": "<= 1.10",
            "pass": passed,
            "setup": {
                "model": model if a.model else f"llama hidden={a.hidden} layers={a.layers} (built here)",
                "device": a.device,
                "strategy": a.strategy,
                "mixed_precision": a.mixed_precision,
                "global_batch": a.batch_size,
                "steps": a.steps,
                "lora_rank": a.lora_rank,
            },
            "by_processes": table,
        }
        if a.json:
            print(json.dumps(report))
        else:
            print("| N | evsys step ms | hand step ms | evsys tokens/s | hand tokens/s | ratio (mean ± 95% CI, n) |")
            print("|---|---|---|---|---|---|")
            for n, row in table.items():
                print(
                    f"| {n} | {row['evsys_step_ms']} | {row['hand_step_ms']} | {row['evsys_tokens_per_s']} | "
                    f"{row['hand_tokens_per_s']} | {row['step_ratio_mean']} ± {row['step_ratio_ci95']} (n={row['n']}) |"
                )
            verdict = "PASS" if passed else "FAIL"
            print(f"local_scale: {top['step_ratio_mean']} x hand at N={max(counts)} (budget: <= 1.10, {verdict})")
        sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
