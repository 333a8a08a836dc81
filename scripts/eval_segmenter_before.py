"""Score the segmenter as released before issue 8 (model AND post-processing of a given commit) on today's sets.

The served behaviour is the model file plus the post-processing of ``services/segmenter/learned.py``
of that commit, so both are taken from git and run against the validation sets (a), (b), (c) of
:mod:`designsearch.training.segmenter.evaluate`. Usage::

    .venv/bin/python scripts/eval_segmenter_before.py --commit 79ef349 --out var/segmenter-eval-before.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from designsearch.training.segmenter.evaluate import evaluate, format_table  # noqa: E402
from designsearch.versioning import module_at_commit  # noqa: E402


def old_detector(commit: str, workdir: Path):
    """The learned detector (class and model file) of ``commit``, loaded from git (the model file into ``workdir``)."""
    onnx = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:models/segmenter/wheelseg-lite0.onnx"],
                          check=True, capture_output=True).stdout
    (workdir / "wheelseg-before.onnx").write_bytes(onnx)
    mod = module_at_commit(commit, "services/segmenter/learned.py", REPO)
    det = mod.LearnedWheelDetector(workdir / "wheelseg-before.onnx", threads=2)
    det.name = f"before@{commit[:7]}"
    return det


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--commit", default="79ef349")
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate([old_detector(a.commit, Path(tmp))], a.data)
    print(format_table(report))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
