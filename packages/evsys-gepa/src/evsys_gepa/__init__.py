"""evsys-gepa: prompt optimisation with GEPA as an evsys algorithm (``gepa_prompt``).

Importing this package imports no gepa; ``gepa`` loads when a ``gepa_prompt`` run trains.
"""

__version__ = "0.1.0"
