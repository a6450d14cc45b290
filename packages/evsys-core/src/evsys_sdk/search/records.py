"""The search's records in the tracking store: an append-only journal, and the store its arms see.

The search is one experiment record; each candidate is a replicate group of it (one run per seed). Its
own state is a journal of events in the same SQLite store (``search_events``): every proposal (before it
is dispatched), every rejection, every scored candidate, the confirmation and the end. Replaying the
journal rebuilds the search exactly; a store that cannot be read back (the dashboard) records the
experiment, groups and runs while the journal stays in the local workspace store.

Groups and runs are created once per name: a resumed generation finds the rows its first attempt made
(the journal remembers their ids; in a LocalStore a row and its journal event commit in one transaction,
so a Ctrl-C between them leaves no row the journal does not know), so the store never holds an arm
twice; in a LocalStore what the first attempt recorded under the row is replaced by the arm's records
(a dashboard may keep both copies of the curves of an arm that finished in an interrupted generation).

After every generation the search also writes a summary of itself onto its experiment record (the extra
``search``, ``search_record``) through the store's ordinary experiment update, so a store that never sees
the journal (the dashboard's search page) shows the candidates, their lineage, the rejections and the spend.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from evsys_sdk.tracking.store import LocalStore, json_text

if TYPE_CHECKING:
    from evsys_sdk.search.engine import SearchResult
    from evsys_sdk.search.space import Space
    from evsys_sdk.spec.search import BudgetSpec

# The summary on the experiment record stays well under a tracking server's 1 MiB per field.
MAX_RECORD_BYTES = 512 * 1024
MAX_RECORD_REJECTED = 100  # the latest rejections kept (``spent.rejected`` counts them all)
MAX_ERROR_CHARS = 300

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_events (
    experiment_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (experiment_id, seq));
"""


class Journal:
    """The events of one search, in order."""

    def __init__(self, db: LocalStore, experiment_id: str):
        db.extend_schema(_SCHEMA)
        self.db, self.experiment_id = db, experiment_id
        self.events: list[tuple[str, dict[str, Any]]] = [
            (r["kind"], r["payload"])  # the store decodes its JSON columns
            for r in db.query(
                "SELECT kind, payload FROM search_events WHERE experiment_id = ? ORDER BY seq", (experiment_id,)
            )
        ]

    def append(self, *events: tuple[str, dict[str, Any]]) -> None:
        """Events written together (one transaction: all of them or none survive a crash)."""
        now, start = time.time(), len(self.events)
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO search_events VALUES (?, ?, ?, ?, ?)",
                [(self.experiment_id, start + i, k, json_text(p), now) for i, (k, p) in enumerate(events)],
            )
        self.events.extend(events)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [p for k, p in self.events if k == kind]


def find_search(db: LocalStore, name_or_id: str) -> str | None:
    """The newest search recorded under this experiment name (or with this id)."""
    db.extend_schema(_SCHEMA)
    row = db.one(
        "SELECT s.experiment_id FROM search_events s WHERE s.seq = 0 AND (s.experiment_id = ?"
        " OR json_extract(s.payload, '$.name') = ?) ORDER BY s.created_at DESC, s.rowid DESC LIMIT 1",
        (name_or_id, name_or_id),
    )
    return str(row["experiment_id"]) if row else None


def list_searches(db: LocalStore) -> list[str]:
    db.extend_schema(_SCHEMA)
    return [
        str(r["name"])
        for r in db.query(
            "SELECT DISTINCT json_extract(payload, '$.name') AS name FROM search_events WHERE seq = 0 ORDER BY name"
        )
    ]


