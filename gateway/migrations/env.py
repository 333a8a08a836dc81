"""Alembic environment of the catalogue: runs on the connection the catalogue hands over
(``config.attributes["connection"]``); on PostgreSQL under an advisory lock, so gateways starting
together migrate one at a time."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from designsearch.gateway.catalogue import Base

MIGRATION_LOCK = 7_420_011  # pg_advisory_lock key of the catalogue migrations

connection = context.config.attributes["connection"]
postgres = connection.dialect.name == "postgresql"
if postgres:
    connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
try:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=not postgres)
    with context.begin_transaction():
        context.run_migrations()
finally:
    if postgres:
        connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
