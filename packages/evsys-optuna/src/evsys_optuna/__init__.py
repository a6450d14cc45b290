"""evsys search proposers on Optuna (``search.proposer.kind: tpe``).

``hooks`` registers them and imports no optuna; ``space`` translates evsys's search space into
Optuna's distributions (an ``algorithm.kind`` choice as a conditional subtree); ``proposers`` drives
Optuna's ask/tell over an in-memory study rebuilt from what evsys told it.
"""
