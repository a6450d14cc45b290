"""Offline Tinker: ``FakeTinker`` emulates the client seam with a tiny numpy model (see ``_fake``)."""

from __future__ import annotations

from evsys_tinker.testing._fake import FakeSamplingClient, FakeTinker, FakeTrainingClient, api_error
from evsys_tinker.testing._tokenizer import emulator_tokenizer

__all__ = ["FakeSamplingClient", "FakeTinker", "FakeTrainingClient", "api_error", "emulator_tokenizer"]
