"""Storage backends of the Store port. The default is :class:`SQLiteStore`."""

from core.storage.sqlite import SQLiteStore

__all__ = ["SQLiteStore"]
