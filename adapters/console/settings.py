"""The ``[console]`` section of a bot file (registered with core in adapters/platforms.py)."""

from __future__ import annotations



from core.settings import PlatformSection


class ConsoleSettings(PlatformSection):
    enabled: bool = True
