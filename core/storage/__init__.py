"""Storage backends of the Store port, and the one function that picks one from the bot file.

``[storage]`` with nothing, or ``path = "bot.db"``: SQLite (one process; the default).
``url = "postgresql://user@host:5432/db"`` (password from the env var ``password_env``
names, or PGPASSWORD / ~/.pgpass): PostgreSQL, for several processes on one database.
``url = "sqlite:PATH"`` is the SQLite file spelled as a URL.
"""

from __future__ import annotations

from core.errors import ConfigError
from core.ports import Store
from core.settings import BotSettings
from core.storage.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "open_store"]


def open_store(settings: BotSettings) -> Store:
    """The bot's Store, not opened yet (``async with`` opens it).

    Configuration mistakes (a malformed URL, an unset password variable) raise
    ConfigError naming the file and ``storage.url`` here; a server that refuses the
    connection or the credentials does so when the store is opened, within seconds.
    """
    where = f"{settings.source or 'bot file'}: storage.url"
    url = settings.storage.url
    if url is None or url.startswith("sqlite:"):
        path = settings.resolve_path(url[len("sqlite:"):]) if url else settings.database_path()
        if url is not None and not str(path):
            raise ConfigError(f"{where}: sqlite: needs a path, e.g. sqlite:bot.db")
        return SQLiteStore(path)
    from core.storage.postgres import PostgresStore

    password = None
    if settings.storage.password_env:
        password = BotSettings.secret(settings.storage.password_env, "storage.password_env")
    return PostgresStore(url, password=password, where=where)
