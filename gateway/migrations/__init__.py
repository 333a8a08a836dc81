"""Alembic migrations of the catalogue schema (run by :class:`designsearch.gateway.catalogue.Catalogue`)."""
