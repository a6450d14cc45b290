"""Search overhead: proposer + bookkeeping time per candidate, 500 candidates told.

One ``mutate`` search of 500 candidates, one in flight, on the mock landscape's three axes; arms are
the objective itself (``_evolve.InstantSearch``), so what is timed is everything the search adds per
candidate: the ask over the growing history, validating the proposal (run schema and the extension's
params), the journal writes (a SQLite transaction each), the ledger, promotion and tell. The figure is
the p95 over the 500 candidates, with the median and the last 50 (history of 450+) as details.
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

    times: list[float]

    def _propose(self, n: int) -> Any:
        self._t0 = time.perf_counter()
        return super()._propose(n)

    def _run_generation(self, executor: Any, pending: Any, *, resume: bool) -> None:
        super()._run_generation(executor, pending, resume=resume)
        self.times.append((time.perf_counter() - self._t0) * 1000 / len(pending))


def main() -> None:
    cfg = config({"kind": "sft", "params": {}}, MOCK_SPACE, "mutate", 0, 1)
    cfg["search"].update(budget={"candidates": N}, parallel=1)
    TimedSearch.times = []
    search = run_search(cfg, mock_objective, TimedSearch)
    times = TimedSearch.times
    assert len(times) == N == len(search.state.candidates)
    p95 = statistics.quantiles(times, n=20)[-1]
    report(
        "evolve_overhead_p95",
        p95,
        "ms/candidate",
        "<",
        10.0,
        {
            "median": f"{statistics.median(times):.2f} ms",
            "p95 of the last 50 (450+ told)": f"{statistics.quantiles(times[-50:], n=20)[-1]:.2f} ms",
            "max": f"{max(times):.2f} ms",
            "candidates": N,
        },
    )


if __name__ == "__main__":
    main()
