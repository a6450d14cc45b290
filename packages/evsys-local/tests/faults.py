"""Trainer callbacks the distributed tests ship to every rank (importable there: the tests put this
folder on PYTHONPATH), so a fault happens inside a real rank of a real job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class CrashAt(TrainerCallback):  # type: ignore[misc]
    """Rank ``rank`` raises at the end of step ``step``; with ``once``, only while that file is absent
    (the file is written first, so a resumed run trains through)."""

    def __init__(self, rank: int, step: int, once: str | None = None) -> None:
        self.rank, self.step, self.once = rank, step, once

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if int(os.environ.get("RANK", "0")) != self.rank or state.global_step != self.step:
            return
        if self.once is not None:
            if Path(self.once).exists():
                return
            Path(self.once).write_text("crashed", encoding="utf-8")
        raise RuntimeError(f"injected fault on rank {self.rank} at step {self.step}")
