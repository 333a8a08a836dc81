"""Snapshots of the embedded engine: a tar of the flushed shard (create/restore), portable export, scroll."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from designsearch.domain import Point, SearchFilter
from designsearch.errors import BackendUnavailable, InvalidArgument, NotFound
from designsearch.services.search.engines.edge.payload_filters import to_edge_filter
from designsearch.services.search.engines.edge.state import _META, _gnu_tar
from designsearch.services.search.engines.portable import read_portable_snapshot


class SnapshotMixin:
    """Snapshots of :class:`~designsearch.services.search.engines.edge.EdgeIndex`: tar of the shard, portable ``.dsnap``, scroll."""

    def create_snapshot(self, collection: str, target_dir: str) -> str:
        """Tar the flushed shard directory and ``collection.json`` into ``target_dir``.

        Taken under the collection's write lock, so it is consistent; queries continue.

        Returns:
            path of ``<collection>-<UTC stamp>-<rand>.edge.tar``.
        """
        coll = self._get(collection)
        os.makedirs(target_dir, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = Path(target_dir) / f"{coll.name}-{stamp}-{uuid.uuid4().hex[:8]}.edge.tar"
        tmp = target.with_name(target.name + ".tmp")
        with coll.write_lock:
            self._read(coll, lambda s: s.flush())
            meta = dict(coll.meta(), generation=0, format="designsearch-edge-snapshot/1")
            stage = Path(target_dir) / f".stage-{uuid.uuid4().hex[:8]}"
            stage.mkdir()
            try:
                (stage / _META).write_text(json.dumps(meta))
                tar = _gnu_tar()
                if tar is not None:  # sparse-aware: stores holes, not zeros
                    subprocess.run(
                        [tar, "--sparse", "--transform", f"s,^{coll.gen_dir().name},gen-0,", "-cf", str(tmp),
                         "-C", str(stage), _META, "-C", str(coll.path), coll.gen_dir().name],
                        check=True, capture_output=True,
                    )
                else:
                    with tarfile.open(tmp, "w") as tf:
                        tf.add(str(stage / _META), arcname=_META)
                        tf.add(str(coll.gen_dir()), arcname="gen-0")
            except (OSError, subprocess.CalledProcessError) as exc:
                raise BackendUnavailable(f"snapshot of {coll.name!r} failed: {exc}") from exc
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        os.replace(tmp, target)
        return str(target)

    def restore_snapshot(self, snapshot_path: str, collection: str) -> None:
        """Create or replace ``collection`` from an ``.edge.tar`` or a portable ``.dsnap`` snapshot.

        The new data is unpacked beside the live collection and switched in by renaming, so a
        failure leaves the old collection untouched.

        Raises:
            NotFound: no such file. InvalidArgument: not a snapshot this engine understands.
        """
        self._check_name(collection)
        src = Path(snapshot_path)
        if not src.is_file():
            raise NotFound(f"snapshot {snapshot_path!r} does not exist", field="snapshot_path")
        staging = self.root / f".restore-{collection}-{uuid.uuid4().hex[:8]}"
        if zipfile.is_zipfile(src):
            dims, hnsw, batches = read_portable_snapshot(src)
            tmp_index = type(self)(staging, auto_index=False, max_search_threads=self.max_search_threads)
            tmp_index.create_collection("c", dims, hnsw or self.default_hnsw)
            for pts in batches:
                tmp_index.upsert("c", pts)
            tmp_index.optimize("c")
            tmp_index.close()
            unpacked = staging / "c"
        elif tarfile.is_tarfile(src):
            with tarfile.open(src) as tar:
                names = tar.getnames()
                if _META not in names or not any(n == "gen-0" or n.startswith("gen-0/") for n in names):
                    raise InvalidArgument(f"{snapshot_path!r} is not an edge snapshot", field="snapshot_path")
                (staging / "c").mkdir(parents=True)
                gnu = _gnu_tar()
                if gnu is not None:  # recreates sparse files as sparse
                    subprocess.run([gnu, "-xf", str(src), "-C", str(staging / "c")], check=True, capture_output=True)
                else:
                    tar.extractall(staging / "c", filter="data")
            unpacked = staging / "c"
        else:
            raise InvalidArgument(f"{snapshot_path!r} is not a snapshot", field="snapshot_path")
        with self._lock:
            if collection in self._aliases():
                shutil.rmtree(staging, ignore_errors=True)
                raise InvalidArgument(f"{collection!r} is an alias; restore into a collection", field="collection")
            self._drop_files(collection)
            os.replace(unpacked, self.root / collection)
            shutil.rmtree(staging, ignore_errors=True)

    def _drop_files(self, name: str) -> None:
        coll = self._open.pop(name, None)
        if coll is not None:
            self._close_collection(coll)
        if (self.root / name).exists():
            trash = self.root / f".trash-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(self.root / name, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def iter_points(self, collection: str, flt: SearchFilter | None = None, batch: int = 1024) -> Iterator[Point]:
        """Every point of ``collection`` matching ``flt`` (scroll, filter applied by the engine), vectors included."""
        coll = self._get(collection)
        offset = None
        edge_filter = to_edge_filter(flt)
        while True:
            req = qe.ScrollRequest(offset=offset, limit=batch, filter=edge_filter, with_payload=True, with_vector=True)
            recs, offset = self._read(coll, lambda s: s.scroll(req))
            for r in recs:
                vecs = r.vector if isinstance(r.vector, dict) else {}
                yield Point(
                    id=str(r.id),
                    vectors={n: np.asarray(v, dtype=np.float32) for n, v in vecs.items()},
                    payload=dict(r.payload or {}),
                )
            if offset is None:
                return
