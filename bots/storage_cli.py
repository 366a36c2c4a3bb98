"""`personabot storage migrate --from sqlite:PATH --to postgresql://…`: move a bot's database.

Copies every table of a bot's SQLite file (users, conversations, messages, memories
with their embeddings, plugin data, jobs, audit log, limits) into an empty PostgreSQL
database, keeping every id, then prints a row count per table on both sides.

- The SQLite file is opened as the bot opens it (schema brought up to date, the
  one-process lock held for the whole copy), so a running bot is refused, not raced.
- The PostgreSQL schema is created by the store's own migrations, then all rows go in
  one transaction: an interrupted copy leaves the target empty, and running the
  command again starts over. A target that already holds data is refused.
- Identity sequences move past the copied ids, so new rows get fresh ones.

Exit codes: 0 copied and verified, 1 a failure while copying or a count mismatch,
2 bad arguments (wrong URL, missing file, target not empty).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import ConfigError, PersonabotError

BATCH = 2000
# Parents before children; memories are copied without superseded_by, then linked.
TABLE_ORDER = (
    "users", "forgotten_bans", "profiles", "personas", "settings", "conversations", "messages",
    "processed_events", "memories", "audit_log", "identity_links", "plugin_data", "plugin_jobs",
    "leases", "rate_buckets", "limit_notices", "quotas",
)
IDENTITY_TABLES = ("conversations", "messages", "memories", "audit_log", "plugin_jobs")
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "boolean": bool, "double precision": float, "bigint": int, "integer": int, "text": str, "bytea": bytes,
}


def _sqlite_path(source: str) -> Path:
    if not source.startswith("sqlite:"):
        raise ConfigError(f"--from: expected sqlite:PATH, got {source!r}")
    path = Path(source[len("sqlite:"):]).expanduser()
    if not path.is_file():
        raise ConfigError(f"--from: no database at {path}")
    return path


def _batches(cursor: sqlite3.Cursor) -> Iterator[list[tuple]]:
    while rows := cursor.fetchmany(BATCH):
        yield rows


async def migrate(source: Path, target_url: str, password: str | None, progress: Callable[[str, int], None]) -> dict[str, tuple[int, int]]:
    """Copy ``source`` into ``target_url``; returns ``table -> (rows in SQLite, rows in PostgreSQL)``."""
    from core.storage.postgres import PostgresStore
    from core.storage.sqlite import SQLiteStore

    async with SQLiteStore(source), PostgresStore(target_url, password=password, where="--to") as target:
        reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            tables = [t for t in TABLE_ORDER if reader.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)).fetchone()]
            counts = {t: reader.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
            progress("", sum(counts.values()))

            async def copy(conn: Any) -> None:
                for table in tables:
                    if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):
                        raise ConfigError(f"--to: table {table} already holds rows; migrate into an empty database")
                for table in tables:
                    await _copy_table(conn, reader, table, progress)
                memories = reader.execute("SELECT id, superseded_by FROM memories WHERE superseded_by IS NOT NULL")
                for rows in _batches(memories):
                    await conn.executemany("UPDATE memories SET superseded_by = $2 WHERE id = $1", rows)
                for table in IDENTITY_TABLES:
                    await conn.execute(
                        f"""SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                          coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)""")

            await target.run_on_connection("storage migrate", copy, tx=True)

            async def count_rows(conn: Any) -> dict[str, int]:
                return {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}

            copied = await target.run_on_connection("storage migrate: verify", count_rows)
        finally:
            reader.close()
    return {table: (counts[table], copied[table]) for table in tables}


async def _copy_table(conn: Any, reader: sqlite3.Connection, table: str, progress: Callable[[str, int], None]) -> None:
    types = {row["column_name"]: row["data_type"] for row in await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 "
        "AND table_schema = current_schema()", table)}
    columns = [row[1] for row in reader.execute(f'PRAGMA table_info("{table}")') if row[1] in types]
    convert = [_CONVERT.get(types[c], lambda value: value) for c in columns]
    if table == "memories":
        convert[columns.index("superseded_by")] = lambda value: None
    names = ", ".join(f'"{c}"' for c in columns)
    places = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    cursor = reader.execute(f'SELECT {names} FROM "{table}" ORDER BY rowid')
    for rows in _batches(cursor):
        await conn.executemany(
            f'INSERT INTO "{table}" ({names}) VALUES ({places})',
            [tuple(None if value is None else fn(value) for fn, value in zip(convert, row)) for row in rows],
        )
        progress(table, len(rows))


def register(app: typer.Typer) -> None:
    storage_app = typer.Typer(help="The bot's database: move it from SQLite to PostgreSQL.", no_args_is_help=True)
    app.add_typer(storage_app, name="storage")

    @storage_app.command("migrate")
    def migrate_command(
        source: Annotated[str, typer.Option("--from", help="sqlite:PATH of the bot's database (the bot stopped).")],
        target: Annotated[str, typer.Option("--to", help="postgresql://user@host:5432/db, an empty database.")],
        password_env: Annotated[
            str | None, typer.Option(help="Environment variable holding the PostgreSQL password.")
        ] = None,
    ) -> None:
        """Copy every table into PostgreSQL with a progress bar, then verify the row count of each."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from core.settings import BotSettings

        console = Console(stderr=True)
        try:
            path = _sqlite_path(source)
            password = BotSettings.secret(password_env, "--password-env") if password_env else None
            with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("rows", total=None)

                def progress(table: str, rows: int) -> None:
                    if not table:
                        bar.update(task, total=rows)
                    else:
                        bar.update(task, advance=rows, description=table)

                result = asyncio.run(migrate(path, target, password, progress))
        except ConfigError as error:
            console.print(f"[red]error: {error}[/red]")
            raise typer.Exit(2) from None
        except PersonabotError as error:
            console.print(f"[red]error: {error}[/red]")
            raise typer.Exit(1) from None
        table = Table("table", "sqlite", "postgresql", "ok")
        for name, (before, after) in result.items():
            table.add_row(name, str(before), str(after), "yes" if before == after else "NO")
        Console().print(table)
        if any(before != after for before, after in result.values()):
            console.print("[red]error: row counts differ[/red]")
            raise typer.Exit(1)
        typer.echo(f"copied {sum(before for before, _ in result.values())} rows from {path}")
