"""evsys-tinker: SFT, self-distillation and RL on hosted Tinker, Tinker inference, an offline emulator.

Importing this package imports neither tinker nor numpy; evsys finds it through the
``evsys_sdk.plugins`` entry point ``tinker`` (``evsys_tinker.hooks``).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
