"""Verify (1:1, no grpc): are two images the same design? (:mod:`designsearch.verification`)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from designsearch.domain import KIND_WHOLE_IMAGE, VIEW_LINES, VIEW_PHOTO
from designsearch.errors import BackendUnavailable, FailedPrecondition, InvalidArgument
from designsearch.gateway.live import LiveIndex
from designsearch.gateway.ports import Backends
from designsearch.gateway.query import DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH
from designsearch.gateway.regions import query_regions
from designsearch.images import decode_image, is_sketch_like
from designsearch.verification import pair_similarity


@dataclass
class VerifyResult:
    """Answer of one Verify: similarity in [-1, 1], decision, threshold and its held-out error rates."""

    similarity: float
    same_design: bool
    threshold: float
    domain: str
    embedder_version: str
    false_accept_rate: float
    false_reject_rate: float
    equal_error_rate: float


class Verifier:
    """1:1 verification over the backends, with thresholds from a calibration file.

    Args:
        backends: segmenter and embedder.
        live: the live model versions.
        calibration_path: JSON written by :mod:`designsearch.training.verify_calibration`; re-read when it changes.
        max_crops: crops compared per image (and the whole picture).
    """

    def __init__(self, backends: Backends, live: LiveIndex, calibration_path: str | Path, max_crops: int = 4) -> None:
        self.backends = backends
        self.live = live
        self.path = Path(calibration_path)
        self.max_crops = max_crops
        self._cache: tuple[float, dict] | None = None

    def calibration(self, version: str) -> dict:
        """The calibration record of embedder ``version``.

        Raises:
            FailedPrecondition: no calibration file, or it was made for another model version.
        """
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise FailedPrecondition(f"no Verify calibration at {self.path}; run "
                                     "`python -m designsearch.training.verify_calibration`") from None
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, json.loads(self.path.read_text()))
        record = self._cache[1]
        if record.get("embedder_version") != version:
            raise FailedPrecondition(f"Verify is calibrated for {record.get('embedder_version')}, the live model is "
                                     f"{version}; re-run the calibration for it")
        return record

    async def _regions(self, image: bytes, rgb: np.ndarray, view: str, version: str) -> tuple[np.ndarray, np.ndarray]:
        seg = await self.backends.segment(image, self.max_crops)
        regions = query_regions(seg.crops, image, rgb)
        embedded, answered = await self.backends.embed([r.image for r in regions], [view], version)
        if answered != version:
            raise BackendUnavailable(f"embedder now serves {answered}, gateway expects {version}", retry_after_s=5)
        vectors = np.stack([e[view] for e in embedded])
        assert regions[-1].kind == KIND_WHOLE_IMAGE
        return vectors[:-1], vectors[-1]

    async def verify(self, first: bytes, second: bytes, domain: str = DOMAIN_AUTO) -> VerifyResult:
        """Similarity of two images and the decision at the calibrated threshold.

        ``first`` in the sketch domain (given, or detected) is embedded as drawn and compared with
        the view of ``second`` the calibration names (``sketch.view``: ``photo`` since the fifth
        session's calibration, ``lines`` in older records); otherwise photo with photo. The similarity is
        :func:`designsearch.verification.pair_similarity` of their regions (crops + whole picture).

        Raises:
            InvalidArgument / InvalidImage: an empty or undecodable image.
            FailedPrecondition: Verify is not calibrated for the live model.
            BackendUnavailable: a backend is down.
        """
        for name, data in (("first", first), ("second", second)):
            if not data:
                raise InvalidArgument(f"{name} image is empty (0 bytes)", field=f"{name}.content")
        await self.live.refresh()
        version = self.live.embedder_version
        record = self.calibration(version)
        rgb_a, rgb_b = await asyncio.gather(asyncio.to_thread(decode_image, first), asyncio.to_thread(decode_image, second))
        if domain == DOMAIN_AUTO:
            domain = DOMAIN_SKETCH if is_sketch_like(rgb_a) else DOMAIN_PHOTO
        kind = "sketch" if domain == DOMAIN_SKETCH else "photo"
        view_b = record["sketch"].get("view", VIEW_LINES) if kind == "sketch" else VIEW_PHOTO
        if view_b not in (VIEW_PHOTO, VIEW_LINES):
            raise FailedPrecondition(f"Verify calibration names an unknown sketch view {view_b!r}; re-run it")
        a, b = await asyncio.gather(self._regions(first, rgb_a, VIEW_PHOTO, version),
                                    self._regions(second, rgb_b, view_b, version))
        similarity = pair_similarity(*a, *b)
        cal = record[kind]
        return VerifyResult(similarity, similarity >= cal["threshold"], cal["threshold"], domain, version,
                            cal["report"]["far"], cal["report"]["frr"], cal["report"]["eer"])
