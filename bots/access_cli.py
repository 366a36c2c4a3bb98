"""Operator commands for who may talk to the bot: ``personabot access approve CODE --bot FILE``.

The same approval as an admin's ``/admin approve CODE`` (core/access.py), on the bot's
database and without loading a model; audited with the actor ``cli:operator``. A running
bot sees the approval on the user's next message.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bots.common import BotOption, bot_file
from core.errors import ConfigError, PersonabotError

ACTOR = "cli:operator"


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def approve_code(bot: Path | None, code: str) -> str:
    """The approved user; exits 1 for a refused code, 2 for a bad bot file."""
    from bots.doctor import database_location
    from core.access import Pairing
    from core.bootstrap import open_store
    from core.settings import load_bot_settings

    try:
        settings = load_bot_settings(bot_file(bot))
        if not settings.access.pairing:
            raise ConfigError(f"{settings.source}: access.pairing is off, so there are no codes to approve")
        path = database_location(settings)
        if isinstance(path, Path) and not path.is_file():
            raise ConfigError(f"{settings.source}: no database at {path} (has this bot run yet?)")

        async def main() -> str | None:
            async with await open_store(settings) as store:
                result = await Pairing(store, settings.access.pairing_code_ttl_s).approve(code, ACTOR)
            if result.user is None:
                raise _fail(f"code refused ({result.reason}): it is wrong, expired or already used", 1)
            return result.user

        return asyncio.run(main())
    except ConfigError as error:
        raise _fail(str(error), 2) from None
    except PersonabotError as error:
        raise _fail(str(error), 1) from None


def register(app: typer.Typer) -> None:
    access_app = typer.Typer(help="Who may talk to the bot: pairing approvals.", no_args_is_help=True)
    app.add_typer(access_app, name="access")

    @access_app.command("approve")
    def approve(
        code: Annotated[str, typer.Argument(help="The pairing code the user got, e.g. ABCD-EFGH.")],
        bot: BotOption = None,
    ) -> None:
        """Let a user in with the code the bot gave them in a DM (what /admin approve does)."""
        typer.echo(f"approved {approve_code(bot, code)}")


if __name__ == "__main__":
    standalone = typer.Typer(no_args_is_help=True, add_completion=False)
    register(standalone)
    standalone()
