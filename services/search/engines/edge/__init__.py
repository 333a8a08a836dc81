"""The embedded engine: Qdrant Edge (``qdrant-edge-py``) behind :class:`~designsearch.services.search.index.VectorIndex`."""

from __future__ import annotations

from designsearch.services.search.engines.edge.index import EdgeIndex

__all__ = ["EdgeIndex"]
