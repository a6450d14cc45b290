"""Search overhead: proposer + bookkeeping time per candidate, 500 candidates told.

One ``mutate`` search of 500 candidates, one in flight, on the mock landscape's three axes; arms are
the objective itself (``_evolve.InstantSearch``), so what is timed is everything the search adds per
candidate: the ask over the growing history, validating the proposal (run schema and the extension's
params), the journal writes (a SQLite transaction each), the ledger, promotion and tell. The figure is
the p95 of wall time over the 500 candidates; the details give the median, the last 50 (history of
450+) and the same figures in CPU time of this process (steadier when other work shares the cores).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from _bench import report
from _evolve import InstantSearch, mock_objective, run_search
from evolve_quality import MOCK_SPACE, config

N = 500


class TimedSearch(InstantSearch):
    """Times each generation: from the ask to the scored candidate told."""

    times: list[float]  # wall ms per candidate
    cpu: list[float]  # CPU ms of this process per candidate: steadier when other work shares the cores

    def _next_generation(self) -> Any:
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return super()._next_generation()

    def _run_generation(self, executor: Any, pending: Any) -> None:
        super()._run_generation(executor, pending)
        self.times.append((time.perf_counter() - self._t0) * 1000 / len(pending))
        self.cpu.append((time.process_time() - self._c0) * 1000 / len(pending))


def main() -> None:
    cfg = config({"kind": "sft", "params": {}}, MOCK_SPACE, "mutate", 0, 1)
    cfg["search"].update(budget={"candidates": N}, parallel=1)
    TimedSearch.times, TimedSearch.cpu = [], []
    search = run_search(cfg, mock_objective, TimedSearch)
    wall, cpu = TimedSearch.times, TimedSearch.cpu
    assert len(wall) == N == len(search.state.candidates)

    def p95(xs: list[float]) -> float:
        return statistics.quantiles(xs, n=20)[-1]

    report(
        "evolve_overhead_p95",
        p95(wall),
        "ms/candidate",
        "<",
        10.0,
        {
            "wall median / p95 / last 50 p95 / max": f"{statistics.median(wall):.2f} / {p95(wall):.2f} / "
            f"{p95(wall[-50:]):.2f} / {max(wall):.2f} ms",
            "CPU median / p95 / last 50 p95": f"{statistics.median(cpu):.2f} / {p95(cpu):.2f} / "
            f"{p95(cpu[-50:]):.2f} ms",
            "candidates": N,
        },
    )


if __name__ == "__main__":
    main()
