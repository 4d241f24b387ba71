"""Persistence: schema, migrations, engine creation."""

from qunyun.store.db import default_database_path, migrate, open_engine, resolve_url, schema_status

__all__ = ["default_database_path", "migrate", "open_engine", "resolve_url", "schema_status"]
