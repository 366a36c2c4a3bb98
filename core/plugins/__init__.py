"""The plugin API: extend a bot without forking it. See docs/plugins.md.

    from core.plugins import Plugin, Turn, keyword

    plugin = Plugin("hello", description="Greets people")

    @plugin.on_message(keyword("hello", "你好"))
    async def greet(turn: Turn) -> str:
        return f"Hello, {turn.event.user_display_name or 'friend'}!"
"""

from core.commands import ArgSpec
from core.plugins.api import CONTINUE, Job, Plugin, Trigger, Turn, keyword, predicate, regex
from core.catalog import CatalogItem
from core.i18n import N_, _, _n
from core.i18n import t as translate
from core.plugins.context import PluginContext, PluginStorage
from core.plugins.feature import setup_plugins
from core.plugins.manager import PluginManager, PluginStatus
from core.personalization.scoring import smoothed_similarity
from core.prompt import PromptSection

__all__ = [
    "CONTINUE",
    "N_",
    "_",
    "_n",
    "ArgSpec",
    "CatalogItem",
    "Job",
    "Plugin",
    "PluginContext",
    "PluginManager",
    "PluginStatus",
    "PluginStorage",
    "PromptSection",
    "Trigger",
    "Turn",
    "keyword",
    "predicate",
    "regex",
    "translate",
    "smoothed_similarity",
    "setup_plugins",
]
