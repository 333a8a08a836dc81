"""FindSimilar on the pictures designers send: one wheel filling the frame, end to end on the demo catalogue.

The demo's 40 held-out photos (Stanford Cars classes 79-98, 2 per class, never in the catalogue) are the
source. From each, the wheel the served segmenter finds with the highest score (kind ``wheel``, with its
mask; photos where no wheel passes the wheel-face checks of
:func:`designsearch.training.segmenter.synthetic.cutouts.cutout_from_mask` are skipped) is cut out and
drawn, seeded, in the styles of the segmenter's validation set (b) (issue 8,
:mod:`designsearch.training.segmenter.synthetic.valsets`):

* ``closeup``: the wheel filling 40-100 % of a 512 px frame, rotated 0-360°, oblique half of the time,
  on a plain, gradient, noise or photographic background (wheel-free regions of Car-Parts validation
  photos), sometimes without its tyre or partly cut off, sometimes with a new finish;
* ``rendering``: on white, tyre kept, 50-95 % fill;
* ``line_drawing``: a line drawing (:func:`designsearch.training.segmenter.synthetic.drawings.line_drawing`)
  of a close-up on a plain background;

plus ``photo``, the held-out photo itself (the demo's query). Each picture is sent to FindSimilar
(``k`` = 6, domain detected, no cache) on a fresh stack holding the demo catalogue (817 images of the
20 classes). A hit: the query's class (its design id) among the 6 designs; first: it is the first.
A class is a car model here, so "same design" means "a wheel of the same car model".

    python benchmarks/designer_queries.py [--per-style 2] [--seed 0] [--closeup-rotations N] [--sketch-search MODE]
                                          [--domain auto] [--save DIR] [--out FILE] [--compare OTHER.json]

Writes ``benchmarks/results/designer_queries.json`` (with every query's outcome) and prints a table. With
``--compare`` (an earlier run's file with the same pictures: same ``--per-style`` and ``--seed``) it also prints,
per style, the paired difference in hits and firsts with McNemar's exact test (the two-sided binomial test on
the discordant queries; McNemar, Psychometrika 1947): whether two models differ beyond the draw of pictures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from designsearch.catalogue_data import demo_split, read_labels
from designsearch.client import DesignSearchClient
from designsearch.images import read_image
from designsearch.procs import Stack
from designsearch.settings import REPO_ROOT, default_data_dir
from designsearch.v1 import common_pb2

STYLES = ("photo", "closeup", "rendering", "line_drawing")


def designer_pictures(queries, per_style: int, seed: int, size: int = 512) -> tuple[list[dict], int]:
    """``(pictures, skipped)``: each picture a dict ``style, source, design_id, bytes``; each query photo
    itself, then ``per_style`` pictures of each style of :func:`designsearch.training.designer_pictures.draw`
    (one seeded generator, styles in turn); ``skipped`` photos give no usable wheel cut-out."""
    from designsearch.services.segmenter.config import SegmenterSettings
    from designsearch.services.segmenter.core import load_detector
    from designsearch.training.designer_pictures import STYLES as DRAWN, draw, wheel_cutout
    from designsearch.training.segmenter.evaluate import validation_samples
    from designsearch.training.segmenter.synthetic.backgrounds import PhotoBackgrounds

    settings = SegmenterSettings()
    detector = load_detector("learned", settings.model_path)
    photos = PhotoBackgrounds(validation_samples(seed=0))  # the segmenter's validation split of Car-Parts
    rng = np.random.default_rng(seed)
    out, skipped = [], 0
    for q in queries:
        data = q.path.read_bytes()
        out.append({"style": "photo", "source": q.path.name, "design_id": q.design_id, "bytes": data})
        cut = wheel_cutout(read_image(str(q.path)), detector, q.path.name)
        if cut is None:
            skipped += 1
            continue
        for _ in range(per_style):
            for style in DRAWN:
                out.append({"style": style, "source": q.path.name, "design_id": q.design_id,
                            "bytes": draw(cut, style, rng, size, photos)})
    return out, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-style", type=int, default=2, help="pictures of each drawn style per held-out photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--domain", default="auto", choices=["auto", "photo", "sketch"],
                        help="FindSimilar domain of every query (auto: line drawings are searched as sketches)")
    parser.add_argument("--sketch-search", default=None, choices=["photo", "lines", "both"],
                        help="the gateway's sketch_search (default: its setting, photo)")
    parser.add_argument("--closeup-rotations", type=int, default=None,
                        help="the gateway's query_closeup_rotations (0 = off; default: its setting, 3)")
    parser.add_argument("--closeup-cutouts", default=None, choices=["off", "crops", "crops_whole"],
                        help="the gateway's closeup_cutouts (default: its setting, crops)")
    parser.add_argument("--var", type=Path, default=REPO_ROOT / "var" / "bench-designer")
    parser.add_argument("--save", type=Path, default=None, help="also write the query pictures to this folder")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "designer_queries.json")
    parser.add_argument("--compare", type=Path, default=None, help="an earlier run's JSON: paired comparison per style")
    args = parser.parse_args()

    catalogue, queries = demo_split(read_labels(default_data_dir() / "stanford-cars" / "labels.csv"), range(79, 99), 2)
    pictures, skipped = designer_pictures(queries, args.per_style, args.seed)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(pictures):
            ext = ".png" if p["bytes"][:4] == b"\x89PNG" else ".jpg"
            (args.save / f"{i:03d}-{p['style']}-{Path(p['source']).stem}{ext}").write_bytes(p["bytes"])
    if args.var.exists():
        shutil.rmtree(args.var)
    env = {} if args.closeup_rotations is None else \
        {"DESIGNSEARCH_GATEWAY_QUERY_CLOSEUP_ROTATIONS": str(args.closeup_rotations)}
    if args.sketch_search:
        env["DESIGNSEARCH_GATEWAY_SKETCH_SEARCH"] = args.sketch_search
    if args.closeup_cutouts:
        env["DESIGNSEARCH_GATEWAY_CLOSEUP_CUTOUTS"] = args.closeup_cutouts
    stack = Stack(args.var, env=env)
    stack.start()
    rows = []
    try:
        with DesignSearchClient(stack.gateway_address) as client:
            client.index(catalogue)
            embedder = client.stats().embedder_version
            for p in pictures:
                t = time.perf_counter()
                r = client.find_similar(p["bytes"], args.k, no_cache=True, domain=args.domain)
                designs = [m.design.design_id for m in r.matches]
                crops = [c.kind for c in r.query_crops if c.kind != common_pb2.CROP_KIND_WHOLE_IMAGE]
                rows.append({"style": p["style"], "source": p["source"], "design_id": p["design_id"],
                             "top": designs, "scores": [round(m.score, 4) for m in r.matches],
                             "hit": p["design_id"] in designs,
                             "first": bool(designs) and designs[0] == p["design_id"],
                             "ms": round((time.perf_counter() - t) * 1000, 1), "crops": len(crops),
                             "closeup": common_pb2.CROP_KIND_CLOSEUP in crops})
    finally:
        stack.stop()
    by_style = {}
    for style in STYLES:
        rs = [r for r in rows if r["style"] == style]
        if rs:
            by_style[style] = {"queries": len(rs), f"hit@{args.k}": round(float(np.mean([r["hit"] for r in rs])), 3),
                               "first": round(float(np.mean([r["first"] for r in rs])), 3),
                               "no_crop": round(float(np.mean([r["crops"] == 0 for r in rs])), 3),
                               "closeup_crop": round(float(np.mean([r["closeup"] for r in rs])), 3),
                               "client_ms_p50": round(float(np.median([r["ms"] for r in rs])), 1)}
    report = {"embedder_version": embedder, "catalogue_images": len(catalogue), "held_out_photos": len(queries),
              "photos_without_a_usable_wheel": skipped, "per_style": args.per_style, "seed": args.seed, "k": args.k,
              "closeup_rotations": "setting default (3)" if args.closeup_rotations is None else args.closeup_rotations,
              "domain": args.domain, "sketch_search": args.sketch_search or "setting default (photo)",
              "closeup_cutouts": args.closeup_cutouts or "setting default (crops)",
              "results": by_style, "queries": [{k: r[k] for k in ("style", "source", "design_id", "hit", "first", "top", "scores")}
                                            for r in rows],
              "command": " ".join(["python benchmarks/designer_queries.py", *sys.argv[1:]])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"| style | queries | design in the top {args.k} | design first | no crop | a close-up crop | p50 ms |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for style, r in by_style.items():
        print(f"| {style} | {r['queries']} | {r[f'hit@{args.k}']:.1%} | {r['first']:.1%} | {r['no_crop']:.1%} | "
              f"{r['closeup_crop']:.1%} | {r['client_ms_p50']} |")
    print(f"({skipped} of {len(queries)} held-out photos had no usable wheel cut-out; wrote {args.out})")
    if args.compare:
        print(paired_comparison(json.loads(args.compare.read_text()), report, args.k))


def paired_comparison(before: dict, after: dict, k: int = 6) -> str:
    """Markdown table: per style and outcome (hit@k, first), the queries only ``before`` / only ``after`` got
    right and McNemar's exact p-value (two-sided binomial test of the discordant counts at 1/2).

    Args:
        before, after: reports of this benchmark with per-query outcomes (``"queries"``), made on the same
            pictures (same ``per_style`` and ``seed``), in the same order.

    Raises:
        ValueError: a report without per-query outcomes, or made on other pictures.
    """
    from scipy.stats import binomtest

    qa, qb = before.get("queries"), after.get("queries")
    if not qa or not qb:
        raise ValueError("both reports need per-query outcomes ('queries'; runs since the tenth session)")
    if [(q["style"], q["source"]) for q in qa] != [(q["style"], q["source"]) for q in qb]:
        raise ValueError("the two reports were made on different pictures (per_style / seed)")
    lines = ["| style | outcome | before | after | only before | only after | McNemar exact p |", "|---|---|---:|---:|---:|---:|---:|"]
    for style in STYLES:
        pairs = [(a, b) for a, b in zip(qa, qb) if a["style"] == style]
        for outcome, name in (("hit", f"hit@{k}"), ("first", "first")):
            only_a = sum(a[outcome] and not b[outcome] for a, b in pairs)
            only_b = sum(b[outcome] and not a[outcome] for a, b in pairs)
            p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
            lines.append(f"| {style} | {name} | {sum(a[outcome] for a, _ in pairs)} | {sum(b[outcome] for _, b in pairs)} | "
                         f"{only_a} | {only_b} | {p:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
