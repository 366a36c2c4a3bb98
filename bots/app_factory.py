"""The CLI's one way to build a bot: core's composition root plus the adapters' admin policies."""

from __future__ import annotations

from typing import Any

from adapters.platforms import platform_parts
from core.app import App
from core.bootstrap import build_app, select_features
from core.settings import BotSettings


def bot_app(settings: BotSettings, **ports: Any) -> App:
    """``build_app`` for ``settings`` with every shipped platform's admin policy (and the
    features a policy needs, e.g. Telegram's group administrators), after the given features."""
    parts = platform_parts(settings)
    given = ports.pop("features", None)
    features = [*(select_features(settings) if given is None else given), *parts.features]
    return build_app(settings, admin_policies=parts.admin_policies, features=features, **ports)
