"""Training pictures of the kinds designers send, from the wheel-design engine and the real TRAIN pictures (issue 30).

:class:`RealWorldMixDataset` wraps the designer mix (:class:`~.mixture.DesignerMixDataset`: car photos, pasted
close-ups, negatives) and draws, with the given probabilities, items of four more sources:

* ``render`` / ``drawing`` / ``oncar``: the engine's TRAIN designs (``designsearch render-wheels`` set,
  manifest or per-design part files, ``split == "train"`` only; the validation designs and the 15 real rim
  models are never read): studio renders and line drawings with the rasteriser's exact mask (rim + tyre),
  on-car composites with the mask of every wheel worn (:func:`engine_train_rows`);
* ``rim``: the 136 ``car-parts-50`` TRAIN rims with the mask derived from their plain background
  (:func:`~designsearch.training.segmenter.real_sets.plain_background_mask`);
* ``lookalike``: the 1,792 ``car-parts-50`` TRAIN look-alikes (brake rotors, clutch plates, lights, …) as
  negatives (empty mask).

Close-up sources (render, drawing, rim) get a geometric augmentation (rotation 0-360°, scale 0.55-1.1,
shift, mild perspective; the border filled with the picture's corner colour, so the background stays
plain) and the designer mix's photometric one; on-car composites the car-photo one (random resized crop,
flip, colour); look-alikes both. Every item is ``pixels`` float32 ``(3, S, S)`` raw RGB 0..255 and ``mask``
float32 ``(1, S, S)`` 0/1, like the wrapped dataset.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

#: The extra sources, in the order of :class:`RealWorldMixDataset`'s probabilities.
SOURCES = ("render", "drawing", "oncar", "rim", "lookalike")


def engine_train_rows(set_dir: str | Path) -> list[dict]:
    """Manifest rows of the TRAIN designs of an engine set (``manifest.csv``, else its ``parts/*.csv``, so a
    set still rendering can be used), kinds render, drawing and oncar.

    Raises:
        FileNotFoundError: neither a manifest nor part files in ``set_dir``.
    """
    set_dir = Path(set_dir)
    files = [set_dir / "manifest.csv"] if (set_dir / "manifest.csv").is_file() else sorted((set_dir / "parts").glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no manifest.csv or parts/*.csv in {set_dir} (run designsearch render-wheels)")
    rows = []
    for f in files:
        with f.open(encoding="utf-8") as fh:
            rows += [r for r in csv.DictReader(fh) if r["split"] == "train" and r["kind"] in ("render", "drawing", "oncar")]
    return rows


#: Default zoom range of the close-up geometry: up to 1.1 the rim stays (nearly) whole inside the frame.
CLOSEUP_SCALE = (0.55, 1.1)


def _closeup_geometry(size: int, fill: tuple[int, int, int] = (0, 0, 0), scale: tuple[float, float] = CLOSEUP_SCALE):
    """Geometric augmentation of a close-up (albumentations), the border filled with ``fill`` (RGB); ``size`` px
    out; ``scale`` the zoom range (above ~1.1 the frame cuts the rim, as in tight product shots)."""
    import albumentations as A

    return A.Compose([
        A.Affine(rotate=(-180, 180), scale=scale, translate_percent=(-0.08, 0.08), border_mode=cv2.BORDER_CONSTANT,
                 fill=fill, fill_mask=0, p=0.9),
        A.Perspective(scale=(0.02, 0.06), p=0.3),
        A.Resize(size, size),
    ])


def _corner_colour(rgb: np.ndarray) -> np.ndarray:
    """Median colour of the four 4x4 corners: the plain background of a product shot or render."""
    c = np.concatenate([rgb[:4, :4].reshape(-1, 3), rgb[:4, -4:].reshape(-1, 3), rgb[-4:, :4].reshape(-1, 3),
                        rgb[-4:, -4:].reshape(-1, 3)])
    return np.median(c, axis=0).astype(np.uint8)


class RealWorldMixDataset:
    """Torch dataset: the designer mix plus the engine's renders, drawings, on-car composites, real rims and
    real look-alike negatives (see the module docstring).

    Args:
        base: the designer mix (or any dataset of ``(pixels, mask)`` items), drawn for the remaining share.
        set_dir: an engine set (``designsearch render-wheels --out``); its TRAIN designs only.
        rims: ``[(rgb uint8 (H, W, 3), mask uint8 (H, W) 0/1)]`` real training rims.
        lookalikes: ``[rgb]`` real wheel-free training pictures.
        size: picture side ``S``, pixels.
        probs: ``{source: probability}`` for the keys of :data:`SOURCES` (missing keys 0); the rest, ``1 - sum``,
            goes to ``base``.
        epoch_items: items per epoch (the mixture is sampled).
        seed: generator seed.
        closeup_scale: zoom range of the close-up sources' geometry (:data:`CLOSEUP_SCALE`).

    Raises:
        ValueError: probabilities outside [0, 1] or summing over 1, an unknown source, or a source with
            probability > 0 and no pictures.
    """

    def __init__(self, base, set_dir: str | Path | None, rims: list[tuple[np.ndarray, np.ndarray]],
                 lookalikes: list[np.ndarray], size: int, probs: dict[str, float], epoch_items: int = 640,
                 seed: int = 0, closeup_scale: tuple[float, float] = CLOSEUP_SCALE) -> None:
        from designsearch.training.segmenter.dataset import build_augmentation
        from designsearch.training.segmenter.synthetic.mixture import _photometric

        unknown = set(probs) - set(SOURCES)
        if unknown or any(not 0 <= p <= 1 for p in probs.values()) or sum(probs.values()) > 1 + 1e-9:
            raise ValueError(f"bad source probabilities {probs}")
        self.base, self.size, self.epoch_items, self.closeup_scale = base, size, epoch_items, tuple(closeup_scale)
        self.set_dir = Path(set_dir) if set_dir is not None else None
        rows = engine_train_rows(self.set_dir) if self.set_dir is not None else []
        self.engine = {k: [r for r in rows if r["kind"] == k] for k in ("render", "drawing", "oncar")}
        self.rims, self.lookalikes = rims, lookalikes
        counts = {**{k: len(v) for k, v in self.engine.items()}, "rim": len(rims), "lookalike": len(lookalikes)}
        empty = [k for k, p in probs.items() if p > 0 and not counts[k]]
        if empty:
            raise ValueError(f"no pictures for source(s) {empty}")
        self.counts = counts
        self.cum = np.cumsum([probs.get(k, 0.0) for k in SOURCES])
        self.rng = np.random.default_rng(seed + 11)
        self.photo_aug = build_augmentation(size)
        self.photometric = _photometric(size)

    def __len__(self) -> int:
        return self.epoch_items

    def _read(self, rel: str, flags=cv2.IMREAD_COLOR) -> np.ndarray:
        im = cv2.imread(str(self.set_dir / rel), flags)
        if im is None:
            raise FileNotFoundError(f"cannot read {self.set_dir / rel}")
        return cv2.cvtColor(im, cv2.COLOR_BGR2RGB) if im.ndim == 3 else im

    def _closeup(self, rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fill = tuple(int(v) for v in _corner_colour(rgb))  # a plain backdrop stays plain
        out = _closeup_geometry(self.size, fill, self.closeup_scale)(image=rgb, mask=mask)
        return out["image"], out["mask"]

    def item(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """One ``(rgb uint8 (S, S, 3), mask uint8 (S, S) 0/1)`` picture of ``source`` (before photometric jitter)."""
        rng, size = self.rng, self.size
        if source in ("render", "drawing", "oncar"):
            rows = self.engine[source]
            r = rows[int(rng.integers(len(rows)))]
            rgb = self._read(r["file"])
            mask = (self._read(r["mask_file"], cv2.IMREAD_GRAYSCALE) > 0).astype(np.uint8)
            if source == "oncar":
                out = self.photo_aug(image=rgb, mask=mask)
                return out["image"], out["mask"]
            return self._closeup(rgb, mask)
        if source == "rim":
            rgb, mask = self.rims[int(rng.integers(len(self.rims)))]
            return self._closeup(rgb, mask)
        rgb = self.lookalikes[int(rng.integers(len(self.lookalikes)))]
        img, _ = self._closeup(rgb, np.zeros(rgb.shape[:2], np.uint8))
        return img, np.zeros((size, size), np.uint8)

    def __getitem__(self, i: int):
        import torch

        r = self.rng.random()
        k = int(np.searchsorted(self.cum, r, side="right"))
        if k >= len(SOURCES):
            return self.base[int(self.rng.integers(len(self.base)))]
        rgb, mask = self.item(SOURCES[k])
        if SOURCES[k] != "oncar":
            rgb = self.photometric(image=rgb)["image"]
        pixels = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
        target = torch.from_numpy(np.ascontiguousarray(mask)).float()[None]
        return pixels, target
