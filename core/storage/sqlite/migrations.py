"""Versioned schema of the SQLite store (core/storage/postgres/schema.py mirrors it).

``PRAGMA user_version`` holds the number of steps applied. Steps only ever get
appended: never edit a released step, add a new one that alters what it created.
All pending steps run in one transaction at open, so a failed upgrade leaves the
database exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from core.errors import StorageError

# "PBOT": marks the file as ours, so opening another program's SQLite file fails clearly.
APPLICATION_ID = 0x50424F54


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE users (
                id TEXT PRIMARY KEY,
                display_name TEXT NOT NULL DEFAULT '',
                first_seen REAL NOT NULL,
                last_seen REAL NOT NULL,
                message_count INTEGER NOT NULL DEFAULT 0,
                banned INTEGER NOT NULL DEFAULT 0
            )""",
            # Bans of users who asked to be forgotten, by SHA-256 of their id, so that
            # /forget is not a way around a ban.
            "CREATE TABLE forgotten_bans (id_hash TEXT PRIMARY KEY, at REAL NOT NULL)",
            """CREATE TABLE profiles (
                user_id TEXT PRIMARY KEY,
                preferences TEXT NOT NULL DEFAULT '{}',
                consent TEXT NOT NULL DEFAULT '{}',
                interest BLOB,
                interest_count INTEGER NOT NULL DEFAULT 0,
                updated_at REAL NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE personas (
                name TEXT PRIMARY KEY,
                definition TEXT NOT NULL,
                updated_at REAL NOT NULL
            )""",
            """CREATE TABLE settings (
                scope TEXT NOT NULL,
                name TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (scope, name)
            )""",
            """CREATE TABLE conversations (
                id INTEGER PRIMARY KEY,
                platform TEXT NOT NULL,
                key TEXT NOT NULL,
                persona TEXT,
                started_at REAL NOT NULL,
                active INTEGER NOT NULL DEFAULT 1,
                closed_at REAL
            )""",
            "CREATE UNIQUE INDEX conversations_one_active ON conversations(key) WHERE active = 1",
            "CREATE INDEX conversations_key ON conversations(key)",
            """CREATE TABLE messages (
                id INTEGER PRIMARY KEY,
                conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
                user_id TEXT,
                text TEXT NOT NULL,
                created_at REAL NOT NULL,
                event_id TEXT,
                reply_to INTEGER,
                answered INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX messages_conversation ON messages(conversation_id, id)",
            "CREATE INDEX messages_user ON messages(user_id) WHERE user_id IS NOT NULL",
            "CREATE INDEX messages_reply_to ON messages(reply_to) WHERE reply_to IS NOT NULL",
            "CREATE INDEX messages_created ON messages(created_at)",
            "CREATE INDEX messages_unanswered ON messages(created_at) WHERE role = 'user' AND answered = 0",
            # Storing a reply marks its user turn answered in the same statement, so no
            # crash can leave one without the other.
            """CREATE TRIGGER messages_mark_answered AFTER INSERT ON messages
               WHEN NEW.reply_to IS NOT NULL
               BEGIN UPDATE messages SET answered = 1 WHERE id = NEW.reply_to; END""",
            "CREATE TABLE processed_events (event_id TEXT PRIMARY KEY, seen_at REAL NOT NULL)",
            "CREATE INDEX processed_events_seen ON processed_events(seen_at)",
            """CREATE TABLE memories (
                id INTEGER PRIMARY KEY,
                user_id TEXT NOT NULL,
                subject TEXT NOT NULL,
                text TEXT NOT NULL,
                embedding BLOB,
                scope TEXT NOT NULL CHECK (scope IN ('private', 'group')),
                created_at REAL NOT NULL,
                superseded_by INTEGER REFERENCES memories(id) ON DELETE CASCADE
            )""",
            "CREATE INDEX memories_user ON memories(user_id, subject)",
            "CREATE INDEX memories_superseded_by ON memories(superseded_by)",
            """CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY,
                at REAL NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL DEFAULT '',
                outcome TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX audit_actor ON audit_log(actor)",
            """CREATE TABLE identity_links (
                user_id TEXT PRIMARY KEY,
                group_id INTEGER NOT NULL,
                linked_at REAL NOT NULL
            )""",
            "CREATE INDEX identity_links_group ON identity_links(group_id)",
        ),
    ),
    Migration(
        2,
        "plugin storage and scheduled jobs (core/plugins)",
        (
            # user_id '' is the plugin-wide namespace; other rows belong to that user.
            """CREATE TABLE plugin_data (
                plugin TEXT NOT NULL,
                user_id TEXT NOT NULL DEFAULT '',
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (plugin, user_id, key)
            )""",
            "CREATE INDEX plugin_data_user ON plugin_data(user_id) WHERE user_id <> ''",
            """CREATE TABLE plugin_jobs (
                id INTEGER PRIMARY KEY,
                plugin TEXT NOT NULL,
                name TEXT NOT NULL,
                run_at REAL NOT NULL,
                every REAL,
                platform TEXT,
                chat_id TEXT,
                thread_id TEXT,
                user_id TEXT,
                payload TEXT NOT NULL DEFAULT '{}',
                attempts INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL
            )""",
            "CREATE INDEX plugin_jobs_due ON plugin_jobs(run_at)",
            "CREATE INDEX plugin_jobs_owner ON plugin_jobs(plugin, user_id)",
            "CREATE INDEX plugin_jobs_user ON plugin_jobs(user_id) WHERE user_id IS NOT NULL",
        ),
    ),
    Migration(
        3,
        "state shared by processes: job claims, leases, rate limits, quotas (core/storage/values.py)",
        (
            # A job claimed by a scheduler until claimed_until; another may claim it after.
            "ALTER TABLE plugin_jobs ADD COLUMN claimed_by TEXT",
            "ALTER TABLE plugin_jobs ADD COLUMN claimed_until REAL",
            "CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL)",
            """CREATE TABLE rate_buckets (
                key TEXT PRIMARY KEY,
                tokens REAL NOT NULL,
                updated REAL NOT NULL
            )""",
            "CREATE TABLE limit_notices (key TEXT PRIMARY KEY, until REAL NOT NULL)",
            """CREATE TABLE quotas (
                key TEXT PRIMARY KEY,
                period TEXT NOT NULL,
                used INTEGER NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "memory ids are never reused (AUTOINCREMENT); a memory names the user turn it was learned from",
        (
            # Rebuilt: SQLite cannot add AUTOINCREMENT to a table. The new table refers to
            # itself by its new name; the rename rewrites that reference. A row points to a
            # newer one (superseded_by): the foreign keys are checked at commit.
            "PRAGMA defer_foreign_keys = ON",
            """CREATE TABLE memories_v4 (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                user_id TEXT NOT NULL,
                subject TEXT NOT NULL,
                text TEXT NOT NULL,
                embedding BLOB,
                scope TEXT NOT NULL CHECK (scope IN ('private', 'group')),
                created_at REAL NOT NULL,
                superseded_by INTEGER REFERENCES memories_v4(id) ON DELETE CASCADE,
                source_message_id INTEGER
            )""",
            """INSERT INTO memories_v4 (id, user_id, subject, text, embedding, scope, created_at, superseded_by)
               SELECT id, user_id, subject, text, embedding, scope, created_at, superseded_by FROM memories""",
            "DROP TABLE memories",
            "ALTER TABLE memories_v4 RENAME TO memories",
            "CREATE INDEX memories_user ON memories(user_id, subject)",
            "CREATE INDEX memories_superseded_by ON memories(superseded_by)",
        ),
    ),
)


def latest_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


async def migrate(db: aiosqlite.Connection, where: str, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the schema of ``db`` up to date; returns the version now in the file.

    ``where`` names the database in error messages. ``db`` must be in autocommit mode.
    """
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise StorageError("migration steps must be numbered 1, 2, 3… without gaps")
    target = latest_version(migrations)
    await db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = await (await db.execute("PRAGMA user_version")).fetchone()
        (app_id,) = await (await db.execute("PRAGMA application_id")).fetchone()
        if version > target:
            raise StorageError(
                f"{where}: schema version {version} is newer than this personabot knows ({target}); "
                "upgrade personabot to open it"
            )
        if app_id not in (0, APPLICATION_ID):
            raise StorageError(f"{where}: not a personabot database (application_id {app_id:#x})")
        if version == 0:
            (tables,) = await (await db.execute("SELECT count(*) FROM sqlite_master")).fetchone()
            if tables:
                raise StorageError(f"{where}: holds tables but no personabot schema version; refusing to touch it")
        for step in migrations[version:]:
            for statement in step.statements:
                await db.execute(statement)
        if version < target:
            # Both pragmas live in the file header and are part of this transaction.
            await db.execute(f"PRAGMA user_version = {target:d}")
            await db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        await db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise
    return target
