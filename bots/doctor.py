"""``personabot doctor``: every check a deployment needs, in order, one line each.

    ok    bot file        bots/telegram.toml (bot 'telegram-demo')
    fail  telegram token  token refused (401 Unauthorized) -> check the token with @BotFather (/token)

Each check runs even when an earlier one failed, unless it needs what failed (then it
says ``skip`` and why). Secrets are read to be tried, never printed: a line names the
variable, not its value. Exit 0 only when every line is ok (or skip because not used).
``personabot healthcheck`` is the container probe: ``GET /healthz`` when ``[http]`` is
on, else the bot file and its database, read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import httpx
import typer

from bots.common import BotOption, bot_file, setup_logging
from core.errors import ConfigError, PersonabotError
from core.settings import BotSettings, load_bot_settings

Status = Literal["ok", "fail", "skip"]
TELEGRAM_API = "https://api.telegram.org"
DISCORD_API = "https://discord.com"


@dataclass(frozen=True)
class Line:
    check: str
    status: Status
    detail: str
    fix: str = ""  # what to do, on a failure

    def render(self) -> str:
        return f"{self.status:<5} {self.check:<15} {self.detail}" + (f" -> {self.fix}" if self.fix else "")


class Failed(Exception):
    """A check's short cause and what to do about it."""

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


# -- the checks, in the order they run ----------------------------------------------------


def check_personas(settings: BotSettings) -> str:
    from core.bootstrap import load_personas

    library = load_personas(settings)
    return f"{len(library.names())} personas, default {settings.personas.default!r}"


def check_features(settings: BotSettings) -> str:
    """The sections features own, validated as they will be at start (and the plugins found)."""
    from core.bootstrap import select_features
    from core.personalization.settings import load_personalization
    from core.plugins.loader import read_section, resolve, validate_config
    from core.safety.config import SafetySettings

    select_features(settings)
    SafetySettings.from_bot(settings.safety, settings.source)
    load_personalization(settings)
    section = read_section(settings)
    for source in resolve(settings, section):
        plugin, _ = source.load()
        validate_config(plugin, section.configs().get(source.name, {}), str(settings.source))
    return "plugins: " + (", ".join(section.enabled) if section.enabled else "none")


def needed_env(settings: BotSettings) -> list[str]:
    names = [name for platform in settings.enabled_platforms() for name in settings.platforms[platform].secret_envs()]
    if settings.model.backend == "openai" and settings.model.api_key_env:
        names.append(settings.model.api_key_env)
    if settings.storage.password_env:
        names.append(settings.storage.password_env)
    return list(dict.fromkeys(names))


def check_env(settings: BotSettings) -> str:
    names = needed_env(settings)
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise Failed(f"not set: {', '.join(missing)}", "export them, or fill in .env (see .env.example) and load it")
    return f"set: {', '.join(names)}" if names else "none needed"


def database_location(settings: BotSettings) -> Path | str:
    """The database the bot opens (as core.storage.open_store picks it): a SQLite file, or
    a PostgreSQL URL without its password."""
    url = settings.storage.url
    if url is None:
        return settings.database_path()
    if url.startswith("sqlite:"):
        return settings.resolve_path(url[len("sqlite:"):])
    from core.storage.postgres.engine import redacted

    return redacted(url)


async def check_database(settings: BotSettings, timeout: float) -> str:
    location = database_location(settings)
    return check_sqlite(location) if isinstance(location, Path) else await check_postgres(settings, location, timeout)


def sqlite_schema(path: Path) -> tuple[int, int, int]:
    """(user_version, application_id, tables) of a SQLite file, read-only (a running bot keeps it open)."""
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
        pragma = lambda name: db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        return pragma("user_version"), pragma("application_id"), db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]


