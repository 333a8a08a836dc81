"""Off-process HNSW build-and-swap of the embedded engine (see :mod:`designsearch.services.search.engines.edge.index`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any

import qdrant_edge as qe

from designsearch.errors import BackendUnavailable
from designsearch.services.search.engines.common import check_limit
from designsearch.services.search.engines.edge.state import _Collection, _META, _copy_tree, _write_json_atomic


_OPTIMIZE_CHILD = (
    "import os, sys\n"
    "os.nice(10)\n"
    "import qdrant_edge as qe\n"
    "s = qe.EdgeShard.load(sys.argv[1])\n"
    "s.optimize()\n"
    "s.flush()\n"
    "s.close()\n"
)


class BuildMixin:
    """Off-process HNSW builds of :class:`~designsearch.services.search.engines.edge.EdgeIndex` (copy → optimise in a child → replay → swap)."""

    def _maybe_build(self, coll: _Collection) -> None:
        if not self.auto_index or coll.build_thread is not None:
            return
        if coll.build_error and time.monotonic() - coll.build_failed_at < 60.0:
            return  # back off after a failed build instead of retrying on every write
        threshold = self.auto_index_min
        if threshold is None:
            total = self._read(coll, lambda s: s.info().points_count)
            threshold = max(5000, total // 10)
        if coll.unindexed >= threshold:
            self.build_index(coll.name, wait=False)

    def build_index(self, collection: str, wait: bool = True, timeout: float | None = None) -> bool:
        """Build HNSW for unindexed points off-process (copy → child optimise → replay → swap).

        Queries keep running on the live shard throughout; writes pause only while the shard
        directory is copied.

        Args:
            wait: block until the new generation is live.
            timeout: seconds to wait (None: no limit).

        Returns:
            True if a build was started (or is running) — with ``wait``, True once it is live.

        Raises:
            BackendUnavailable: the child build failed (with ``wait``).
        """
        coll = self._get(collection)
        with coll.write_lock:
            thread = coll.build_thread
            if thread is None:
                thread = threading.Thread(
                    target=self._build, args=(coll,), name=f"edge-build-{coll.name}", daemon=True
                )
                coll.build_thread = thread
                thread.start()
        if wait:
            thread.join(timeout)
            if coll.build_error:
                raise BackendUnavailable(f"index build of {coll.name!r} failed: {coll.build_error}")
        return True

    def _build(self, coll: _Collection) -> None:
        new_gen = coll.generation + 1
        new_dir = coll.gen_dir(new_gen)
        coll.build_error = None
        pending = 0
        try:
            with coll.write_lock:
                shutil.rmtree(new_dir, ignore_errors=True)
                coll.shard.flush()
                _copy_tree(coll.gen_dir(), new_dir)
                coll.replay_log = []
                pending, coll.unindexed = coll.unindexed, 0
            proc = subprocess.run(
                [sys.executable, "-c", _OPTIMIZE_CHILD, str(new_dir)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise RuntimeError(f"optimiser child exited {proc.returncode}: {proc.stderr[-2000:]}")
            new_shard = qe.EdgeShard.load(str(new_dir))
            with coll.write_lock:
                for op in coll.replay_log or []:
                    self._apply(coll, new_shard, op)
                    if op[0] == "upsert":
                        coll.unindexed += len(op[1])
                coll.replay_log = None
                coll.rw.acquire_write()
                try:
                    old, coll.shard = coll.shard, new_shard
                    old_dir = coll.gen_dir()
                    coll.generation = new_gen
                    _write_json_atomic(coll.path / _META, coll.meta())
                finally:
                    coll.rw.release_write()
            old.close()
            shutil.rmtree(old_dir, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001 - recorded, reported by build_index(wait=True)
            coll.build_error = f"{type(exc).__name__}: {exc}"
            coll.build_failed_at = time.monotonic()
            with coll.write_lock:
                coll.replay_log = None
                coll.unindexed += pending
            if coll.generation != new_gen:
                shutil.rmtree(new_dir, ignore_errors=True)
        finally:
            coll.build_thread = None

    def optimize(self, collection: str) -> bool:
        """Build HNSW in-process, now (blocks this process — bulk loads, benchmarks, CLIs).

        Returns:
            True if the engine changed any segment.
        """
        coll = self._get(collection)
        with coll.write_lock:
            changed = self._read(coll, lambda s: s.optimize())
            coll.unindexed = 0
            self._read(coll, lambda s: s.flush())
        return bool(changed)

    def set_search_ef(self, collection: str, ef: int) -> None:
        """Change the HNSW search ``ef`` of a collection (persisted in ``collection.json``)."""
        coll = self._get(collection)
        ef = check_limit(ef, "ef")
        with coll.write_lock:
            coll.hnsw = replace(coll.hnsw, ef=ef)
            _write_json_atomic(coll.path / _META, coll.meta())

    def info(self, collection: str) -> dict[str, Any]:
        """Points, indexed vectors, segments and generation of a collection (for health/metrics)."""
        coll = self._get(collection)
        info = self._read(coll, lambda s: s.info())
        return {
            "points": int(info.points_count),
            "indexed_vectors": int(info.indexed_vectors_count),
            "segments": int(info.segments_count),
            "generation": coll.generation,
            "building": coll.build_thread is not None,
            "build_error": coll.build_error,
        }

    def wait_for_builds(self, timeout: float | None = None) -> None:
        """Join every running background build (tests, shutdown)."""
        for coll in list(self._open.values()):
            t = coll.build_thread
            if t is not None:
                t.join(timeout)
