"""Factory choosing the vector-index engine of the search service.

=========================  ===================================================================
``url`` set, ``"qdrant"``  Qdrant server over gRPC (:class:`~designsearch.services.search.engines.qdrant.QdrantIndex`)
``engine="edge"``          embedded Qdrant Edge at ``path`` (:class:`~designsearch.services.search.engines.edge.EdgeIndex`)
``engine="local"``         qdrant-client local mode at ``path`` (brute force; tests, tiny catalogues)
=========================  ===================================================================
"""

from __future__ import annotations

from designsearch.errors import InvalidArgument
from designsearch.services.search.index import HnswConfig, VectorIndex

ENGINES = ("qdrant", "edge", "local")


def open_index(
    url: str | None,
    path: str,
    engine: str,
    hnsw: HnswConfig,
    *,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> VectorIndex:
    """Open the configured vector index.

    Args:
        url: Qdrant server URL (``http://host:6333``); used when ``engine == "qdrant"``.
        path: storage directory for the embedded engines.
        engine: one of :data:`ENGINES`.
        hnsw: HNSW/quantisation defaults for new collections (and ``ef`` for server searches).
        api_key: Qdrant server API key.
        timeout: server call timeout in seconds.

    Returns:
        an object implementing :class:`~designsearch.services.search.index.VectorIndex`.

    Raises:
        InvalidArgument: unknown engine, or ``"qdrant"`` without a URL.
        BackendUnavailable: the storage cannot be opened.
    """
    if engine == "qdrant":
        if not url:
            raise InvalidArgument("engine 'qdrant' needs a server url", field="url")
        from designsearch.services.search.engines.qdrant import QdrantIndex

        return QdrantIndex(url, api_key=api_key, timeout=timeout, prefer_grpc=True, search_ef=hnsw.ef)
    if engine == "edge":
        from designsearch.services.search.engines.edge import EdgeIndex

        return EdgeIndex(path, default_hnsw=hnsw)
    if engine == "local":
        from designsearch.services.search.engines.qdrant import QdrantIndex

        return QdrantIndex(path=path)
    raise InvalidArgument(f"unknown search engine {engine!r}; expected one of {ENGINES}", field="engine")