def check_sqlite(path: Path) -> str:
    from core.storage.sqlite.migrations import APPLICATION_ID, latest_version

    latest = latest_version()
    if not path.exists():
        folder = next(parent for parent in [path.parent, *path.parent.parents] if parent.exists())
        if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
            raise Failed(f"{path}: cannot be created ({folder} is not a writable folder)",
                         "set [storage] path or PERSONABOT_DATA_DIR to a writable place")
        return f"{path}: none yet, created at the first start (schema v{latest})"
    try:
        version, app_id, tables = sqlite_schema(path)
    except sqlite3.Error as error:
        raise Failed(f"{path}: cannot be read ({error})", "check the file and its permissions, or set [storage] path") from None
    if app_id not in (0, APPLICATION_ID) or (version == 0 and tables):
        raise Failed(f"{path}: not a personabot database", "point [storage] path at the bot's database")
    return _schema_line(str(path), version, latest)


def _schema_line(where: str, version: int, latest: int) -> str:
    if version > latest:
        raise Failed(f"{where}: schema v{version} is newer than this personabot knows (v{latest})", "upgrade personabot")
    if version < latest:
        return f"{where}: schema v{version}, upgraded to v{latest} at the next start"
    return f"{where}: schema v{version}"


async def check_postgres(settings: BotSettings, shown: str, timeout: float) -> str:
    """Connect (nothing is created or migrated) and read the schema version."""
    import asyncpg

    from core.storage.postgres.schema import APPLICATION, latest_version

    password = None
    if settings.storage.password_env:
        password = os.environ.get(settings.storage.password_env)
        if not password:
            raise Failed(f"{settings.storage.password_env} is not set", f"export {settings.storage.password_env}")
    try:
        conn = await asyncpg.connect(settings.storage.url, password=password, timeout=timeout)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        raise Failed(f"{shown}: the server refused the credentials", "check the user in storage.url and storage.password_env") from None
    except asyncpg.InvalidCatalogNameError as error:
        raise Failed(f"{shown}: {error}", "create the database (createdb) or fix storage.url") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as error:
        reason = f"no answer within {timeout:g} s" if isinstance(error, TimeoutError) else str(error) or type(error).__name__
        raise Failed(f"cannot connect to {shown}: {reason}", "start PostgreSQL, or fix storage.url") from None
    try:
        exists = await conn.fetchval("SELECT to_regclass('personabot_schema') IS NOT NULL")
        version = await conn.fetchval("SELECT version FROM personabot_schema WHERE application = $1", APPLICATION) if exists else None
    finally:
        await conn.close()
    if version is None:
        return f"{shown}: reachable, no personabot schema yet (created at the first start, v{latest_version()})"
    return _schema_line(shown, version, latest_version())


async def check_model(settings: BotSettings, timeout: float) -> str:
    model = settings.model
    if model.backend == "scripted":
        return f"scripted: {len(model.replies) or 1} canned replies"
    if model.backend == "openai":
        return await _openai_models(settings, timeout)
    from core.bootstrap import build_generator, resolve_model_path

    generator = await build_generator(settings)
    await generator.aclose()
    shown = "the bundled model" if resolve_model_path(model.path) != model.path else model.path
    return f"transformers: {shown} loads (context {generator.context_window} tokens)"


async def _openai_models(settings: BotSettings, timeout: float) -> str:
    model = settings.model
    if not model.base_url or not model.model:
        raise Failed("backend 'openai' without model.base_url and model.model", "set both in [model]")
    headers = {}
    if model.api_key_env:
        key = os.environ.get(model.api_key_env)
        if not key:
            raise Failed(f"{model.api_key_env} is not set", f"export {model.api_key_env}")
        headers["Authorization"] = f"Bearer {key}"
    url = model.base_url.rstrip("/") + "/models"
    response = await _get(url, headers, timeout, secret=headers.get("Authorization"))
    if response.status_code != 200:
        raise Failed(f"GET {url}: HTTP {response.status_code}", "check model.base_url and the API key")
    served = [item.get("id") for item in response.json().get("data", []) if isinstance(item, dict)]
    if model.model not in served:
        raise Failed(f"{url} does not serve {model.model!r} (it serves: {', '.join(map(str, served)) or 'nothing'})", "set model.model to one of those")
    return f"openai: {url} serves {model.model!r}"


