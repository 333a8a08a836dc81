"""The learned segmenter's post-processing (probability map → detections) timed alone, and A/B against a commit.

The network runs once per picture; its probability maps are then post-processed by the current
``services/segmenter/learned.py`` and, with ``--base COMMIT``, by that commit's version of the file, in
alternation on the same maps (so a machine that changes speed during the run changes both alike). Every
detection (box, score, kind, mask) of the two must be equal, or the script exits with status 1.

Pictures: every 40th Stanford Cars photo and every 10th Car-Parts photo of ``../shared/data`` (wheels on
cars) and the designer pictures of ``designer_queries.py`` (one close-up, rendering and line drawing of each
demo held-out photo's wheel: one wheel filling the frame).

    python benchmarks/segmenter_postprocess.py [--base COMMIT] [--rounds 3] [--model ONNX]

Writes ``benchmarks/results/segmenter_postprocess.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from designsearch.images import decode_image
from designsearch.services.segmenter.learned import LearnedWheelDetector
from designsearch.settings import REPO_ROOT, SEGMENTER_MODEL_INT8, default_data_dir, repo_relative
from designsearch.versioning import module_at_commit

OUT = REPO_ROOT / "benchmarks" / "results" / "segmenter_postprocess.json"


def pictures(data: Path) -> list[np.ndarray]:
    """The benchmark's pictures, RGB ``uint8 (H, W, 3)`` (see the module doc)."""
    from designer_queries import designer_pictures  # this folder's benchmark: same generator, same seed

    from designsearch.catalogue_data import demo_split, read_labels

    files = (sorted(glob.glob(str(data / "stanford-cars" / "**" / "*.jpg"), recursive=True))[::40]
             + sorted(glob.glob(str(data / "car-parts*" / "**" / "*.jpg"), recursive=True))[::10])
    _, held_out = demo_split(read_labels(data / "stanford-cars" / "labels.csv"), range(79, 99), 2)
    drawn = [p["bytes"] for p in designer_pictures(held_out, 1, 0)[0] if p["style"] != "photo"]
    return [decode_image(Path(f).read_bytes()) for f in files] + [decode_image(b) for b in drawn]


def detector_at(commit: str, model: Path):
    """``LearnedWheelDetector`` of ``services/segmenter/learned.py`` as of ``commit`` on ``model``.

    Raises:
        subprocess.CalledProcessError: unknown commit or no such file in it.
    """
    return module_at_commit(commit, "services/segmenter/learned.py", REPO_ROOT).LearnedWheelDetector(model)


def same(a: list, b: list) -> bool:
    """Two detection lists are equal: box, score, kind and mask of each."""
    return len(a) == len(b) and all(x.box == y.box and x.score == y.score and x.kind == y.kind
                                    and np.array_equal(x.mask, y.mask) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="commit whose post-processing to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=SEGMENTER_MODEL_INT8)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    current = LearnedWheelDetector(args.model)
    base = detector_at(args.base, args.model) if args.base else None
    rgbs = pictures(default_data_dir())
    t0 = time.perf_counter()
    maps = [current.probability(rgb) for rgb in rgbs]
    network_ms = 1000 * (time.perf_counter() - t0) / len(rgbs)
    times: dict[str, list[float]] = {"current": [], "base": []}
    differ, detections = 0, 0
    for r in range(args.rounds):
        for prob, rgb in zip(maps, rgbs):
            h, w = rgb.shape[:2]
            t = time.perf_counter()
            ours = current.instances_from_probability(prob, h, w)
            times["current"].append(1000 * (time.perf_counter() - t))
            if base is not None:
                t = time.perf_counter()
                theirs = base.instances_from_probability(prob, h, w)
                times["base"].append(1000 * (time.perf_counter() - t))
                differ += r == 0 and not same(ours, theirs)
            detections += len(ours)
    stats = {k: {"p50_ms": round(float(np.median(v)), 2), "mean_ms": round(float(np.mean(v)), 2)}
             for k, v in times.items() if v}
    report = {"model": repo_relative(args.model), "pictures": len(rgbs), "rounds": args.rounds,
              "detections_per_round": detections // args.rounds, "network_ms_mean": round(network_ms, 1),
              "postprocess": stats, "base": args.base, "maps_that_differ": differ if base is not None else None,
              "machine": f"{platform.processor() or platform.machine()}, 2 threads for the network",
              "command": " ".join(["python benchmarks/segmenter_postprocess.py", *sys.argv[1:]])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
