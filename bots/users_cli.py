"""Operator commands for a user's data: ``personabot users export|forget USER_ID --bot FILE``.

They do exactly what the user's own /export and /forget do (core.personalization.privacy),
on the bot's database, without loading a model, and are audited as ``cli`` (an export
names the user it exported; a forget writes the forget's one anonymous record). Linked identities are one person and
are covered too, and so is what the bot file's enabled plugins keep (their export and
forget hooks run; the plugins are not set up). ``register(app)`` adds the ``users`` group to the main typer app;
also runnable alone: ``python -m bots.users_cli --help``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bots.common import BotOption, bot_file
from core.errors import ConfigError, PersonabotError
from core.events import UserRef

CLI_ACTOR = "cli"  # who these commands are audited as (the operator at the shell)
UserArg = Annotated[str, typer.Argument(help="Platform-qualified user id, e.g. telegram:123456 or discord:98765.")]


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _run(bot: Path | None, user_id: str, work: Any) -> Any:
    """Validate the inputs, open the bot's store, run ``work(store, user, holders)``; errors exit 1 or 2.

    ``holders`` are the features that keep user data (the bot file's plugins, loaded for
    their export and forget hooks only); the model is never loaded.
    """
    from bots.app_factory import bot_app
    from bots.doctor import database_location
    from core.generation.scripted import ScriptedGenerator
    from core.plugins.feature import setup_plugin_privacy
    from core.settings import load_bot_settings

    try:
        user = UserRef.parse(user_id).qualified
    except ValueError:
        raise _fail(f"bad user id {user_id!r}: expected platform:id, e.g. telegram:123", 2) from None
    try:
        settings = load_bot_settings(bot_file(bot))
        path = database_location(settings)
        if isinstance(path, Path) and not path.is_file():
            raise ConfigError(f"{settings.source}: no database at {path} (has this bot run yet?)")

        app = bot_app(settings, generator=ScriptedGenerator([""]), features=[setup_plugin_privacy])

        async def main() -> Any:
            async with app as running:
                return await work(running.store, user, running.seams.user_data)

        return asyncio.run(main())
    except ConfigError as error:
        raise _fail(str(error), 2) from None
    except PersonabotError as error:
        raise _fail(str(error), 1) from None


def _summary(data: dict[str, Any]) -> dict[str, int]:
    identities = data["identities"]
    return {
        "messages": sum(len(i["messages"]) for i in identities),
        "memories": sum(len(i["memories"]) for i in identities),
        "audit entries": sum(len(i["audit"]) for i in identities),
    }


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="A user's stored data: privacy requests (export, forget).", no_args_is_help=True)
    app.add_typer(users_app, name="users")

    @users_app.command("export")
    def export(
        user_id: UserArg,
        bot: BotOption = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
    ) -> None:
        """Everything stored about a user (and linked identities) as JSON: what their /export sends."""
        from core.personalization.privacy import export_json, export_user_data

        async def work(store: Any, user: str, holders: Any) -> dict[str, Any]:
            data = await export_user_data(store, user, holders)
            await store.audit(CLI_ACTOR, "export", user, detail={"identities": len(data["identities"])})
            return data

        data = _run(bot, user_id, work)
        payload = export_json(data)
        if out is None:
            sys.stdout.buffer.write(payload + b"\n")
            sys.stdout.flush()
        else:
            out.write_bytes(payload)
            typer.echo(f"wrote {out}", err=True)
        if not any(identity["user"] or identity["messages"] or identity["memories"] for identity in data["identities"]):
            typer.echo(f"note: nothing is stored about {data['user_id']}", err=True)

    @users_app.command("forget")
    def forget(
        user_id: UserArg,
        bot: BotOption = None,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    ) -> None:
        """Delete everything stored about a user (and linked identities): what their /forget does.

        A bot running on the same database keeps answering a reply it is already
        generating for that user; stop it first if that matters.
        """
        from core.personalization.privacy import export_user_data, forget_user_data

        data = _run(bot, user_id, lambda store, user, holders: export_user_data(store, user))
        ids = [data["user_id"], *data["linked_identities"]]
        counts = ", ".join(f"{n} {what}" for what, n in _summary(data).items())
        typer.echo(f"{', '.join(ids)}: {counts}", err=True)
        if not yes:
            typer.confirm("Delete all of it permanently?", abort=True, err=True)

        async def work(store: Any, user: str, holders: Any) -> tuple[list[str], dict[str, int]]:
            return await forget_user_data(store, user, actor=CLI_ACTOR, holders=holders)

        forgotten, rows = _run(bot, user_id, work)
        typer.echo(json.dumps({"forgotten": forgotten, "deleted_rows": rows}, ensure_ascii=False))


if __name__ == "__main__":
    standalone = typer.Typer(no_args_is_help=True, add_completion=False)
    register(standalone)
    standalone()
