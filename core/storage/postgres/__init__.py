"""The PostgreSQL Store (asyncpg), for bots that run several processes on one database.

engine.py       the pool, migrations at open, errors, the NUL-safe text codec
schema.py       the versioned schema (the same steps as SQLite's)
store.py        PostgresStore: users, profiles, settings, personas, conversations, memories, audit
people.py       identity links, export, forget, stats
plugin_data.py  plugin key-value data and scheduled jobs (claimed with SKIP LOCKED)
shared.py       leases, token buckets, limit notices, quotas
console.py      the operator console's reads
"""

from core.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