async def check_embedder(settings: BotSettings) -> str | None:
    """The embedder the bot will load, loaded from disk (no network); None: nothing uses one."""
    from core.bootstrap import select_features, FEATURES
    from core.personalization.embedder import load_sentence_model, resolve_embedder_path
    from core.personalization.settings import DEFAULT_EMBEDDER, load_personalization
    from core.plugins.loader import read_section

    features = select_features(settings)
    options, _ = load_personalization(settings)
    if FEATURES["personalization"] in features and options.enabled:
        spec = options.embedder
    elif FEATURES["plugins"] in features and read_section(settings).enabled:
        spec = DEFAULT_EMBEDDER  # what plugins get when they ask for one
    else:
        return None
    path = resolve_embedder_path(spec)
    await asyncio.to_thread(load_sentence_model, path)
    return f"{spec} loads from {path}"


def token_checks(settings: BotSettings, timeout: float) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
    """(platform, check) for each enabled platform with a token: getMe / users/@me against its API."""
    from adapters.discord.bot import api_root
    from adapters.discord.settings import DiscordSettings
    from adapters.telegram.settings import TelegramSettings

    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = []
    telegram, discord = settings.platform(TelegramSettings), settings.platform(DiscordSettings)
    if telegram.enabled:
        root = (telegram.api_base_url or TELEGRAM_API).rstrip("/")
        checks.append(("telegram", lambda: _telegram_me(root, _token(telegram.token_env), timeout)))
    if discord.enabled:
        api = api_root(discord.api_base_url or DISCORD_API)
        checks.append(("discord", lambda: _discord_me(api, _token(discord.token_env), timeout)))
    return checks


def _token(env: str) -> str:
    token = os.environ.get(env)
    if not token:
        raise Failed(f"{env} is not set", f"export {env}")
    return token


async def _telegram_me(root: str, token: str, timeout: float) -> str:
    response = await _get(f"{root}/bot{token}/getMe", {}, timeout, secret=token, shown=f"{root}/bot***/getMe")
    if response.status_code in (401, 404):
        raise Failed(f"token refused ({response.status_code} {_description(response)})", "check the token with @BotFather (/token)")
    if response.status_code != 200:
        raise Failed(f"getMe: HTTP {response.status_code}", f"check that {root} is a Bot API server")
    me = response.json().get("result", {})
    return f"@{me.get('username')} (id {me.get('id')})"


async def _discord_me(root: str, token: str, timeout: float) -> str:
    response = await _get(f"{root}/users/@me", {"Authorization": f"Bot {token}"}, timeout, secret=token)
    if response.status_code == 401:
        raise Failed("token refused (401 Unauthorized)", "copy the bot token again (Developer Portal > Bot > Reset Token)")
    if response.status_code != 200:
        raise Failed(f"users/@me: HTTP {response.status_code}", f"check that {root} is Discord's API")
    me = response.json()
    return f"{me.get('username')} (id {me.get('id')})"


def _description(response: httpx.Response) -> str:
    try:
        return str(response.json().get("description", response.reason_phrase))
    except ValueError:
        return response.reason_phrase


async def _get(url: str, headers: dict[str, str], timeout: float, *, secret: str | None, shown: str | None = None) -> httpx.Response:
    """GET, with a connection failure as a Failed that never contains ``secret``."""
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            return await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        where = shown or url
        if secret:
            cause, where = cause.replace(secret, "***"), where.replace(secret, "***")
        raise Failed(f"cannot reach {where} ({cause})", "check the address and the network") from None


def check_ports(settings: BotSettings) -> str | None:
    """The ports this process will listen on are free now (another process holds none)."""
    from adapters.telegram.settings import TelegramSettings

    wanted = []
    http = settings.http
    if http.enabled and http.port:
        wanted.append(("[http]", http.host, http.port))
    web = settings.web
    if web.enabled and web.port and not http.enabled:  # else the console is mounted on [http]
        wanted.append(("[web] console", web.host, web.port))
    telegram = settings.platform(TelegramSettings)
    if telegram.enabled and telegram.mode == "webhook" and not http.enabled:  # else the webhook is on [http]
        wanted.append(("telegram webhook", telegram.webhook_listen, telegram.webhook_port))
    if not wanted:
        return None
    busy = []
    for what, host, port in wanted:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as error:
                busy.append(f"{what} {host}:{port} ({error.strerror or error})")
    if busy:
        raise Failed("in use: " + ", ".join(busy), "stop what listens there (another bot?) or change the port")
    return "free: " + ", ".join(f"{what} {host}:{port}" for what, host, port in wanted)


