"""Files, locks and per-collection state of the embedded engine (:class:`~designsearch.services.search.engines.edge.EdgeIndex`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from designsearch.services.search.index import HnswConfig


_KEYWORD_FIELDS = ("design_id", "brand", "kind")
_INTEGER_FIELDS = ("year",)
_META = "collection.json"
_ALIASES = "aliases.json"


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file, fsync and ``os.replace`` (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a shard directory keeping sparse files sparse (Edge pre-allocates 32 MiB mmap chunks).

    Uses GNU ``cp -a --sparse=always`` when available (a 1k-point shard is ~2 MB on disk but
    ~200 MB apparent), else :func:`shutil.copytree`.
    """
    if shutil.which("cp"):
        proc = subprocess.run(["cp", "-a", "--sparse=always", str(src), str(dst)], capture_output=True, text=True)
        if proc.returncode == 0:
            return
        shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


def _gnu_tar() -> str | None:
    tar = shutil.which("tar")
    if tar is None:
        return None
    out = subprocess.run([tar, "--version"], capture_output=True, text=True).stdout
    return tar if "GNU tar" in out else None


class _RWLock:
    """Readers-writer lock with writer preference (readers: queries; writer: shard swap/close)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class _Collection:
    """One open collection: its live shard, config, locks and the background-build state."""

    def __init__(self, name: str, path: Path, meta: dict[str, Any]) -> None:
        self.name = name
        self.path = path
        self.dims: dict[str, int] = {str(k): int(v) for k, v in meta["vectors"].items()}
        self.hnsw = HnswConfig(**meta["hnsw"]) if meta.get("hnsw") else HnswConfig()
        self.generation = int(meta["generation"])
        self.shard: qe.EdgeShard | None = None
        self.rw = _RWLock()  # readers: queries; writer: swap/close
        self.write_lock = threading.RLock()  # serialises upserts/deletes, copy and replay
        self.replay_log: list[tuple[str, Any]] | None = None  # writes made during a build
        self.build_thread: threading.Thread | None = None
        self.unindexed = 0  # points written since the last HNSW build (estimate)
        self.build_error: str | None = None
        self.build_failed_at = 0.0  # monotonic time of the last failed build (auto builds back off)

    def gen_dir(self, gen: int | None = None) -> Path:
        return self.path / f"gen-{self.generation if gen is None else gen}"

    def meta(self) -> dict[str, Any]:
        return {"vectors": self.dims, "hnsw": asdict(self.hnsw), "generation": self.generation}
