"""The portable snapshot format (``.dsnap``): moves a collection between engines.

An uncompressed ZIP file with ``manifest.json`` (format, vector names → dims, HNSW config, point
count), ``ids.json``, ``payloads.jsonl`` and one ``vectors/<name>.npy`` (float32 ``(N, D)``) plus
``vectors/<name>.mask.npy`` (bool ``(N,)``, which points have that vector) per vector name.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from designsearch.domain import Point
from designsearch.errors import InvalidArgument, NotFound
from designsearch.services.search.index import HnswConfig


PORTABLE_SNAPSHOT_FORMAT = "designsearch-portable-snapshot/1"


def write_portable_snapshot(
    path: str | os.PathLike,
    dims: dict[str, int],
    hnsw: HnswConfig | None,
    points: Iterable[Point],
) -> str:
    """Write points into a portable snapshot file (format in the module docstring).

    The file is written under a temporary name and renamed, so a reader never sees half a file.

    Args:
        path: target file (``.dsnap`` suggested).
        dims: named vectors ``{name: D}``.
        hnsw: the collection's HNSW config (restored with it), or None.
        points: every point of the collection (vectors normalised float32).

    Returns:
        ``str(path)``.
    """
    path = Path(path)
    ids: list[str] = []
    payload_buf = io.StringIO()
    vecs: dict[str, list[np.ndarray]] = {n: [] for n in dims}
    masks: dict[str, list[bool]] = {n: [] for n in dims}
    for p in points:
        ids.append(p.id)
        payload_buf.write(json.dumps(p.payload, separators=(",", ":")) + "\n")
        for n, d in dims.items():
            v = p.vectors.get(n)
            masks[n].append(v is not None)
            vecs[n].append(np.asarray(v, np.float32) if v is not None else np.zeros(d, np.float32))
    manifest = {
        "format": PORTABLE_SNAPSHOT_FORMAT,
        "vectors": dims,
        "hnsw": asdict(hnsw) if hnsw is not None else None,
        "count": len(ids),
        "created_unix": time.time(),
    }
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("ids.json", json.dumps(ids))
        zf.writestr("payloads.jsonl", payload_buf.getvalue())
        for n, d in dims.items():
            arr = np.stack(vecs[n]) if vecs[n] else np.zeros((0, d), np.float32)
            for suffix, data in ((".npy", arr), (".mask.npy", np.asarray(masks[n], dtype=bool))):
                buf = io.BytesIO()
                np.save(buf, data, allow_pickle=False)
                zf.writestr(f"vectors/{n}{suffix}", buf.getvalue())
    os.replace(tmp, path)
    return str(path)


def read_portable_snapshot(
    path: str | os.PathLike, batch: int = 1024
) -> tuple[dict[str, int], HnswConfig | None, Iterator[list[Point]]]:
    """Open a portable snapshot.

    Returns:
        ``(dims, hnsw, batches)`` where ``batches`` yields lists of up to ``batch`` points.

    Raises:
        NotFound: no such file.
        InvalidArgument: not a portable snapshot.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"snapshot {str(path)!r} does not exist", field="snapshot_path")
    try:
        zf = zipfile.ZipFile(path)
        manifest = json.loads(zf.read("manifest.json"))
        if manifest.get("format") != PORTABLE_SNAPSHOT_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidArgument(f"{str(path)!r} is not a portable snapshot: {exc}", field="snapshot_path") from exc
    dims = {str(k): int(v) for k, v in manifest["vectors"].items()}
    hnsw = HnswConfig(**manifest["hnsw"]) if manifest.get("hnsw") else None

    def batches() -> Iterator[list[Point]]:
        with zf:
            ids = json.loads(zf.read("ids.json"))
            payloads = zf.read("payloads.jsonl").decode().splitlines()
            arrays = {n: np.load(io.BytesIO(zf.read(f"vectors/{n}.npy"))) for n in dims}
            masks = {n: np.load(io.BytesIO(zf.read(f"vectors/{n}.mask.npy"))) for n in dims}
            for start in range(0, len(ids), batch):
                out = []
                for i in range(start, min(start + batch, len(ids))):
                    vectors = {n: arrays[n][i] for n in dims if masks[n][i]}
                    out.append(Point(id=ids[i], vectors=vectors, payload=json.loads(payloads[i])))
                yield out

    return dims, hnsw, batches()