# -- running them -------------------------------------------------------------------------


async def diagnose(bot: Path, *, timeout: float = 10.0) -> list[Line]:
    """Every check for the bot file ``bot``, in order."""
    import adapters.platforms  # noqa: F401 - registers the platform sections the bot file may have

    try:
        settings = load_bot_settings(bot)
    except ConfigError as error:
        first = Line("bot file", "fail", str(error).replace("\n", "; "), "fix the fields named")
        later = ("personas", "features", "environment", "database", "model", "embedder", "tokens", "ports")
        return [first, *(Line(name, "skip", "needs a valid bot file") for name in later)]
    lines = [Line("bot file", "ok", f"{bot} (bot {settings.name!r})")]

    async def run(name: str, check: Callable[[], object]) -> None:
        try:
            found = check()
            if asyncio.iscoroutine(found):
                found = await found
        except Failed as failure:
            lines.append(Line(name, "fail", failure.detail, failure.fix))
        except Exception as error:  # noqa: BLE001 - whatever breaks a check is that check's failure
            cause = str(error).replace("\n", "; ") if isinstance(error, PersonabotError) else f"{type(error).__name__}: {error}"
            lines.append(Line(name, "fail", cause))
        else:
            lines.append(Line(name, "ok", str(found)) if found is not None else Line(name, "skip", "not used by this bot"))

    await run("personas", lambda: check_personas(settings))
    await run("features", lambda: check_features(settings))
    await run("environment", lambda: check_env(settings))
    await run("database", lambda: check_database(settings, timeout))
    await run("model", lambda: check_model(settings, timeout))
    await run("embedder", lambda: check_embedder(settings))
    tokens = token_checks(settings, timeout)
    for platform, check in tokens:
        await run(f"{platform} token", check)
    if not tokens:
        lines.append(Line("tokens", "skip", "no platform with a token is enabled"))
    await run("ports", lambda: check_ports(settings))
    return lines


async def probe(bot: Path, timeout: float) -> str:
    """The container health probe: /healthz when [http] is on, else the bot file and its database."""
    import adapters.platforms  # noqa: F401

    settings = load_bot_settings(bot)
    http = settings.http
    if http.enabled:
        host = "127.0.0.1" if http.host in ("0.0.0.0", "", "::") else http.host
        url = f"http://{host}:{http.port}/healthz"
        response = await _get(url, {}, timeout, secret=None)
        if response.status_code != 200:
            raise Failed(f"GET {url}: HTTP {response.status_code}")
        return f"GET {url}: 200"
    return await check_database(settings, timeout)


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        bot: BotOption = None,
        timeout: Annotated[float, typer.Option(help="Seconds each network check may take.")] = 10.0,
        verbose: bool = False,
    ) -> None:
        """Check a deployment before going live: bot file, personas, secrets, database, model,
        embedder, platform tokens, ports. One line each; exit 0 only when all pass."""
        setup_logging(verbose)
        lines = asyncio.run(diagnose(bot_file(bot), timeout=timeout))
        for line in lines:
            typer.secho(line.render(), fg={"ok": typer.colors.GREEN, "fail": typer.colors.RED}.get(line.status))
        failed = [line.check for line in lines if line.status == "fail"]
        if failed:
            typer.secho(f"{len(failed)} check(s) failed: {', '.join(failed)}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1)

    @app.command("healthcheck")
    def healthcheck(
        bot: BotOption = None,
        timeout: Annotated[float, typer.Option(help="Seconds the probe may take.")] = 5.0,
    ) -> None:
        """The container's health probe: GET /healthz when [http] is enabled, else the bot file and database. Exit 0 healthy, 1 not."""
        try:
            typer.echo(asyncio.run(probe(bot_file(bot), timeout)))
        except Failed as failure:
            typer.secho(f"unhealthy: {failure.detail}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        except PersonabotError as error:
            typer.secho(f"unhealthy: {error}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