class ArmRecords:
    """The tracking store as a generation's ``Experiment`` sees it: its runs go into the search's
    record, into the candidate's group, each created once (a re-dispatched arm reuses its row)."""

    def __init__(self, store: Any, experiment_id: str, journal: Journal):
        self._store, self._experiment_id, self._journal = store, experiment_id, journal
        self._groups = {p["name"]: p["id"] for p in journal.of("group")}
        self._runs = {p["name"]: p["id"] for p in journal.of("run")}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def create_experiment(self, **fields: Any) -> dict[str, Any]:
        return {"id": self._experiment_id}

    def update_experiment(self, experiment_id: str, **patch: Any) -> dict[str, Any]:
        return {"id": experiment_id}  # the search concludes its own record

    @contextmanager
    def _with_journal(self) -> Iterator[None]:
        """A row created in here commits together with its journal event when both live in one store."""
        if self._store is self._journal.db:
            with self._journal.db.transaction():
                yield
        else:
            yield

    def create_group(self, experiment_id: str, name: str) -> dict[str, Any]:
        if name not in self._groups:
            with self._with_journal():
                group_id = str(self._store.create_group(self._experiment_id, name)["id"])
                self._journal.append(("group", {"name": name, "id": group_id}))
            self._groups[name] = group_id
        return {"id": self._groups[name], "name": name}

    def find_experiment(self, name_or_id: str) -> None:
        """A generation is no experiment of its own: nothing to link a resumed one to."""
        return None

    def create_run(self, *, experiment_id: str, **fields: Any) -> dict[str, Any]:
        name = fields.get("name")
        if name in self._runs:
            run_id = self._runs[name]
            if isinstance(self._store, LocalStore):
                # The arm records itself again (a resumed arm brings back its curves and evals): what its
                # first attempt recorded goes, so the store holds it once.
                with self._store.transaction() as tx:
                    for table in ("step_metrics", "evals", "checkpoints", "predictions"):
                        tx.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                    self._store.update_run(run_id, status=fields.get("status", "running"))
            else:
                self._store.update_run(run_id, status=fields.get("status", "running"))
        else:
            with self._with_journal():
                run_id = str(self._store.create_run(experiment_id=self._experiment_id, **fields)["id"])
                self._journal.append(("run", {"name": name, "id": run_id}))
            self._runs[str(name)] = run_id
        return {"id": self._runs[str(name)], **fields}

    def worker_opener(self) -> Any:
        """How a worker process reopens the store for reads (datasets by id)."""
        if isinstance(self._store, LocalStore):
            return partial(LocalStore, self._store.path)
        opener = getattr(self._store, "worker_opener", None)
        return opener() if callable(opener) else None


def search_record(result: SearchResult, space: Space, budget: BudgetSpec) -> dict[str, Any]:
    """The search as its experiment record holds it (the extra ``search``): objective, space (each axis's
    distribution and base value), budget and spend, every candidate (lineage, patch, generation, scores,
    mean and 95% CI, arm seconds, error), the latest rejections and the confirmation. A search too large
    for ``MAX_RECORD_BYTES`` keeps its newest candidates and the best (``omitted`` counts the others)."""
    candidates = [
        {
            **c.to_json(),
            "generation": c.generation,
            "seconds": round(c.seconds, 3),
            "error": c.error[:MAX_ERROR_CHARS] if c.error else None,
        }
        for c in result.candidates
    ]
    record: dict[str, Any] = {
        "name": result.name,
        "metric": result.metric,
        "direction": result.direction,
        "space": {
            a.path: {"kind": a.kind, "values": _values(a.dist), "base": space.base_patch[a.path]} for a in space.axes
        },
        "budget": budget.model_dump(exclude_none=True),
        "spent": dict(result.spent),
        "best": result.best.id if result.best else None,
        "confirm": result.confirm,
        "candidates": candidates,
        "rejected": [
            {"patch": r["patch"], "reason": str(r["reason"])[:MAX_ERROR_CHARS]}
            for r in result.rejected[-MAX_RECORD_REJECTED:]
        ],
        "omitted": 0,
    }
    while len(json.dumps(record, default=str)) > MAX_RECORD_BYTES and len(record["candidates"]) > 1:
        drop = len(record["candidates"]) // 2
        kept = [c for i, c in enumerate(record["candidates"]) if i >= drop or c["id"] == record["best"]]
        record["omitted"] += len(record["candidates"]) - len(kept)
        record["candidates"] = kept
    return record


def _values(dist: Any) -> list[Any]:
    """An axis's range ([low, high], as given) or its choices."""
    return list(getattr(dist, dist.kind))
