"""What every command shares: ``--bot`` with one default, and help that shows flags as flags.

Every command that works on a bot takes ``--bot FILE``; without it, ``$PERSONABOT_BOT``,
else the bundled demo bot (so a container or a shell sets the bot once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.settings import default_bot_file

BOT_ENV = "PERSONABOT_BOT"
BOT_HELP = f"Bot file (TOML). Default: ${BOT_ENV}, else the bundled demo bot."

BotOption = Annotated[Path | None, typer.Option("--bot", "-b", envvar=BOT_ENV, show_envvar=False, help=BOT_HELP)]


def bot_file(given: Path | None) -> Path:
    """The bot file a command works on: ``--bot``/``$PERSONABOT_BOT`` (typer read both), else the demo."""
    return given or default_bot_file()


def show_flags_as_flags() -> None:
    """typer 0.29's rich help prints a ``<bool>`` type after every flag (``--help <bool>``,
    ``--verbose --no-verbose <bool>``); a flag takes no value, so show no type, as
    click's plain help does. Applied once, when the CLI is imported."""
    global _flags_shown
    if _flags_shown:
        return
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    _flags_shown = True


_flags_shown = False
