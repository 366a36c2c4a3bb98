"""The `personabot` command line. Every command has --help.

Exit codes: 0 ok, 1 a runtime failure (message on stderr), 2 bad input or
configuration (file and field named, no traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.platforms import Serve
from bots.common import BOT_ENV, BotOption, bot_file, clean_errors, fail, fix_help_rendering, load_settings, run_async, setup_logging
from core.errors import ConfigError
from core.settings import BotSettings, load_bot_settings

app = typer.Typer(
    name="personabot",
    help="Personalized chatbots for Discord, Telegram and the console.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
persona_app = typer.Typer(help="Persona files.", no_args_is_help=True)
config_app = typer.Typer(help="Bot files.", no_args_is_help=True)
app.add_typer(persona_app, name="persona")
app.add_typer(config_app, name="config")

fix_help_rendering()
UserOption = Annotated[str, typer.Option("--user", "-u", help="Who is talking (history is kept per user).")]

log = logging.getLogger("personabot")


@app.command()
def chat(bot: BotOption = None, user: UserOption = "you", verbose: bool = False) -> None:
    """Chat with a bot in this terminal; replies stream as they are generated."""
    from adapters.console.adapter import serve
    from bots.app_factory import bot_app

    setup_logging(verbose)
    with clean_errors():
        settings = load_settings(bot)
        app = bot_app(settings)

    async def main() -> None:
        async with app as running:
            await serve(running, user)

    run_async(main)


@app.command()
def ask(
    text: Annotated[str, typer.Argument(help="The message to send.")],
    bot: BotOption = None,
    user: UserOption = "you",
    verbose: bool = False,
    key: Annotated[
        str | None,
        typer.Option("--id", help="A unique key for this message (e.g. a UUID); retrying with the same key is safe."),
    ] = None,
    show_prompt: Annotated[
        bool, typer.Option("--show-prompt", help="Print the exact prompt sent to the model, part by part with token counts, on stderr.")
    ] = False,
) -> None:
    """Send one message, print the reply, exit. History persists between calls per user.

    Exit 0: the message is stored and answered (the reply is printed). Any other exit:
    treat it as failed. With --id, a retry never stores or answers the message twice:
    if an earlier call got as far as the answer, that answer is printed again.
    """
    from adapters.console.adapter import ConsoleOutbox, console_event
    from bots.app_factory import bot_app

    setup_logging(verbose)
    if show_prompt:  # core.chat logs the prompt at DEBUG level
        shown = logging.StreamHandler(sys.stderr)
        shown.setFormatter(logging.Formatter("%(message)s"))
        chat_log = logging.getLogger("core.chat")
        chat_log.setLevel(logging.DEBUG)
        chat_log.addHandler(shown)
        chat_log.propagate = False
    with clean_errors():
        settings = load_settings(bot)
        app = bot_app(settings)
    event = console_event(text, user, event_id=key)

    async def main() -> bool:
        outbox = ConsoleOutbox(stream=False)
        async with app as bot_app:
            done = await bot_app.store.turn_by_event(event.event_id) if event.command is None else None
            if done is not None and done[1] is not None:
                typer.echo(done[1].text)  # answered by an earlier call with this key
                return True
            await bot_app.dispatcher.feed(event, outbox)
            outbox.end_line()
            if event.command is not None:
                return True
            done = await bot_app.store.turn_by_event(event.event_id)
            return done is not None and done[1] is not None

    if not run_async(main):
        raise fail("error: the message was not stored and answered" + (" (safe to retry with the same --id)" if key else ""), 1)


@app.command()
def run(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Bot file(s) (TOML); win over --bot. Several run in one process.", show_default=False)
    ] = None,
    bot: BotOption = None,
    verbose: bool = True,
    shard_count: Annotated[int | None, typer.Option(help="Discord shards over all processes (overrides [discord]).")] = None,
    shard_ids: Annotated[str | None, typer.Option(help="This process's Discord shards, e.g. 0,1 (needs a shard count).")] = None,
) -> None:
    """Start every adapter the bot file enables (Telegram, Discord, console) in one process.

    With ``[http] enabled = true`` the process serves /healthz, /readyz and /metrics
    (docs/scaling.md); the Telegram webhook shares that server. Several bot files run side
    by side, sharing one loaded copy of each model they have in common (bots/multi.py).
    """
    if files and len(files) > 1:
        run_several(files, verbose, sharded=shard_count is not None or shard_ids is not None)
        return
    file = files[0] if files else None
    from adapters.platforms import check_secrets
    from bots.app_factory import bot_app
    from bots.shards import with_shards
    from core.bootstrap import select_features
    from core.http.operator import Operator, setup_metrics

    setup_logging(verbose)
    with clean_errors():
        settings = with_shards(load_settings(file or bot), shard_count, shard_ids)
        check_secrets(settings)  # before any model or platform library loads: a missing token exits 2 at once
        starters = adapter_starters(settings)
        operator = Operator.from_settings(settings.http)
        app = bot_app(settings, metrics=operator.metrics, features=[*select_features(settings), setup_metrics])
        console = web_console(settings, operator)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with operator, console, app as running:  # /healthz answers while the model loads
            await running.store.claim_bot_process()  # SQLite: one bot process per file (PostgreSQL: any)
            operator.watch(running)
            if settings.web.enabled:
                console.attach(running, metrics=operator.metrics, health=operator.health)
            for name, _ in starters:  # not ready until each adapter says it is connected
                operator.health.report(name, "connecting")
            tasks = [asyncio.create_task(start(running, stop, operator), name=name) for name, start in starters]
            operator.health.started()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            stop.set()  # one adapter ended (console EOF, fatal error): stop the others cleanly
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if task.exception():
                    raise task.exception()  # type: ignore[misc]

    run_async(main)


def run_several(files: list[Path], verbose: bool, sharded: bool) -> None:
    """``personabot run a.toml b.toml``: every file checked (secrets, one database each) before any model loads."""
    from adapters.platforms import check_secrets
    from bots.multi import check_distinct, run_bots

    setup_logging(verbose)
    with clean_errors():
        if sharded:
            raise ConfigError("--shard-count/--shard-ids: shard one bot per process, not several bot files")
        bots = [load_settings(path) for path in files]
        for settings in bots:
            check_secrets(settings)
            adapter_starters(settings)  # exit 2 now for a bot without adapters
        check_distinct(bots)
    run_async(lambda: run_bots(bots, adapter_starters, web_console))


def web_console(settings: BotSettings, operator: Any) -> Any:
    """``[web] enabled``: the console, on the operator server if there is one (docs/console.md)."""
    if not settings.web.enabled:
        return contextlib.nullcontext()
    from core.web.serve import RunConsole

    return RunConsole(settings, server=operator.server)


def adapter_starters(settings: BotSettings) -> list[tuple[str, Serve]]:
    """The enabled adapters as ``serve(bot, stop)`` coroutines; platform libraries load only if used."""
    from adapters.platforms import server

    starters = [(name, server(name)) for name in settings.enabled_platforms()]
    if not starters:
        raise ConfigError(f"{settings.source}: no adapter enabled (set enabled = true in [telegram], [discord] or [console])")
    return starters


@persona_app.command("validate")
def persona_validate(paths: Annotated[list[Path], typer.Argument(help="Persona TOML files.")]) -> None:
    """Check persona files; prints each problem with file and field."""
    from core.personas import load_persona_file

    problems = 0
    for path in paths:
        try:
            persona = load_persona_file(path)
        except ConfigError as error:
            problems += 1
            typer.secho(str(error), err=True, fg=typer.colors.RED)
        else:
            typer.echo(f"ok: {path} ({persona.name})")
    if problems:
        raise typer.Exit(2)


@persona_app.command("import")
def persona_import(
    card: Annotated[Path, typer.Argument(help="SillyTavern character card: V1/V2 JSON or PNG.")],
    bot: Annotated[
        Path | None,
        typer.Option("--bot", "-b", envvar=BOT_ENV, show_envvar=False,
                     help=f"Write into this bot's persona folder (its first [personas] dirs). Default: ${BOT_ENV}."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the persona TOML. Default: the bot's persona folder, else ./personas.")] = None,
    overwrite: bool = False,
) -> None:
    """Convert a SillyTavern character card into a persona file, and say how a bot reads it."""
    from core.character_cards import import_card

    with clean_errors():
        settings = load_bot_settings(bot) if bot is not None else None
        folders = [settings.resolve_path(folder) for folder in settings.personas.dirs] if settings else []
        result = import_card(card, out or (folders[0] if folders else Path("personas")), overwrite)
    target, name = result.persona_file, result.persona.name
    typer.echo(f"wrote {target.resolve()} (persona {name!r}, {result.persona.title})")
    for warning in result.warnings:
        typer.secho(f"note: {warning}", err=True, fg=typer.colors.YELLOW)

    def where(path: Path) -> str:  # as the bot file names it: relative to the bot file
        return os.path.relpath(path.resolve(), settings.source.parent.resolve()) if settings else str(path)

    if settings is not None and target.parent.resolve() in [folder.resolve() for folder in folders]:
        typer.echo(f"{settings.source} reads it: /persona {name} switches to it, or set [personas] default = \"{name}\"")
    else:
        typer.echo(f"no bot reads {target.parent} yet: add it to the bot file, [personas] dirs = [\"{where(target.parent)}\"]"
                   + ("" if settings else ", or import with --bot FILE to write into a bot's persona folder"))
    if result.knowledge_file is not None:
        typer.echo(f"wrote the card's lorebook to {result.knowledge_file.resolve()}; the knowledge plugin answers from it "
                   f"(for every persona of the bot) with [plugins] enabled = [\"knowledge\"] and "
                   f"[plugins.knowledge] folder = \"{where(result.knowledge_file.parent)}\"")


@config_app.command("show")
def config_show(
    files: Annotated[list[Path] | None, typer.Argument(help="Bot file(s) (TOML); win over --bot.", show_default=False)] = None,
    bot: BotOption = None,
) -> None:
    """Print the validated bot file as JSON (secrets are never part of it), with the database it opens.
    Several files: each after a header line naming it; all are checked before any is printed."""
    from bots.doctor import database_location

    paths = files or [bot_file(bot)]
    loaded, problems = [], []
    for path in paths:
        try:
            loaded.append((path, load_bot_settings(path)))
        except ConfigError as error:
            problems.append(f"error: {error}")
    if problems:
        raise fail("\n".join(problems), 2)
    for path, settings in loaded:
        shown = settings.redacted_dump()
        location = database_location(settings)  # resolved: the file or the URL in use
        shown["storage"]["database"] = str(location)
        if not isinstance(location, Path):
            shown["storage"]["url"] = location  # without the password a URL may carry
        if len(loaded) > 1:
            typer.echo(f"# {path}")
        typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))


def _register_optional_commands() -> None:
    """Sub-commands contributed by other modules (training, adapters, privacy, plugins)."""
    from bots import access_cli, discord_cli, doctor, init_cli, plugins_cli, storage_cli, training_cli, users_cli, web_cli

    for module in (init_cli, doctor, training_cli, discord_cli, plugins_cli, users_cli, access_cli, storage_cli, web_cli):
        module.register(app)


def main() -> None:
    _register_optional_commands()
    app()


if __name__ == "__main__":
    main()
