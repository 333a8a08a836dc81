"""Model version ids (every served model file is named by its content hash), and earlier versions of the code."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType


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


def module_at_commit(commit: str, path: str, repo: str | Path) -> ModuleType:
    """The Python module at ``path`` (repository-relative, e.g. ``services/segmenter/learned.py``) as of git
    ``commit``, imported under a private name from a temporary copy, for A/B comparisons with today's code.

    Raises:
        subprocess.CalledProcessError: ``repo`` is not a git checkout, unknown commit, or no such file in it.
    """
    source = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True,
                            text=True).stdout
    name = f"{Path(path).stem}_at_{commit[:12]}"
    copy = Path(tempfile.mkdtemp()) / f"{name}.py"
    copy.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
