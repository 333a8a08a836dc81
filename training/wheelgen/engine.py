"""``designsearch render-wheels``: plan, render (parallel, resumable) and label a wheel-design picture set.

Output folder layout::

    set.json                 the set's configuration (seed, counts, renderer settings)
    parts/<design_id>.csv    manifest rows of one finished design (written last, atomically: a design
                             is done exactly when its part file exists)
    images/<design_id>/      v00-render.jpg, v00-mask.png, v00-drawing.png, ..., car00-oncar.jpg, car00-mask.png
    manifest.csv             every row, in design order (rebuilt from parts/ at the end of each run)
    data_card.json, data_card.md   counts per split / style / kind / finish / background, time per picture

A second run on the same folder with the same arguments resumes (finished designs are skipped); a run
with other arguments (another seed, count, style list...) stops with an error instead of mixing sets.
Splits are by design: ``val`` holds ``val_fraction`` of the procedural designs (by a hash of the id,
so a design's split does not depend on the set size; a related variant follows its parent), ``real``
holds the 15 real rim models; only ``train`` may be trained on.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path

from designsearch.training.wheelgen.design import STYLES, sample_designs

COLUMNS = ["file", "kind", "design_id", "split", "source", "style", "related_to", "view_id", "azimuth", "elevation",
           "spin", "fov_deg", "tyre", "finish", "background", "drawing_style", "mask_file", "x1", "y1", "x2", "y2",
           "rim_box", "boxes", "width", "height", "variant", "seed", "seconds", "params"]


#: Car photo sources of the on-car composites (``--oncar-photos``).
ONCAR_SOURCES = ("car-parts", "stanford")


class SetMismatch(ValueError):
    """The output folder holds a different picture set."""


def _split_of(design_id: str, val_fraction: float) -> str:
    h = int(hashlib.sha256(design_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def plan(cfg, data_dir: str | None) -> list:
    """The design jobs of a set: ``cfg.designs`` procedural designs then (optionally) the real models.

    Raises:
        ValueError: bad counts or styles (from :func:`.sample_designs`).
    """
    from designsearch.training.wheelgen.jobs import DesignJob

    jobs = []
    split: dict[str, str] = {}
    for i, (d, parent) in enumerate(sample_designs(cfg.designs, cfg.seed, tuple(cfg.styles))):
        s = split[parent] if parent else _split_of(d.design_id, cfg.val_fraction)
        split[d.design_id] = s
        jobs.append(DesignJob(index=i, design_id=d.design_id, split=s, source="procedural", design=d,
                              related_to=parent))
    if cfg.real_models and data_dir:
        from designsearch.training.wheelgen.realrims import list_models

        try:
            models = list_models(data_dir)
        except FileNotFoundError:
            models = []
        for k, (mid, path) in enumerate(models):
            jobs.append(DesignJob(index=cfg.designs + k, design_id=mid, split="real", source="rim-model",
                                  model_path=str(path)))
    return jobs


def check_set(out: Path, cfg) -> None:
    """Write ``set.json``, or check that the one there describes the same set.

    Raises:
        SetMismatch: the folder holds another set (it is never overwritten).
    """
    want = asdict(cfg)
    defaults = {f.name: f.default for f in fields(cfg)}
    path = out / "set.json"
    if path.is_file():
        have = json.loads(path.read_text())
        # a field added to SetConfig after the set was made reads as its default (the behaviour it had then)
        diff = {k: (have.get(k, defaults[k]), v) for k, v in want.items() if have.get(k, defaults[k]) != v}
        if diff:
            detail = ", ".join(f"{k}: folder has {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise SetMismatch(f"{out} holds another picture set ({detail}); choose another --out or delete it")
        return
    if out.exists() and any(p.name != ".gitkeep" for p in out.iterdir()):
        raise SetMismatch(f"{out} is not empty and holds no set.json: not a wheel picture set; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(want, indent=2))
    os.replace(tmp, path)


def _write_part(out: Path, design_id: str, rows: list[dict]) -> None:
    parts = out / "parts"
    parts.mkdir(exist_ok=True)
    tmp = parts / f"{design_id}.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, parts / f"{design_id}.csv")


def _run_job(args):
    from designsearch.training.wheelgen.jobs import render_design

    job, cfg, out = args
    rows = render_design(job, cfg, out)
    _write_part(Path(out), job.design_id, rows)
    return job.design_id, len(rows)


def stanford_pool(cfg, out: Path, data_dir: str | None) -> dict | None:
    """With ``stanford`` in ``cfg.oncar_photos``: find the Stanford Cars wheels once (cached in ``out``, so
    a resumed set keeps its slots) and return the keyword arguments the workers read the cache with;
    else ``None``.

    Raises:
        ValueError: an unknown on-car photo source, or no data folder.
    """
    sources = [s.strip() for s in cfg.oncar_photos.split(",") if s.strip()]
    bad = [s for s in sources if s not in ONCAR_SOURCES]
    if bad or not sources:
        raise ValueError(f"on-car photos {cfg.oncar_photos!r}: expected a comma-separated subset of "
                         f"{','.join(ONCAR_SOURCES)}")
    if "stanford" not in sources or not cfg.oncar:
        return None
    if not data_dir:
        raise ValueError("on-car photos 'stanford' need the shared data folder")
    from designsearch.settings import REPO_ROOT
    from designsearch.training.wheelgen.stanford_slots import find_stanford_wheels

    kw = {"data_dir": str(data_dir), "segmenter": str(REPO_ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx"),
          "cache": str(out), "limit": cfg.stanford_photos}
    found = find_stanford_wheels(**kw, log=print)
    print(f"render-wheels: {len(found)} Stanford Cars photos with wheels found by the segmenter")
    return {**kw, "with_car_parts": "car-parts" in sources}


def run(cfg, out: Path, data_dir: str | None, workers: int, progress: bool = True) -> dict:
    """Render the set into ``out`` (resuming), then write the manifest and data card.

    Returns:
        The data card (dict). Raises :class:`SetMismatch` or ``ValueError`` on bad arguments.
    """
    import multiprocessing as mp

    jobs = plan(cfg, data_dir)
    check_set(out, cfg)
    todo = [j for j in jobs if not (out / "parts" / f"{j.design_id}.csv").is_file()]
    t0 = time.perf_counter()
    if todo:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from designsearch.training.wheelgen.jobs import init_worker

        init = (data_dir, cfg.size, cfg.spp, cfg.max_depth, bool(cfg.oncar), stanford_pool(cfg, out, data_dir))
        columns = [TextColumn("render-wheels"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn()]
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("designs", total=len(jobs), completed=len(jobs) - len(todo))
            work = [(j, cfg, str(out)) for j in todo]
            if workers <= 1:
                init_worker(*init)
                for w in work:
                    _run_job(w)
                    bar.advance(task)
            else:
                ctx = mp.get_context("spawn")  # no fork: OpenGL and LLVM state do not survive one
                with ctx.Pool(workers, initializer=init_worker, initargs=init, maxtasksperchild=200) as pool:
                    for _ in pool.imap_unordered(_run_job, work):
                        bar.advance(task)
    return finish(out, jobs, cfg, time.perf_counter() - t0, {j.design_id for j in todo}, workers)


def finish(out: Path, jobs: list, cfg, seconds: float, rendered: set[str], workers: int) -> dict:
    """Merge ``parts/`` into ``manifest.csv`` (design order) and write the data card."""
    rows: list[dict] = []
    for j in jobs:
        with open(out / "parts" / f"{j.design_id}.csv", newline="", encoding="utf-8") as f:
            rows.extend(csv.DictReader(f))
    tmp = out / "manifest.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out / "manifest.csv")
    per_pic = [float(r["seconds"]) for r in rows if r["seconds"]]
    new_pics = sum(1 for r in rows if r["design_id"] in rendered)
    card = {
        "config": asdict(cfg), "pictures": len(rows), "designs": len(jobs),
        "by_split": dict(Counter(r["split"] for r in rows)), "by_kind": dict(Counter(r["kind"] for r in rows)),
        "by_style": dict(Counter(r["style"] for r in rows if r["kind"] == "render")),
        "by_finish": dict(Counter(r["finish"] for r in rows if r["kind"] != "drawing")),
        "by_background": dict(Counter(r["background"] for r in rows if r["kind"] == "render")),
        "oncar_by_photo_source": dict(Counter("stanford" if r["background"].startswith("stanford-cars/") else "car-parts"
                                              for r in rows if r["kind"] == "oncar")),
        "by_drawing_style": dict(Counter(r["drawing_style"] for r in rows if r["kind"] == "drawing")),
        "designs_by_split": dict(Counter(j.split for j in jobs)),
        "related_designs": sum(1 for j in jobs if j.related_to),
        "worker_seconds_per_picture": round(sum(per_pic) / max(len(per_pic), 1), 4),
        "last_run": {"designs_rendered": len(rendered), "pictures_rendered": new_pics,
                     "wall_seconds": round(seconds, 1), "workers": workers,
                     "wall_seconds_per_picture": round(seconds / new_pics, 4) if new_pics else None,
                     "cpu_count": os.cpu_count()},
    }
    (out / "data_card.json").write_text(json.dumps(card, indent=2))
    (out / "data_card.md").write_text(card_markdown(card))
    return card


def card_markdown(card: dict) -> str:
    """The data card as Markdown tables."""
    c = card["config"]
    lines = ["# Wheel-design picture set", "",
             f"seed {c['seed']}, {c['designs']} procedural designs + real models: {card['designs']} designs, "
             f"{c['views']} views each, {card['pictures']} pictures; {c['size']} px, Mitsuba {c['spp']} spp "
             f"(max depth {c['max_depth']}), tyre on {c['tyre_share']:.0%} of the studio views, "
             f"{c['oncar']} on-car picture(s) per design, variant `{c['variant']}`.", "",
             f"Time: {card['worker_seconds_per_picture']} worker-seconds per picture; last run "
             f"{card['last_run']['wall_seconds']} s wall on {card['last_run']['workers']} worker(s).", ""]
    for key in ("designs_by_split", "by_split", "by_kind", "by_style", "by_finish", "by_background", "by_drawing_style"):
        lines += [f"| {key} | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(card[key].items())]
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None):
    """Command-line options (see ``designsearch render-wheels --help``)."""
    from designsearch.training.wheelgen.jobs import VARIANTS

    p = argparse.ArgumentParser(prog="designsearch render-wheels", description=__doc__.split("\n")[0])
    p.add_argument("--designs", type=int, default=1200,
                   help="procedural designs (default 1200: with 8 views, ~1 h on 2 cores, benchmarks/results/wheelgen.md)")
    p.add_argument("--views", type=int, default=8, help="studio views per design (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder (new, or a set to resume)")
    p.add_argument("--styles", default=",".join(STYLES), help=f"comma-separated styles of {','.join(STYLES)}")
    p.add_argument("--size", type=int, default=224, help="picture side, px")
    p.add_argument("--spp", type=int, default=8, help="Mitsuba samples per pixel")
    p.add_argument("--max-depth", type=int, default=5, help="path length (bounces + 1)")
    p.add_argument("--tyre-share", type=float, default=0.1,
                   help="share of studio view pairs with a tyre (0.1: real product shots rarely show one; FID in docs/wheelgen.md)")
    p.add_argument("--oncar", type=int, default=1, help="on-car composites per design")
    p.add_argument("--oncar-photos", default="car-parts",
                   help="car photos of the on-car composites, comma-separated subset of car-parts,stanford "
                        "(stanford: Stanford Cars classes 1-78, wheels found by the served segmenter)")
    p.add_argument("--stanford-photos", type=int, default=None,
                   help="Stanford Cars photos scanned for wheels (default: all of classes 1-78, ~3 min)")
    p.add_argument("--no-drawings", action="store_true", help="no line drawings")
    p.add_argument("--real-models", action="store_true",
                   help="also render the 15 real rim models (split 'real', never trained; the training recipe sets it)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--variant", default="full", choices=VARIANTS, help="realism ablation (one step off)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--data-dir", default=None, help="shared data folder (default: DESIGNSEARCH_DATA or ../shared/data)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    styles = [s.strip() for s in a.styles.split(",") if s.strip()]
    bad = [s for s in styles if s not in STYLES]
    if bad or not styles:
        p.error(f"unknown style(s) {bad or a.styles!r}; expected a comma-separated subset of {','.join(STYLES)}")
    for name in ("designs", "views", "size", "spp", "workers"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(a, name)}")
    sources = [x.strip() for x in a.oncar_photos.split(",") if x.strip()]
    if not sources or any(x not in ONCAR_SOURCES for x in sources):
        p.error(f"--oncar-photos {a.oncar_photos!r}: expected a comma-separated subset of {','.join(ONCAR_SOURCES)}")
    a.oncar_photos = ",".join(sources)
    if a.stanford_photos is not None and a.stanford_photos < 1:
        p.error(f"--stanford-photos must be at least 1, got {a.stanford_photos}")
    if a.oncar < 0 or not 0 <= a.tyre_share <= 1 or not 0 <= a.val_fraction < 1:
        p.error("--oncar must be >= 0, --tyre-share in [0, 1], --val-fraction in [0, 1)")
    return a, styles


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``designsearch render-wheels`` (exit status 2 on bad arguments or another set)."""
    from designsearch.settings import default_data_dir
    from designsearch.training.wheelgen.jobs import SetConfig

    a, styles = parse_args(argv)
    data_dir = a.data_dir or str(default_data_dir())
    cfg = SetConfig(seed=a.seed, designs=a.designs, views=a.views, styles=styles, size=a.size, spp=a.spp,
                    max_depth=a.max_depth, tyre_share=a.tyre_share, oncar=a.oncar, drawings=not a.no_drawings,
                    real_models=a.real_models, val_fraction=a.val_fraction, variant=a.variant,
                    oncar_photos=a.oncar_photos, stanford_photos=a.stanford_photos)
    try:
        card = run(cfg, a.out, data_dir, a.workers, progress=not a.quiet)
    except ValueError as e:  # SetMismatch included
        print(f"render-wheels: error: {e}", file=sys.stderr)
        raise SystemExit(2) from e
    print(f"{card['pictures']} pictures of {card['designs']} designs in {a.out} "
          f"({card['worker_seconds_per_picture']} worker-s per picture); manifest {a.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
