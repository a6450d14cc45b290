"""Helpers for tests of code built on evsys-local."""

from __future__ import annotations

from evsys_local.tiny import make_tiny_model

__all__ = ["make_tiny_model"]
