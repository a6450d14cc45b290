"""The bottom layer: errors, logging, atomic file writes, lazy names, install hints, budgets, statistics.

Imports nothing else of core (the layers are listed in the package README, Architecture)."""
