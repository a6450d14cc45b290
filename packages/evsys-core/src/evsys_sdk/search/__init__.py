"""``evsys evolve``: search over whole recipes inside the extensions' exported schemas.

The ``search:`` block's models live in ``evsys_sdk.spec.search``; here: ``space`` (axes, schema checks,
``space: auto``), ``proposers`` (the ``proposer`` kind: ``random``, ``mutate``), ``ledger`` (reserve-then-settle
budget), ``promotion`` (seed-mean scoring and the promotion rule), ``records`` (the journal and the arms' records
in the tracking store), ``engine`` (the loop, ``evolve``), ``fidelity`` (rungs on in-loop validation: ASHA);
``evsys evolve`` is ``evsys_sdk.cli.search``.
Names resolve lazily: importing the block's models loads nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsys_sdk.base.lazy import lazy_getattr

if TYPE_CHECKING:
    from evsys_sdk.search.engine import Candidate, SearchResult, evolve
    from evsys_sdk.search.proposers import Proposal, Proposer
    from evsys_sdk.spec.search import SearchConfig

_WHERE = {
    "SearchConfig": "evsys_sdk.spec.search",
    "Candidate": "evsys_sdk.search.engine",
    "SearchResult": "evsys_sdk.search.engine",
    "evolve": "evsys_sdk.search.engine",
    "Proposal": "evsys_sdk.search.proposers",
    "Proposer": "evsys_sdk.search.proposers",
}
__all__ = ["Candidate", "Proposal", "Proposer", "SearchConfig", "SearchResult", "evolve"]
__getattr__ = lazy_getattr(__name__, _WHERE)
