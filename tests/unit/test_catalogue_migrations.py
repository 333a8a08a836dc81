"""Catalogue schema migrations (Alembic) on SQLite and PostgreSQL: a fresh database gets the latest
schema; a database of the first release keeps its data and its dislikes become feedback rows."""

from __future__ import annotations

from datetime import datetime, timezone

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from designsearch.gateway.catalogue import Catalogue, migrate


def _config(conn) -> Config:
    from pathlib import Path

    import designsearch.gateway.catalogue as cat

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(cat.__file__).parent / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def test_fresh_database_gets_the_latest_schema(catalogue_url):
    c = Catalogue(catalogue_url)
    try:
        tables = set(inspect(c.engine).get_table_names())
        assert {"designs", "images", "crops", "feedback", "alembic_version"} <= tables and "dislikes" not in tables
        with c.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
        migrate(c.engine)  # idempotent
    finally:
        c.close()


def test_first_release_database_is_upgraded_without_loss(catalogue_url):
    engine = create_engine(catalogue_url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0001")
        conn.execute(text("INSERT INTO designs (design_id, brand, model, year, attributes) "
                          "VALUES ('d1', 'B', 'M', 2001, '{}')"))
        conn.execute(text("INSERT INTO dislikes (query_id, design_id, created_at) VALUES (:q, 'd1', :t)"),
                     {"q": "a" * 64, "t": datetime.now(timezone.utc)})
    engine.dispose()
    c = Catalogue(catalogue_url)
    try:
        assert c.design_exists("d1")
        assert c.disliked("a" * 64) == ["d1"]  # the old dislike is the anonymous caller's feedback now
        assert "dislikes" not in inspect(c.engine).get_table_names()
    finally:
        c.close()
