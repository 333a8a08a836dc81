"""Catalogue schema revisions, oldest first."""
