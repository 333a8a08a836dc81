"""Snapshots of :class:`~designsearch.services.search.engines.qdrant.QdrantIndex`: native Qdrant snapshots on a
server (downloaded/uploaded over REST), portable ``.dsnap`` files (:mod:`designsearch.services.search.engines.portable`) in local mode."""

from __future__ import annotations

import os
import time
import uuid
import zipfile
from pathlib import Path

from designsearch.errors import BackendUnavailable, InvalidArgument, NotFound
from designsearch.services.search.engines.portable import read_portable_snapshot, write_portable_snapshot
from designsearch.services.search.index import HnswConfig


class SnapshotMixin:
    """``create_snapshot``/``restore_snapshot`` of :class:`~designsearch.services.search.engines.qdrant.QdrantIndex`."""

    def create_snapshot(self, collection: str, target_dir: str) -> str:
        """Snapshot ``collection`` into ``target_dir``; returns the file path.

        Server: a native Qdrant snapshot (``.snapshot``), downloaded over REST. Local mode: a
        portable snapshot (``.dsnap``, see module docstring) written under the local lock, so it is
        consistent.
        """
        dims, ef = self._info(collection)
        os.makedirs(target_dir, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        if self.local:
            target = Path(target_dir) / f"{collection}-{stamp}-{uuid.uuid4().hex[:8]}.dsnap"
            with self._lock:
                return write_portable_snapshot(target, dims, HnswConfig(ef=ef), list(self.iter_points(collection)))
        import httpx

        desc = self._call(self._client.create_snapshot, collection, wait=True, collection=collection)
        target = Path(target_dir) / desc.name
        headers = {"api-key": self._api_key} if self._api_key else {}
        url = f"{self._url.rstrip('/')}/collections/{collection}/snapshots/{desc.name}"
        try:
            with httpx.stream("GET", url, headers=headers, timeout=max(60.0, self._timeout)) as r:
                r.raise_for_status()
                with open(str(target) + ".tmp", "wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
            os.replace(str(target) + ".tmp", target)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"snapshot download failed: {exc}") from exc
        return str(target)

    def restore_snapshot(self, snapshot_path: str, collection: str) -> None:
        """Create or replace ``collection`` from a snapshot file.

        A ``.dsnap`` portable snapshot is loaded point by point (any back end); a native
        ``.snapshot`` is uploaded to the server (``recover_from_uploaded_snapshot``).

        Raises:
            NotFound: no such file. InvalidArgument: a native snapshot given to local mode.
        """
        if not os.path.isfile(snapshot_path):
            raise NotFound(f"snapshot {snapshot_path!r} does not exist", field="snapshot_path")
        if zipfile.is_zipfile(snapshot_path):
            dims, hnsw, batches = read_portable_snapshot(snapshot_path)
            with self._lock:
                self.delete_collection(collection)
                self.create_collection(collection, dims, hnsw)
                for pts in batches:
                    self.upsert(collection, pts)
            return
        if self.local:
            raise InvalidArgument("local mode can only restore portable (.dsnap) snapshots", field="snapshot_path")
        with open(snapshot_path, "rb") as f:
            self._call(
                self._client.http.snapshots_api.recover_from_uploaded_snapshot,
                collection_name=collection, wait=True, snapshot=f, collection=collection,
            )
        self._invalidate()
