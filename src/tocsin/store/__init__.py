"""The Store port and its SQL implementation (SQLite embedded, PostgreSQL in production)."""
