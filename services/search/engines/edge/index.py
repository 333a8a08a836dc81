"""``EdgeIndex``: the :class:`~designsearch.services.search.index.VectorIndex` over Qdrant Edge (``qdrant-edge-py``).

Qdrant Edge is Qdrant's storage engine (segments, WAL, payload indexes, HNSW graphs of Malkov &
Yashunin, TPAMI 2018, scalar quantisation) as an in-process library: one ``EdgeShard`` per
directory, no server, no background threads.

Layout under ``root``::

    root/aliases.json                 {"alias": "collection"}, replaced atomically (tmp + rename)
    root/<collection>/collection.json {"vectors": {name: dim}, "hnsw": {...}, "generation": N}
    root/<collection>/gen-<N>/        the live EdgeShard directory (segments/, wal/, edge_config.json)

Indexing without blocking queries. Edge builds HNSW only when ``EdgeShard.optimize()`` is called,
and in qdrant-edge-py 0.9.0 that call holds the Python GIL for the whole build (measured: a
ticker thread stalls for the full 16 s of a 20k × 512-d build), so an in-process build would
freeze every query of the service. New points are therefore first served from the shard's
appendable segment (exact scan, always correct), and the HNSW graph is built **off-process**
(copy → optimise in a child → swap, with replay):

1. under the write lock: ``flush()``, copy ``gen-N`` to ``gen-N+1`` and start logging every
   upsert/delete made from now on (writes are paused only for the copy; reads continue);
2. a child Python process (``nice`` 10) opens ``gen-N+1`` and runs ``optimize()`` — it has its own
   GIL, so this process keeps answering queries;
3. this process opens ``gen-N+1``, replays the logged writes under the write lock, switches the
   live shard (readers drain through a readers-writer lock), rewrites ``collection.json`` to point
   at ``N+1`` and deletes ``gen-N``.

Caveat: opening the new generation (``EdgeShard.load``) also holds the GIL, so queries stall once
per build for about the reopen time (measured: max 450 ms at 100k points; reopen 3.9 s at 1M
512-d int8). Fixing that needs the binding to release the GIL (pyo3 ``allow_threads``) or queries
served from another process. Two processes cannot open one shard (the WAL is locked: a second
open fails with ``WouldBlock`` → :class:`~designsearch.errors.BackendUnavailable`).

A build starts automatically after writes once at least ``auto_index_min`` points (default: the
larger of 5,000 and 10% of the collection) are unindexed, or on :meth:`EdgeIndex.build_index`.
Bulk loaders that own the process can call :meth:`EdgeIndex.optimize` (in-process, blocking,
no copy: fastest). A crash at any step leaves ``collection.json`` pointing at a complete
generation; stray generations are removed on open.

Snapshots. qdrant-edge-py can *consume* server snapshots (``EdgeShard.unpack_snapshot``,
``update_from_snapshot``) but has no call that *creates* one, so :meth:`EdgeIndex.create_snapshot`
writes an uncompressed tar of the flushed shard directory plus ``collection.json`` (taken under
the write lock, hence consistent; reads continue), and :meth:`EdgeIndex.restore_snapshot` unpacks
it into a new generation. A portable snapshot (``.dsnap``, :mod:`designsearch.services.search.engines.qdrant`) is
accepted too, so data moves between engines.

Filters map to Edge ``Filter``/``FieldCondition`` (``MatchAny``, ``RangeFloat``), evaluated by
the engine before ranking, with payload indexes on ``design_id``/``brand``/``kind`` (keyword) and
``year`` (integer). Edge has no ``query_points_groups``; :meth:`EdgeIndex.search_groups` fetches
score-ordered hits in growing pages and groups them client-side (same result as Qdrant's
grouping when the page reaches far enough, which it grows until it does or the filter is
exhausted).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from designsearch.domain import VIEW_CUTOUT, Point
from designsearch.errors import BackendUnavailable, DesignSearchError, InvalidArgument, NotFound
from designsearch.services.search.engines.common import canonical_id, prepare_vector
from designsearch.services.search.engines.edge.build import BuildMixin
from designsearch.services.search.engines.edge.queries import QueryMixin
from designsearch.services.search.engines.edge.snapshots import SnapshotMixin
from designsearch.services.search.engines.edge.state import (
    _ALIASES,
    _Collection,
    _INTEGER_FIELDS,
    _KEYWORD_FIELDS,
    _META,
    _write_json_atomic,
)
from designsearch.services.search.index import HnswConfig


class EdgeIndex(QueryMixin, BuildMixin, SnapshotMixin):
    """:class:`~designsearch.services.search.index.VectorIndex` over Qdrant Edge, one directory per collection.

    Args:
        root: directory holding every collection (created if missing).
        default_hnsw: HNSW/quantisation parameters for collections created without one.
        exact: answer every search by exact scan (tests, congruence checks).
        auto_index: start background HNSW builds after writes (see module docstring).
        auto_index_min: unindexed points that trigger a build (None: max(5000, 10% of points)).
        max_search_threads: Edge's per-shard search pool size (1 keeps one query on one core).
        oversampling: int8 quantisation candidates fetched per result before rescoring with
            the original float32 vectors.
        acorn_max_selectivity: filtered searches whose estimated selectivity is below this use
            ACORN-1 traversal (Patel et al., SIGMOD 2024: also expand the neighbours of
            neighbours that fail the filter), so the graph stays connected under a filter. Without
            it Edge only walks nodes that pass the filter and recall@10 at a 25% year-range filter
            fell to 0.56-0.68 (30k points, ef 64-128); with it 0.99. None disables.
        payload_m: edges of Qdrant's extra payload-aware HNSW links, built per value of each
            indexed keyword/integer field whose points exceed the full-scan threshold ("filterable
            HNSW"). 0 (default) skips them: a build then costs one graph instead of one per large
            value block; filters matching fewer points than ``full_scan_threshold`` kB of vectors
            are answered exactly from the payload index, larger ones by filtered HNSW traversal.
            None uses ``m``.

    Thread safety: every method may be called from any thread. Queries run concurrently with
    upserts and with background index builds; writes to one collection are serialised.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        default_hnsw: HnswConfig | None = None,
        exact: bool = False,
        auto_index: bool = True,
        auto_index_min: int | None = None,
        max_search_threads: int | None = 1,
        oversampling: float = 2.0,
        payload_m: int | None = 0,
        acorn_max_selectivity: float | None = 0.4,
    ) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(f"cannot create index root {str(self.root)!r}: {exc}") from exc
        self.default_hnsw = default_hnsw or HnswConfig()
        self.exact = exact
        self.auto_index = auto_index
        self.auto_index_min = auto_index_min
        self.max_search_threads = max_search_threads
        self.oversampling = oversampling
        self.payload_m = payload_m
        self.acorn = (
            qe.AcornSearchParams(enable=True, max_selectivity=acorn_max_selectivity)
            if acorn_max_selectivity is not None
            else None
        )
        self._lock = threading.RLock()  # guards self._open and alias file updates
        self._open: dict[str, _Collection] = {}
        self._closed = False

    # -- config ----------------------------------------------------------------------------------

    def _edge_config(self, dims: dict[str, int], hnsw: HnswConfig) -> qe.EdgeConfig:
        """Edge shard configuration: cosine named vectors, HNSW, optional int8 SQ (q=0.99, RAM)."""
        quant = None
        if hnsw.quantization == "int8":
            quant = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
        return qe.EdgeConfig(
            vectors={n: qe.EdgeVectorParams(size=int(d), distance=qe.Distance.Cosine) for n, d in dims.items()},
            hnsw_config=qe.HnswIndexConfig(
                m=hnsw.m,
                ef_construct=hnsw.ef_construct,
                full_scan_threshold=hnsw.full_scan_threshold,
                payload_m=self.payload_m,
            ),
            quantization_config=quant,
            optimizers=qe.EdgeOptimizersConfig(
                # one segment per collection after a build: fewest graphs to search
                default_segment_number=1,
                # segments above the full-scan threshold (kB of vectors) get an HNSW graph
                indexing_threshold=max(1, hnsw.full_scan_threshold),
            ),
            max_search_threads=self.max_search_threads,
        )

    def _search_params(self, coll: _Collection, limit: int, filtered: bool = False) -> qe.SearchParams:
        quant = None
        if coll.hnsw.quantization == "int8":
            quant = qe.QuantizationSearchParams(rescore=True, oversampling=self.oversampling)
        return qe.SearchParams(
            hnsw_ef=max(coll.hnsw.ef, limit),
            exact=self.exact,
            quantization=quant,
            acorn=self.acorn if filtered else None,
        )

    # -- collections -----------------------------------------------------------------------------

    def _check_name(self, name: str, field: str = "collection") -> str:
        if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or "\\" in name:
            raise InvalidArgument(f"invalid {field} name {name!r}", field=field)
        if name in (_META, _ALIASES) or name.endswith(".tmp"):
            raise InvalidArgument(f"reserved {field} name {name!r}", field=field)
        return name

    def _aliases(self) -> dict[str, str]:
        path = self.root / _ALIASES
        if not path.exists():
            return {}
        try:
            return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(f"cannot read {path}: {exc}") from exc

    def _collection_names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / _META).is_file())

    def _resolve(self, name: str) -> str:
        """Collection name for a collection or alias. Raises NotFound."""
        self._check_name(name)
        if (self.root / name / _META).is_file():
            return name
        target = self._aliases().get(name)
        if target is not None and (self.root / target / _META).is_file():
            return target
        raise NotFound(f"collection {name!r} not found", field="collection")

    def _get(self, name: str) -> _Collection:
        """The open collection for a name or alias, opening it on first use."""
        if self._closed:
            raise BackendUnavailable("EdgeIndex is closed")
        real = self._resolve(name)
        with self._lock:
            coll = self._open.get(real)
            if coll is not None:
                return coll
            path = self.root / real
            meta = json.loads((path / _META).read_text())
            coll = _Collection(real, path, meta)
            # remove generations left behind by an interrupted build/restore
            for p in path.iterdir():
                if p.is_dir() and p.name.startswith("gen-") and p.name != coll.gen_dir().name:
                    shutil.rmtree(p, ignore_errors=True)
            try:
                coll.shard = qe.EdgeShard.load(str(coll.gen_dir()))
            except Exception as exc:  # noqa: BLE001 - engine raises plain Exception
                raise BackendUnavailable(f"cannot open collection {real!r}: {exc}") from exc
            info = coll.shard.info()
            coll.unindexed = max(0, info.points_count - self._indexed_points(info, coll))
            self._open[real] = coll
            return coll

    @staticmethod
    def _indexed_points(info: Any, coll: _Collection) -> int:
        # indexed_vectors_count sums over named vectors; points are indexed per name. The cutout
        # vector is held by crop points only, so it is not counted as one every point has.
        per_point = max(1, len(coll.dims) - (VIEW_CUTOUT in coll.dims))
        return min(int(info.points_count), int(info.indexed_vectors_count) // per_point)

    def create_collection(self, name: str, vectors: dict[str, int], hnsw: HnswConfig | None = None) -> bool:
        """Create ``name`` with cosine named vectors ``{name: D}`` and payload indexes.

        Returns:
            False if a collection or alias of that name already exists (nothing changed).

        Raises:
            InvalidArgument: bad name, empty/non-positive dims, unknown quantisation.
        """
        self._check_name(name)
        if not vectors or any(not isinstance(d, (int, np.integer)) or d <= 0 for d in vectors.values()):
            raise InvalidArgument(f"vectors must map names to positive dims, got {vectors!r}", field="vectors")
        hnsw = hnsw or self.default_hnsw
        if hnsw.quantization not in (None, "int8"):
            raise InvalidArgument(f"unknown quantization {hnsw.quantization!r}", field="quantization")
        with self._lock:
            if name in self._collection_names() or name in self._aliases():
                return False
            path = self.root / name
            if path.exists():  # debris of a failed create
                shutil.rmtree(path)
            meta = {"vectors": {str(k): int(v) for k, v in vectors.items()}, "hnsw": asdict(hnsw), "generation": 0}
            try:
                shard = qe.EdgeShard.create(str(path / "gen-0"), self._edge_config(meta["vectors"], hnsw))
                for f in _KEYWORD_FIELDS:
                    shard.update(qe.UpdateOperation.create_field_index(f, qe.PayloadSchemaType.Keyword))
                for f in _INTEGER_FIELDS:
                    shard.update(qe.UpdateOperation.create_field_index(f, qe.PayloadSchemaType.Integer))
                shard.flush()
                shard.close()
            except Exception as exc:  # noqa: BLE001
                shutil.rmtree(path, ignore_errors=True)
                raise BackendUnavailable(f"cannot create collection {name!r}: {exc}") from exc
            _write_json_atomic(path / _META, meta)  # the collection exists once this file does
            return True

    def delete_collection(self, name: str) -> None:
        """Drop a collection, its files and the aliases pointing at it (no-op if absent)."""
        try:
            real = self._resolve(name)
        except NotFound:
            return
        with self._lock:
            coll = self._open.pop(real, None)
            if coll is not None:
                self._close_collection(coll)
            (self.root / real / _META).unlink(missing_ok=True)
            shutil.rmtree(self.root / real, ignore_errors=True)
            aliases = {a: c for a, c in self._aliases().items() if c != real}
            _write_json_atomic(self.root / _ALIASES, aliases)

    def list_collections(self) -> list[str]:
        """Names of existing collections (not aliases), sorted."""
        return self._collection_names()

    def vector_dims(self, collection: str) -> dict[str, int]:
        """Named vectors ``{name: dim}`` of a collection or alias.

        Raises:
            NotFound: unknown collection or alias.
        """
        return dict(self._get(collection).dims)

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` (one atomic rename of ``aliases.json``).

        Raises:
            NotFound: ``collection`` is not a collection. InvalidArgument: ``alias`` names a collection.
        """
        self._check_name(alias, "alias")
        self._check_name(collection)
        with self._lock:
            names = self._collection_names()
            if collection not in names:
                raise NotFound(f"collection {collection!r} not found", field="collection")
            if alias in names:
                raise InvalidArgument(f"{alias!r} is a collection, not an alias", field="alias")
            aliases = self._aliases()
            aliases[alias] = collection
            _write_json_atomic(self.root / _ALIASES, aliases)

    def resolve_alias(self, alias: str) -> str | None:
        """Collection an alias points to, or None."""
        return self._aliases().get(alias)

    # -- reads -----------------------------------------------------------------------------------

    def _read(self, coll: _Collection, fn):
        """Run ``fn(shard)`` under the read lock, mapping engine errors."""
        coll.rw.acquire_read()
        try:
            if coll.shard is None:
                raise NotFound(f"collection {coll.name!r} was closed or deleted", field="collection")
            return fn(coll.shard)
        except DesignSearchError:
            raise
        except Exception as exc:  # noqa: BLE001 - engine raises plain Exception
            raise self._map_error(exc, coll.name) from exc
        finally:
            coll.rw.release_read()

    @staticmethod
    def _map_error(exc: Exception, name: str) -> DesignSearchError:
        text = str(exc)
        low = text.lower()
        if "dimension" in low or "vector name" in low or "wrong input" in low or isinstance(exc, (ValueError, TypeError)):
            return InvalidArgument(text)
        if "not found" in low:
            return NotFound(f"{name!r}: {text}", field="collection")
        return BackendUnavailable(f"edge engine error on {name!r}: {text}")

    def _apply(self, coll: _Collection, shard: qe.EdgeShard, op: tuple[str, Any]) -> None:
        kind, data = op
        if kind == "upsert":
            shard.update(qe.UpdateOperation.upsert_points(data))
        else:
            shard.update(qe.UpdateOperation.delete_points(data))

    def _write(self, coll: _Collection, op: tuple[str, Any]) -> None:
        with coll.write_lock:
            coll.rw.acquire_read()  # the live shard must not be swapped/closed under us
            try:
                if coll.shard is None:
                    raise NotFound(f"collection {coll.name!r} was closed or deleted", field="collection")
                self._apply(coll, coll.shard, op)
            except DesignSearchError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise self._map_error(exc, coll.name) from exc
            finally:
                coll.rw.release_read()
            if coll.replay_log is not None:
                coll.replay_log.append(op)

    def upsert(self, collection: str, points: Sequence[Point], batch_size: int = 1000) -> None:
        """Insert or replace points by id; visible to queries on return (WAL-logged).

        Vectors are validated and normalised here (cosine). May start a background HNSW build.

        Raises:
            NotFound: unknown collection. InvalidArgument: bad id, vector name, dimension or values.
        """
        coll = self._get(collection)
        edge_points = []
        for p in points:
            if not p.vectors:
                raise InvalidArgument(f"point {p.id!r} has no vectors", field="vectors")
            edge_points.append(
                qe.Point(
                    canonical_id(p.id),
                    {n: prepare_vector(v, n, coll.dims) for n, v in p.vectors.items()},
                    dict(p.payload),
                )
            )
        for start in range(0, len(edge_points), batch_size):
            chunk = edge_points[start : start + batch_size]
            self._write(coll, ("upsert", chunk))
            coll.unindexed += len(chunk)
        self._maybe_build(coll)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        coll = self._get(collection)
        if ids:
            self._write(coll, ("delete", [canonical_id(i) for i in ids]))

    # -- lifecycle -------------------------------------------------------------------------------

    def _close_collection(self, coll: _Collection) -> None:
        t = coll.build_thread
        if t is not None:
            t.join()
        with coll.write_lock:
            coll.rw.acquire_write()
            try:
                if coll.shard is not None:
                    try:
                        coll.shard.flush()
                        coll.shard.close()
                    finally:
                        coll.shard = None
            finally:
                coll.rw.release_write()

    def close(self) -> None:
        """Wait for running builds, flush and close every open shard."""
        with self._lock:
            for coll in list(self._open.values()):
                self._close_collection(coll)
            self._open.clear()
            self._closed = True
