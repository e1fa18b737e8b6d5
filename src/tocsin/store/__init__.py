"""The Store port and its SQL implementation (SQLite embedded, PostgreSQL in production)."""

from tocsin.store.base import Store
from tocsin.store.sql import SqlStore

__all__ = ["SqlStore", "Store"]
