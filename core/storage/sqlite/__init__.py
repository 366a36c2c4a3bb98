"""The SQLite Store: the engine (one writer, group commit) and the repository queries.

engine.py      connections, the writer queue and group commit, readers, the one-process lock
store.py       SQLiteStore: users, profiles, settings, personas, conversations, memories, audit
people.py      identity links, export, forget, stats
plugin_data.py plugin key-value data and scheduled jobs (with claims)
shared.py      leases, token buckets, limit notices, quotas (shared by all processes)
console_queries.py  the operator console's reads
migrations.py  the versioned schema
"""

from core.storage.sqlite.store import SQLiteStore
from core.storage.values import clean_text

__all__ = ["SQLiteStore", "clean_text"]
