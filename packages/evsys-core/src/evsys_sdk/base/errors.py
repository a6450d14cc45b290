"""The user-facing error hierarchy: the CLI prints these without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvsysError(Exception):
    """Base of every error caused by user input (config, plugins, data)."""


class ConfigError(EvsysError, ValueError):
    """An invalid experiment config; ``problems`` holds one line per problem.

    Each problem reads ``file:line:col: dotted.key: message`` when its location is known.
    """

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PluginError(EvsysError):
    """A plugin failed to load or two plugins claim the same name."""


class UnknownKindError(EvsysError, KeyError):
    """A registry look-up for a name nobody registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` did you mean 'x'?`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
