"""One design's pictures: studio renders, masks, line drawings and on-car composites (a worker's job).

A worker process holds one OSMesa context, one Mitsuba path tracer and the photo sources
(:func:`init_worker`); :func:`render_design` makes every picture of one design and returns its
manifest rows. Everything random comes from ``numpy.random.default_rng([seed, design_index, ...])``,
so a design's views, finishes and backgrounds do not depend on which worker renders it or on a resume.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from designsearch.training.wheelgen.camera import View, random_view
from designsearch.training.wheelgen.design import WheelDesign
from designsearch.training.wheelgen.geometry import WheelMesh, build_wheel
from designsearch.training.wheelgen.lines import DRAWING_STYLES, draw, visible_segments
from designsearch.training.wheelgen.photo import BACKGROUND_WEIGHTS, BACKGROUNDS, compose, degrade, denoise
from designsearch.training.segmenter.synthetic.valsets import mask_box
from designsearch.training.wheelgen.raster import MASK_RIM, RasterRenderer
from designsearch.training.wheelgen.render import FINISHES, PathTracer, to_srgb

#: Realism variants: each switches one realism step off (``full`` keeps all).
VARIANTS = ("full", "no_fillets", "flat_light", "no_tread", "no_noise")


@dataclass
class SetConfig:
    """What a picture set is made of (written to ``set.json``; a resume must match it exactly)."""

    seed: int
    designs: int
    views: int
    styles: list[str]
    size: int = 224
    spp: int = 8
    max_depth: int = 5
    tyre_share: float = 0.1
    oncar: int = 1
    drawings: bool = True
    real_models: bool = True
    val_fraction: float = 0.15
    variant: str = "full"
    engine_version: int = 1
    #: car photos of the on-car composites, comma-separated: ``car-parts`` (Car-Parts-Segmentation train
    #: photos, annotated wheels) and/or ``stanford`` (Stanford Cars classes 1-78, wheels found by the served
    #: segmenter: :mod:`~designsearch.training.wheelgen.stanford_slots`); each composite draws a source first
    oncar_photos: str = "car-parts"
    #: Stanford Cars photos scanned for wheels (label order; ``None`` = all of classes 1-78)
    stanford_photos: int | None = None


@dataclass
class DesignJob:
    """One design to render: procedural (``design``) or a real model (``model_path``)."""

    index: int
    design_id: str
    split: str
    source: str  # "procedural" | "rim-model"
    design: WheelDesign | None = None
    model_path: str | None = None
    related_to: str | None = None
    extra: dict = field(default_factory=dict)


_W: dict = {}


def init_worker(data_dir: str | None, size: int, spp: int, max_depth: int, oncar: bool,
                stanford: dict | None = None) -> None:
    """Per-process state: GL context, path tracer (1 Dr.Jit thread), backgrounds and on-car photo pools
    (Car-Parts-Segmentation; with ``stanford`` — keyword arguments of
    :func:`~designsearch.training.wheelgen.stanford_slots.find_stanford_wheels`, read from its cache — also
    Stanford Cars)."""
    import drjit as dr

    dr.set_thread_count(1)
    cv2.setNumThreads(1)
    _W.clear()
    _W["raster"] = RasterRenderer(size)
    _W["tracer"] = PathTracer(size, spp, max_depth)
    _W["photos"], _W["oncar"] = None, []
    if data_dir and Path(data_dir, "car-parts-seg", "annotations.json").is_file():
        from designsearch.training.segmenter.dataset import load_samples, split_samples
        from designsearch.training.segmenter.synthetic.backgrounds import PhotoBackgrounds

        train, _ = split_samples(load_samples(data_dir))
        _W["photos"] = PhotoBackgrounds([s for s in train if s.polygons] or train)
        if oncar:
            from designsearch.training.wheelgen.oncar import OnCarPhotos

            if stanford is None or stanford.get("with_car_parts", True):
                _W["oncar"].append(OnCarPhotos([s for s in train if s.polygons]))
    if oncar and stanford is not None:
        from designsearch.training.wheelgen.oncar import OnCarPhotos
        from designsearch.training.wheelgen.stanford_slots import find_stanford_wheels

        found = find_stanford_wheels(**{k: v for k, v in stanford.items() if k != "with_car_parts"})
        if found:
            _W["oncar"].append(OnCarPhotos(found))


def _wheel(job: DesignJob, cfg: SetConfig, tyre: bool) -> WheelMesh:
    tread = cfg.variant != "no_tread"
    if job.design is not None:
        return build_wheel(job.design, tyre=tyre, tread=tread, fillets=cfg.variant != "no_fillets")
    from designsearch.training.wheelgen.realrims import load_rim

    return load_rim(job.model_path, tyre=tyre, tread=tread)


def _save(path: Path, rgb: np.ndarray, jpeg: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if jpeg else []
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    if not cv2.imwrite(str(tmp), bgr, params):
        raise OSError(f"cannot write {path}")
    os.replace(tmp, path)


def render_design(job: DesignJob, cfg: SetConfig, out: str) -> list[dict]:
    """Render every picture of ``job`` into ``out/images/<design_id>/`` and return its manifest rows.

    Views: ``cfg.views`` product-shot views (:func:`.random_view`); consecutive pairs share one finish
    and studio (one path-traced batch); ``cfg.tyre_share`` of the pairs carry a tyre. Each view gives a
    ``render`` picture (JPEG) with its mask (PNG: 255 rim, 128 tyre) and, with ``cfg.drawings``, a
    ``drawing`` (PNG) of the same view with the same mask. ``cfg.oncar`` on-car composites follow.

    Raises:
        RuntimeError: :func:`init_worker` was not called in this process.
    """
    if "raster" not in _W:
        raise RuntimeError("init_worker must run first")
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, job.index, 7])
    folder = Path(out) / "images" / job.design_id
    rows: list[dict] = []
    base = {"design_id": job.design_id, "split": job.split, "source": job.source,
            "style": job.design.style if job.design else "real", "related_to": job.related_to or "",
            "params": job.design.to_json() if job.design else json.dumps({"model": Path(job.model_path).name}),
            "variant": cfg.variant, "seed": cfg.seed}
    views = [random_view(rng) for _ in range(cfg.views)]
    groups = [list(range(i, min(i + 2, cfg.views))) for i in range(0, cfg.views, 2)]
    wheels: dict[bool, WheelMesh] = {}
    loaded: bool | None = None
    tracer: PathTracer = _W["tracer"]
    raster: RasterRenderer = _W["raster"]
    for g, idx in enumerate(groups):
        tyre = bool(rng.random() < cfg.tyre_share)
        if tyre not in wheels:
            wheels[tyre] = _wheel(job, cfg, tyre)
        wheel = wheels[tyre]
        finish = FINISHES[int(rng.integers(len(FINISHES)))]
        if loaded != tyre:  # write the PLY files only when the geometry changes
            tracer.load(wheel, f"{job.design_id}-{int(tyre)}")
            loaded = tyre
        imgs = tracer.render_views([views[i] for i in idx], finish, rng, env_lighting=cfg.variant != "flat_light",
                                   seed=int(rng.integers(2 ** 31)))
        for i, img in zip(idx, imgs):
            v = views[i]
            mask, depth = raster.labels(wheel, v)
            bg = BACKGROUNDS[int(rng.choice(len(BACKGROUNDS), p=BACKGROUND_WEIGHTS))]
            rgb = degrade(compose(denoise(img), mask, bg, rng, _W["photos"]), rng, noise=cfg.variant != "no_noise")
            stem = f"v{i:02d}"
            _save(folder / f"{stem}-render.jpg", rgb, True)
            _save(folder / f"{stem}-mask.png", mask, False)
            box = mask_box(mask)
            rim_box = mask_box(mask == MASK_RIM)
            view_cols = {"view_id": i, "azimuth": v.azimuth, "elevation": v.elevation, "spin": v.spin,
                         "fov_deg": v.fov_deg, "tyre": int(tyre), "finish": finish,
                         "mask_file": f"images/{job.design_id}/{stem}-mask.png",
                         "x1": box[0] if box else "", "y1": box[1] if box else "",
                         "x2": box[2] if box else "", "y2": box[3] if box else "",
                         "rim_box": json.dumps(rim_box) if rim_box else "", "width": cfg.size, "height": cfg.size}
            rows.append({**base, **view_cols, "file": f"images/{job.design_id}/{stem}-render.jpg", "kind": "render",
                         "background": bg, "drawing_style": "", "boxes": json.dumps([box] if box else [])})
            if cfg.drawings:
                style = DRAWING_STYLES[int(rng.integers(len(DRAWING_STYLES)))]
                names = list(wheel.parts)
                segs = visible_segments([wheel.parts[n] for n in names], v, wheel.r_tyre, depth,
                                        crease_deg=[179.0 if n == "tyre" else 30.0 for n in names])
                _save(folder / f"{stem}-drawing.png", draw(segs, cfg.size, style, rng), False)
                rows.append({**base, **view_cols, "file": f"images/{job.design_id}/{stem}-drawing.png",
                             "kind": "drawing", "background": "paper", "drawing_style": style,
                             "finish": "", "boxes": json.dumps([box] if box else [])})
    rows.extend(_oncar(job, cfg, rng, folder, base))
    dt = time.perf_counter() - t0
    for r in rows:
        r["seconds"] = round(dt / max(len(rows), 1), 4)
    return rows


def _oncar(job: DesignJob, cfg: SetConfig, rng: np.random.Generator, folder: Path, base: dict) -> list[dict]:
    """``cfg.oncar`` composites of this design (with a tyre) into real car photos."""
    pools = _W.get("oncar") or []
    if not cfg.oncar or not pools:
        return []
    from designsearch.training.wheelgen.oncar import composite_on_car

    rows = []
    tracer: PathTracer = _W["tracer"]
    wheel = _wheel(job, cfg, True)
    tracer.load(wheel, f"{job.design_id}-car")
    finish = FINISHES[int(rng.integers(len(FINISHES)))]
    for k in range(cfg.oncar):
        src = pools[int(rng.integers(len(pools)))] if len(pools) > 1 else pools[0]  # one pool: the old draws
        sample, slots = src.sample(rng)
        spin = float(rng.uniform(0, 360))
        # +azimuth turns the face toward the image left (camera.look_at), so render at -signed yaw
        views = [View(azimuth=round(-s.signed_yaw_deg, 2), elevation=0.0, spin=spin, fov_deg=20.0, fill=0.98)
                 for s in slots]
        imgs = tracer.render_views(views, finish, rng, env_lighting=cfg.variant != "flat_light",
                                   seed=int(rng.integers(2 ** 31)))
        renders = []
        for img in imgs:
            rgba = np.concatenate([to_srgb(denoise(img)[..., :3], float(rng.uniform(0.8, 1.2))),
                                   np.clip(img[..., 3:4] * 255 + 0.5, 0, 255).astype(np.uint8)], 2)
            renders.append(rgba)
        photo = src.rgb(sample)
        rgb, mask, boxes = composite_on_car(photo, slots, renders, rng, wheel_fraction=0.98,
                                            mirror=[False] * len(slots), erase_mask=sample.mask())
        rgb = degrade(rgb, rng, noise=cfg.variant != "no_noise")
        stem = f"car{k:02d}"
        _save(folder / f"{stem}-oncar.jpg", rgb, True)
        _save(folder / f"{stem}-mask.png", mask, False)
        vis = [b for b in boxes if b[2] > b[0]]
        main = max(vis, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if vis else None
        rows.append({**base, "file": f"images/{job.design_id}/{stem}-oncar.jpg", "kind": "oncar",
                     "view_id": cfg.views + k, "azimuth": views[0].azimuth if views else "", "elevation": 0.0,
                     "spin": spin, "fov_deg": 20.0, "tyre": 1, "finish": finish, "background": sample.file_name,
                     "drawing_style": "", "mask_file": f"images/{job.design_id}/{stem}-mask.png",
                     "x1": main[0] if main else "", "y1": main[1] if main else "",
                     "x2": main[2] if main else "", "y2": main[3] if main else "", "rim_box": "",
                     "boxes": json.dumps(vis), "width": rgb.shape[1], "height": rgb.shape[0]})
    return rows
