"""Model version ids: every served model file is named by its content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_version(path: str | Path) -> str:
    """``"sha256:"`` + the first 16 hex digits of the file's SHA-256.

    Vectors and crops carry this id, so results of two model files are never mixed.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()[:16]}"
