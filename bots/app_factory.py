"""The CLI's one way to build a bot: core's composition root plus the adapters' admin policies."""

from __future__ import annotations

from typing import Any

from adapters.platforms import admin_policies
from core.app import App
from core.bootstrap import build_app
from core.settings import BotSettings


def bot_app(settings: BotSettings, **ports: Any) -> App:
    """``build_app`` for ``settings`` with every shipped platform's admin policy."""
    return build_app(settings, admin_policies=admin_policies(settings), **ports)
