"""A hand-written training loop recorded through ExperimentRun (reads EVSYS_API_URL/_KEY/_PROJECT_ID).

With EVSYS_OFFLINE=1 it records only to the local mirror; `evsys dashboard sync` uploads it later.
"""

from __future__ import annotations

import math

from evsys_sdk import DashboardClient, ExperimentRun

with DashboardClient() as client:
    for lr in (1e-4, 3e-4):
        with ExperimentRun(
            client,
            experiment_name="hand_written_loop",
            hypothesis="a 3x learning rate converges faster",
            recipe_kind="sft",
            run_config={"lr": lr},
        ) as run:
            for step in range(1, 501):
                run.log_step(step, loss=math.exp(-step * lr * 20) + 0.05, learning_rate=lr)
            score = 1 - math.exp(-lr * 10_000)
            run.log_eval(metrics={"pass_rate": score}, benchmark_id="toy")
            run.add_checkpoint(uri=f"file:///tmp/ckpt-lr{lr}", label="final", is_final=True)
            run.log_predictions([{"prompt": "2+2?", "completion": "4", "correct": True}])
            run.set_best_score(score)
            run.set_conclusion(f"lr={lr}: pass_rate {score:.3f}")
print("recorded; see the dashboard")
