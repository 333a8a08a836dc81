"""``QdrantIndex``: the :class:`~designsearch.services.search.index.VectorIndex` over ``qdrant-client``.

One class serves three back ends, chosen at construction:

* a Qdrant **server** (``url="http://host:6333"``): gRPC preferred (``prefer_grpc=True``), optional
  API key, per-call timeout. HNSW (Malkov & Yashunin, TPAMI 2018) and int8 scalar quantisation are
  configured on the server; payload indexes are created on ``design_id``/``brand``/``kind``
  (keyword) and ``year`` (integer) so filtered search stays on the filtered HNSW path.
* qdrant-client **local mode** on disk (``path="/dir"``): the server's API in pure Python/NumPy.
  Search is brute force (exact), persistence is a SQLite file of pickled points; fine for tests and
  small catalogues, slow beyond ~100k points (see ``benchmarks/search_bench.py``).
* local mode **in memory** (``url=":memory:"`` or ``path=":memory:"``).

Aliases: qdrant-client 1.20 local mode supports aliases itself (kept in its ``meta.json``,
applied atomically to a copy), so no emulation is needed; both modes use
``update_collection_aliases``.

Snapshots: on a server, ``create_snapshot`` asks Qdrant for a collection snapshot and downloads
it over REST into ``target_dir``; ``restore_snapshot`` uploads the file back
(``POST /collections/{name}/snapshots/upload``). Local mode has no snapshots, so this class writes a
*portable snapshot* instead (see :func:`write_portable_snapshot`): an uncompressed ZIP file with
``manifest.json`` (format, vector names → dims, HNSW config, point count), ``ids.json``,
``payloads.jsonl`` and one ``vectors/<name>.npy`` (float32 ``(N, D)``) plus
``vectors/<name>.mask.npy`` (bool ``(N,)``, which points have that vector) per vector name. The same
format is used by :class:`designsearch.services.search.engines.edge.EdgeIndex` as its engine-neutral export.

Errors: unknown collection/alias → :class:`~designsearch.errors.NotFound`; wrong vector name,
dimension, non-finite/zero vector, non-UUID id → :class:`~designsearch.errors.InvalidArgument`
(checked here, before the call, so every back end answers the same); connection failures and
timeouts → :class:`~designsearch.errors.BackendUnavailable`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from designsearch.domain import Hit, Point, SearchFilter
from designsearch.errors import BackendUnavailable, DesignSearchError, InvalidArgument, NotFound
from designsearch.services.search.engines.qdrant_snapshots import SnapshotMixin
from designsearch.services.search.engines.common import canonical_id, check_limit, prepare_vector, records_to_points
from designsearch.services.search.index import HnswConfig


#: Payload fields that get a server-side payload index, with their schema.
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "design_id": models.PayloadSchemaType.KEYWORD,
    "brand": models.PayloadSchemaType.KEYWORD,
    "kind": models.PayloadSchemaType.KEYWORD,
    "year": models.PayloadSchemaType.INTEGER,
}


def to_qdrant_filter(flt: SearchFilter | None) -> models.Filter | None:
    """Translate a :class:`SearchFilter` into a ``qdrant_client.models.Filter`` (None if empty).

    brands/kinds/design ids → ``MatchAny`` in ``must``; year range → ``Range(gte, lte)`` (inclusive);
    excluded design ids → ``MatchAny`` in ``must_not``.
    """
    if flt is None or flt.is_empty():
        return None
    must: list[models.Condition] = []
    if flt.brands:
        must.append(models.FieldCondition(key="brand", match=models.MatchAny(any=list(flt.brands))))
    if flt.kinds:
        must.append(models.FieldCondition(key="kind", match=models.MatchAny(any=list(flt.kinds))))
    if flt.design_ids:
        must.append(models.FieldCondition(key="design_id", match=models.MatchAny(any=list(flt.design_ids))))
    if flt.year_min is not None or flt.year_max is not None:
        must.append(models.FieldCondition(key="year", range=models.Range(gte=flt.year_min, lte=flt.year_max)))
    must_not: list[models.Condition] = []
    if flt.exclude_design_ids:
        must_not.append(
            models.FieldCondition(key="design_id", match=models.MatchAny(any=list(flt.exclude_design_ids)))
        )
    return models.Filter(must=must or None, must_not=must_not or None)


class QdrantIndex(SnapshotMixin):
    """:class:`~designsearch.services.search.index.VectorIndex` over ``qdrant-client`` (server or local mode).

    Args:
        url: Qdrant server URL (``http://host:6333``; gRPC on ``grpc_port``), or ``":memory:"``.
        path: local-mode storage directory (``QdrantClient(path=...)``); used when ``url`` is None.
        api_key: server API key (None = none).
        timeout: per-call timeout in seconds (server).
        prefer_grpc: talk gRPC to the server (REST is still used to download/upload snapshots).
        grpc_port: the server's gRPC port.
        search_ef: default HNSW ``ef`` for searches (server); a collection created with an
            :class:`HnswConfig` uses that config's ``ef`` instead.
        exact: force exact (brute-force) search on the server; local mode is always exact.

    Raises:
        InvalidArgument: neither ``url`` nor ``path`` given.
        BackendUnavailable: local storage is locked by another process, or the server client
            cannot be constructed.

    Thread safety: local mode is not thread-safe in qdrant-client, so every call on a local
    client is serialised with a lock; server calls run concurrently.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        path: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        prefer_grpc: bool = True,
        grpc_port: int = 6334,
        search_ef: int = 128,
        exact: bool = False,
    ) -> None:
        try:
            if url == ":memory:" or (url is None and path == ":memory:"):
                self._client = QdrantClient(location=":memory:")
            elif url is not None:
                self._client = QdrantClient(
                    url=url, api_key=api_key, timeout=int(max(1, round(timeout))), prefer_grpc=prefer_grpc,
                    grpc_port=grpc_port,
                    # no version probe at construction: the service's readiness call reports a
                    # down server as BackendUnavailable instead of a warning and a delay here
                    check_compatibility=False,
                )
            elif path is not None:
                Path(path).mkdir(parents=True, exist_ok=True)
                self._client = QdrantClient(path=path)
            else:
                raise InvalidArgument("QdrantIndex needs a url, ':memory:' or a path")
        except RuntimeError as exc:  # local storage already opened by another client/process
            raise BackendUnavailable(f"cannot open Qdrant storage: {exc}") from exc
        self._url = url if url not in (None, ":memory:") else None
        self._api_key = api_key
        self._timeout = timeout
        self.local = self._url is None
        self._search_ef = search_ef
        self._exact = exact
        self._lock = threading.RLock() if self.local else _NullLock()
        self._dims_cache: dict[str, tuple[float, dict[str, int], int]] = {}  # name → (t, dims, ef)

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, fn, *args, collection: str | None = None, **kwargs):
        """Run a client call under the local lock, mapping client exceptions to domain errors."""
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except DesignSearchError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped below, re-raised as domain errors
            raise self._map_error(exc, collection) from exc

    @staticmethod
    def _map_error(exc: Exception, collection: str | None) -> DesignSearchError:
        text = str(exc)
        low = text.lower()
        if isinstance(exc, UnexpectedResponse):
            if exc.status_code == 404:
                return NotFound(f"collection {collection!r} not found: {text}", field="collection")
            if exc.status_code in (400, 422):
                return InvalidArgument(text)
            if exc.status_code in (502, 503, 504):
                return BackendUnavailable(text)
        if isinstance(exc, ResponseHandlingException):
            return BackendUnavailable(f"Qdrant unreachable: {text}")
        try:
            import grpc  # only needed to classify gRPC errors of a server client

            if isinstance(exc, grpc.RpcError):
                code = exc.code() if callable(getattr(exc, "code", None)) else None
                details = exc.details() if callable(getattr(exc, "details", None)) else text
                if code == grpc.StatusCode.NOT_FOUND:
                    return NotFound(f"collection {collection!r} not found: {details}", field="collection")
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    return InvalidArgument(details or text)
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return BackendUnavailable(f"Qdrant unavailable: {details}")
        except ImportError:  # pragma: no cover - grpcio is a dependency of qdrant-client
            pass
        if "not found" in low and ("collection" in low or "alias" in low):
            return NotFound(f"collection {collection!r} not found", field="collection")
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return BackendUnavailable(f"Qdrant unreachable: {text}")
        if isinstance(exc, (ValueError, TypeError)):
            return InvalidArgument(text)
        return BackendUnavailable(f"Qdrant error: {type(exc).__name__}: {text}")

    def _info(self, collection: str, max_age_s: float = 5.0) -> tuple[dict[str, int], int]:
        """Named-vector dims and search ef of ``collection`` (alias allowed), cached ``max_age_s``.

        Raises:
            NotFound: unknown collection/alias.
        """
        now = time.monotonic()
        cached = self._dims_cache.get(collection)
        if cached is not None and now - cached[0] < max_age_s:
            return cached[1], cached[2]
        if not collection or not isinstance(collection, str):
            raise InvalidArgument("collection name must be a non-empty string", field="collection")
        info = self._call(self._client.get_collection, collection, collection=collection)
        vparams = info.config.params.vectors
        if not isinstance(vparams, dict):
            raise InvalidArgument(f"collection {collection!r} has no named vectors", field="collection")
        dims = {name: int(p.size) for name, p in vparams.items()}
        meta = getattr(info.config, "metadata", None) or {}
        ef = int(meta.get("designsearch_ef", self._search_ef)) if isinstance(meta, dict) else self._search_ef
        self._dims_cache[collection] = (now, dims, ef)
        return dims, ef

    def _invalidate(self) -> None:
        self._dims_cache.clear()

    def _search_params(self, ef: int) -> models.SearchParams:
        # local mode is brute force and ignores these, as it ignores payload indexes: no branch here
        return models.SearchParams(hnsw_ef=ef, exact=self._exact)

    # -- collections -----------------------------------------------------------------------------

    def create_collection(self, name: str, vectors: dict[str, int], hnsw: HnswConfig | None = None) -> bool:
        """Create ``name`` with cosine named vectors ``{name: D}``.

        On a server: HNSW ``m``/``ef_construct``/``full_scan_threshold`` (kB) from ``hnsw``, int8
        scalar quantisation (quantile 0.99, kept in RAM, rescored with originals) if
        ``hnsw.quantization == "int8"``, and keyword/integer payload indexes (:data:`PAYLOAD_INDEXES`).

        Returns:
            False if the collection (or an alias of that name) already existed.

        Raises:
            InvalidArgument: empty name, no vectors, non-positive dimension, unknown quantisation.
        """
        if not name or not isinstance(name, str):
            raise InvalidArgument("collection name must be a non-empty string", field="name")
        if not vectors or any(not isinstance(d, (int, np.integer)) or d <= 0 for d in vectors.values()):
            raise InvalidArgument(f"vectors must map names to positive dims, got {vectors!r}", field="vectors")
        if hnsw is not None and hnsw.quantization not in (None, "int8"):
            raise InvalidArgument(f"unknown quantization {hnsw.quantization!r}", field="quantization")
        if self._exists(name):
            return False
        cfg = {n: models.VectorParams(size=int(d), distance=models.Distance.COSINE) for n, d in vectors.items()}
        kwargs: dict[str, Any] = {}
        if hnsw is not None:
            kwargs["hnsw_config"] = models.HnswConfigDiff(
                m=hnsw.m, ef_construct=hnsw.ef_construct, full_scan_threshold=hnsw.full_scan_threshold
            )
            if hnsw.quantization == "int8":
                kwargs["quantization_config"] = models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(
                        type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                    )
                )
            kwargs["metadata"] = {"designsearch_ef": hnsw.ef}
        try:
            self._call(self._client.create_collection, name, vectors_config=cfg, collection=name, **kwargs)
        except InvalidArgument:
            if self._exists(name):  # lost a race with another creator
                return False
            raise
        for field, schema in PAYLOAD_INDEXES.items():
            self._call(
                self._client.create_payload_index, name, field_name=field, field_schema=schema,
                wait=True, collection=name,
            )
        self._invalidate()
        return True

    def _exists(self, name: str) -> bool:
        if self._call(self._client.collection_exists, name, collection=name):
            return True
        return self.resolve_alias(name) is not None

    def delete_collection(self, name: str) -> None:
        """Drop a collection (aliases pointing at it go with it). No-op if absent."""
        self._call(self._client.delete_collection, name, collection=name)
        self._invalidate()

    def vector_dims(self, collection: str) -> dict[str, int]:
        """Named vectors ``{name: dim}`` of a collection or alias.

        Raises:
            NotFound: unknown collection or alias.
        """
        return dict(self._info(collection)[0])

    def list_collections(self) -> list[str]:
        """Names of existing collections (not aliases), sorted."""
        resp = self._call(self._client.get_collections)
        return sorted(c.name for c in resp.collections)

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` in one ``update_collection_aliases`` call (atomic).

        Raises:
            NotFound: ``collection`` does not exist (aliases cannot point at aliases).
            InvalidArgument: ``alias`` is the name of a collection.
        """
        if not alias or not isinstance(alias, str):
            raise InvalidArgument("alias must be a non-empty string", field="alias")
        names = self.list_collections()
        if collection not in names:
            raise NotFound(f"collection {collection!r} not found", field="collection")
        if alias in names:
            raise InvalidArgument(f"{alias!r} is a collection, not an alias", field="alias")
        ops: list[models.AliasOperations] = []
        if self.resolve_alias(alias) is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        self._call(self._client.update_collection_aliases, change_aliases_operations=ops, collection=collection)
        self._invalidate()

    def resolve_alias(self, alias: str) -> str | None:
        """Collection that ``alias`` points to, or None."""
        resp = self._call(self._client.get_aliases)
        for a in resp.aliases:
            if a.alias_name == alias:
                return a.collection_name
        return None

    # -- points ----------------------------------------------------------------------------------

    def upsert(self, collection: str, points: Sequence[Point], batch_size: int = 256) -> None:
        """Insert or replace points by id (``wait=True``: visible to searches on return).

        Vectors are normalised here (cosine); points are sent in batches of ``batch_size``.

        Raises:
            NotFound: unknown collection. InvalidArgument: bad id, vector name or dimension.
        """
        dims, _ = self._info(collection)
        structs = []
        for p in points:
            if not p.vectors:
                raise InvalidArgument(f"point {p.id!r} has no vectors", field="vectors")
            structs.append(
                models.PointStruct(
                    id=canonical_id(p.id),
                    vector={n: prepare_vector(v, n, dims).tolist() for n, v in p.vectors.items()},
                    payload=dict(p.payload),
                )
            )
        for start in range(0, len(structs), batch_size):
            self._call(
                self._client.upsert, collection, points=structs[start : start + batch_size], wait=True,
                collection=collection,
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        self._info(collection)
        if not ids:
            return
        selector = models.PointIdsList(points=[canonical_id(i) for i in ids])
        self._call(self._client.delete, collection, points_selector=selector, wait=True, collection=collection)

    def count(self, collection: str, flt: SearchFilter | None = None) -> int:
        """Exact number of points matching ``flt``."""
        self._info(collection)
        resp = self._call(
            self._client.count, collection, count_filter=to_qdrant_filter(flt), exact=True, collection=collection
        )
        return int(resp.count)

    def retrieve(self, collection: str, ids: Sequence[str]) -> list[Point]:
        """Points with these ids, in request order (missing ids skipped); vectors float32, normalised."""
        self._info(collection)
        if not ids:
            return []
        wanted = [canonical_id(i) for i in ids]
        recs = self._call(
            self._client.retrieve, collection, ids=wanted, with_payload=True, with_vectors=True,
            collection=collection,
        )
        return records_to_points(recs, wanted)

    def search(
        self, collection: str, vector: np.ndarray, *, using: str, limit: int, flt: SearchFilter | None = None
    ) -> list[Hit]:
        """Top ``limit`` points by cosine similarity of vector ``using`` to ``vector``.

        Args:
            vector: float32 ``(D,)`` (normalised here).

        Returns:
            hits, best first; ``score`` is the cosine similarity.

        Raises:
            NotFound, InvalidArgument, BackendUnavailable.
        """
        dims, ef = self._info(collection)
        q = prepare_vector(vector, using, dims)
        limit = check_limit(limit)
        resp = self._call(
            self._client.query_points,
            collection,
            query=q.tolist(),
            using=using,
            limit=limit,
            query_filter=to_qdrant_filter(flt),
            search_params=self._search_params(max(ef, limit)),
            with_payload=True,
            with_vectors=False,
            collection=collection,
        )
        return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in resp.points]

    def search_groups(
        self,
        collection: str,
        vector: np.ndarray,
        *,
        using: str,
        limit: int,
        group_by: str = "design_id",
        group_size: int = 1,
        flt: SearchFilter | None = None,
    ) -> list[list[Hit]]:
        """Top ``limit`` groups by payload ``group_by`` (``query_points_groups``), ``group_size`` hits each."""
        dims, ef = self._info(collection)
        q = prepare_vector(vector, using, dims)
        limit = check_limit(limit)
        group_size = check_limit(group_size, "group_size")
        resp = self._call(
            self._client.query_points_groups,
            collection,
            group_by=group_by,
            query=q.tolist(),
            using=using,
            limit=limit,
            group_size=group_size,
            query_filter=to_qdrant_filter(flt),
            search_params=self._search_params(max(ef, limit * group_size)),
            with_payload=True,
            with_vectors=False,
            collection=collection,
        )
        return [
            [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in g.hits]
            for g in resp.groups
        ]

    def iter_points(self, collection: str, flt: SearchFilter | None = None, batch: int = 1024) -> Iterator[Point]:
        """Every point of ``collection`` matching ``flt`` (scroll, filter applied by Qdrant), vectors included."""
        offset = None
        while True:
            recs, offset = self._call(
                self._client.scroll, collection, limit=batch, offset=offset, scroll_filter=to_qdrant_filter(flt),
                with_payload=True, with_vectors=True, collection=collection,
            )
            for r in recs:
                vecs = r.vector if isinstance(r.vector, dict) else {}
                yield Point(
                    id=str(r.id),
                    vectors={n: np.asarray(v, dtype=np.float32) for n, v in vecs.items()},
                    payload=dict(r.payload or {}),
                )
            if offset is None:
                return

    def close(self) -> None:
        """Close the client (local mode flushes and releases its storage lock)."""
        with self._lock:
            self._client.close()


class _NullLock:
    """A do-nothing context manager standing in for a lock (server clients are thread-safe)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
