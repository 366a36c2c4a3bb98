"""What every command shares: ``--bot`` with one default, the error and logging
conventions, and help rendered as written (flags as flags, brackets kept). Command modules import this, never
``bots.cli`` (which imports them).

Every command that works on a bot takes ``--bot FILE``; without it, ``$PERSONABOT_BOT``,
else the bundled demo bot (so a container or a shell sets the bot once). Exit codes:
0 ok, 1 a runtime failure (message on stderr), 2 bad input or configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from core.errors import ConfigError, PersonabotError
from core.settings import BotSettings, default_bot_file, load_bot_settings

T = TypeVar("T")

BOT_ENV = "PERSONABOT_BOT"
BOT_HELP = f"Bot file (TOML). Default: ${BOT_ENV}, else the bundled demo bot."

BotOption = Annotated[Path | None, typer.Option("--bot", "-b", envvar=BOT_ENV, show_envvar=False, help=BOT_HELP)]


def bot_file(given: Path | None) -> Path:
    """The bot file a command works on: ``--bot``/``$PERSONABOT_BOT`` (typer read both), else the demo."""
    return given or default_bot_file()


def load_settings(bot: Path | None) -> BotSettings:
    return load_bot_settings(bot_file(bot))


def fail(message: str, code: int) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Turn our exceptions into one line on stderr and the documented exit code."""
    try:
        yield
    except ConfigError as error:
        raise fail(f"error: {error}", 2) from None
    except PersonabotError as error:
        raise fail(f"error: {error}", 1) from None


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    with clean_errors():
        return asyncio.run(factory())


def setup_logging(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:  # read by huggingface_hub at import, which happens later (model load)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for noisy in ("httpx", "transformers", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)


def fix_help_rendering() -> None:
    """Two defects of typer 0.29's rich help, fixed once when the CLI is imported:

    - every flag showed a ``<bool>`` type (``--help <bool>``); a flag takes no value,
      so it shows none, as click's plain help does;
    - help text was read as Rich markup, so ``[http]`` or ``[discord]`` vanished from
      it; help text here is plain, brackets are printed as written.
    """
    global _help_fixed
    if _help_fixed:
        return
    from rich.markup import escape
    from typer import rich_utils
    from typer.core import TyperOption

    shown, make_text = TyperOption.display_type_rich, rich_utils._make_rich_text

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    def make_rich_text(*, text: str, style: str = "", markup_mode: str):  # noqa: ANN202 - rich's Text or Markdown
        return make_text(text=escape(text) if markup_mode == "rich" else text, style=style, markup_mode=markup_mode)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    rich_utils._make_rich_text = make_rich_text
    _help_fixed = True


_help_fixed = False
