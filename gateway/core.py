"""Gateway domain logic (no grpc): query orchestration, ingestion, result merging.

Query: cache lookup → (miss) segment → embed the crops and the whole picture → cache store →
search per query vector → fuse per design (:mod:`gateway.fusion`) → merge with catalogue records.
Ingestion: every catalogue image is indexed as its crops plus one whole-picture point; idempotent
by image sha256 and embedder version.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field

import cv2
import numpy as np

from designsearch.errors import BackendUnavailable, InvalidArgument
from designsearch.images import decode_image, encode_jpeg, is_sketch_like, thumbnail
from designsearch.logs import get_logger
from designsearch.server import observe_stage
from gateway.backends import Backends, QueryCrop
from gateway.cache import CachedQuery, QueryCache, cache_key
from gateway.catalogue import Catalogue
from gateway.fusion import DEFAULT_BONUS, DEFAULT_DEPTH, fuse_max_agreement
from services.search.core import check_filter
from services.search.index import VECTOR_EDGE, VECTOR_PHOTO, Hit, Point, SearchFilter
from services.segmenter.detection import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE

log = get_logger("gateway")

DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH = "auto", "photo", "sketch"
POINT_NAMESPACE = uuid.UUID("6f0c2a4e-8b1d-4e4a-9a57-2f1f0d7f5b10")
#: Catalogue point kinds that are crops of an image (searched by query crops); the third kind,
#: ``whole_image``, is the whole picture (searched by the query's whole-picture vector only).
CROP_KINDS = (KIND_WHEEL, KIND_CLOSEUP)
#: The whole picture is sent to the embedder at most this many px on its longest side (larger
#: images are shrunk first; the embedder's input is 224 px). Queries and ingestion must agree, so
#: this is a constant, not a setting; it is part of the query cache key.
WHOLE_PICTURE_MAX_SIDE = 1024


@dataclass
class MatchResult:
    """One matched design."""

    design_id: str
    brand: str
    model: str
    year: int
    score: float
    query_box: tuple[int, int, int, int]
    image_id: str
    catalogue_box: tuple[int, int, int, int]
    thumbnail: bytes
    source: str


@dataclass
class QueryResult:
    """Answer to one FindSimilar.

    Attributes:
        matches: one per design, best fused score first (at most k).
        crops: the query regions searched, one per query vector: the segmenter's crops, then the
            whole picture (kind ``whole_image``, box = the whole image); only the whole picture
            when the segmenter found nothing. ``MatchResult.query_box`` is one of their boxes.
        domain: ``photo`` or ``sketch`` (the domain actually searched).
        cache_hit: the query vectors came from the cache.
        embedder_version: model version of the vectors.
        query_id: sha256 hex of the query image bytes.
        timings_ms: stage name → milliseconds.
    """

    matches: list[MatchResult]
    crops: list[QueryCrop]
    domain: str
    cache_hit: bool
    embedder_version: str
    query_id: str
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class IndexItem:
    """One catalogue image to ingest."""

    design_id: str
    brand: str
    model: str
    year: int
    image: bytes
    source: str = ""
    attributes: dict = field(default_factory=dict)


@dataclass
class IndexOutcome:
    """Per-item ingestion result: status ``added`` | ``duplicate`` | ``failed``; ``crops`` is the
    number of points indexed (the crops plus the whole picture)."""

    design_id: str
    image_id: str
    status: str
    crops: int = 0
    error: str = ""


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def stage(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                dt = time.perf_counter() - self.t
                timer.ms[name] = timer.ms.get(name, 0.0) + dt * 1000
                observe_stage(name, dt)

        return _Ctx()


def point_id(image_id: str, crop_index: int, model_version: str) -> str:
    """Deterministic point id (UUID5) of region ``crop_index`` of an image under one model version.

    Regions are numbered as :func:`query_regions` orders them: the crops 0..n-1, then the whole
    picture n (so the whole picture is 0 when the segmenter found nothing).
    """
    return str(uuid.uuid5(POINT_NAMESPACE, f"{image_id}:{crop_index}:{model_version}"))


def whole_picture_bytes(image: bytes, rgb: np.ndarray, max_side: int = WHOLE_PICTURE_MAX_SIDE) -> bytes:
    """The encoded whole picture to embed: ``image`` itself, or a JPEG (quality 92) of ``rgb``
    shrunk (area interpolation) to ``max_side`` px on its longest side when it is larger.

    Args:
        image: the encoded image.
        rgb: ``uint8`` ``(H, W, 3)`` decoding of ``image``.
        max_side: longest side sent to the embedder, px.
    """
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return encode_jpeg(small, quality=92)


def query_regions(crops: list[QueryCrop], image: bytes, rgb: np.ndarray) -> list[QueryCrop]:
    """The regions an image is embedded as: the segmenter's crops, then the whole picture.

    The whole picture (kind ``whole_image``, box ``(0, 0, W, H)``, score 0) is always last; when
    the segmenter found nothing it is the only region (no duplicate).

    Args:
        crops: the segmenter's crops (maybe empty).
        image: the encoded image.
        rgb: ``uint8`` ``(H, W, 3)`` decoding of ``image``.
    """
    h, w = rgb.shape[:2]
    return [*crops, QueryCrop((0, 0, w, h), KIND_WHOLE_IMAGE, 0.0, whole_picture_bytes(image, rgb))]


def crop_filter(flt: SearchFilter) -> SearchFilter | None:
    """The filter of a query crop's search: ``flt`` restricted to catalogue crops (:data:`CROP_KINDS`).

    A wheel crop is compared with catalogue crops only, not with whole pictures (a wheel and a
    whole car are different things); the whole-picture query vector is searched with ``flt``
    itself, so against every kind. Returns None when ``flt.kinds`` admits no crop kind.
    """
    kinds = tuple(k for k in CROP_KINDS if not flt.kinds or k in flt.kinds)
    if not kinds:
        return None
    return SearchFilter(flt.brands, flt.year_min, flt.year_max, kinds, flt.exclude_design_ids)


class GatewayCore:
    """Orchestrates the backends.

    Args:
        backends: gRPC clients of segmenter, embedder, search.
        cache: query-vector cache.
        catalogue: design records.
        collection_prefix: collections are ``<prefix>_<embedder version hex>``.
        default_k, max_k: result count default and limit.
        max_crops: query crops searched per image (the whole picture is searched as well).
        fusion_bonus: agreement bonus of the query fusion, cosine units (:func:`fuse_max_agreement`).
        fusion_depth: a query vector votes for the designs among its first ``fusion_depth``.
        ingest_concurrency: images processed at once during ingestion.
        thumbnail_px: stored thumbnail size.
        alias_refresh_s: how often the live collection alias is re-resolved, seconds.
    """

    def __init__(self, backends: Backends, cache: QueryCache, catalogue: Catalogue, *, collection_prefix: str = "designs",
                 default_k: int = 6, max_k: int = 100, max_crops: int = 4, fusion_bonus: float = DEFAULT_BONUS,
                 fusion_depth: int = DEFAULT_DEPTH, ingest_concurrency: int = 4, thumbnail_px: int = 128,
                 alias_refresh_s: float = 1.0) -> None:
        self.backends = backends
        self.cache = cache
        self.catalogue = catalogue
        self.collection_prefix = collection_prefix
        self.default_k = default_k
        self.max_k = max_k
        self.max_crops = max_crops
        self.fusion_bonus = fusion_bonus
        self.fusion_depth = fusion_depth
        self.ingest_concurrency = ingest_concurrency
        self.thumbnail_px = thumbnail_px
        self.embedder_version = ""
        self.segmenter_version = ""
        self.dims: dict[str, int] = {}
        self.alias_refresh_s = alias_refresh_s
        self._alias_checked = 0.0

    def collection_for(self, version: str) -> str:
        """Collection of an embedder version: ``<prefix>_<16 hex>``."""
        return f"{self.collection_prefix}_{version.removeprefix('sha256:')}"

    def version_of(self, collection: str) -> str:
        """Inverse of :meth:`collection_for`."""
        return "sha256:" + collection.removeprefix(f"{self.collection_prefix}_")

    @property
    def collection(self) -> str:
        """The live collection (named by the alias ``<prefix>``), as last resolved."""
        return self.collection_for(self.embedder_version)

    async def start(self) -> None:
        """Learn the embedders' versions, make sure the first one's collection exists, and point the
        alias at it if the alias is unset; then follow the alias.

        Raises:
            BackendUnavailable: a backend does not answer, or the alias names a collection whose
                embedder is not configured.
        """
        infos = await self.backends.model_infos()
        self.dims = dict(infos)
        version, dim = infos[0]
        collection = self.collection_for(version)
        await self.backends.create_collection(collection, {VECTOR_PHOTO: dim, VECTOR_EDGE: dim})
        if await self.backends.resolve_alias(self.collection_prefix) is None:
            await self.backends.set_alias(self.collection_prefix, collection)
        self._alias_checked = 0.0
        await self.refresh_live(force=True)
        log.info("gateway_ready", collection=self.collection, embedder=self.embedder_version)

    async def refresh_live(self, force: bool = False) -> None:
        """Re-resolve the alias at most every ``alias_refresh_s`` seconds; switch embedder with it.

        Raises:
            BackendUnavailable: the live collection needs an embedder version that is not configured.
        """
        now = time.monotonic()
        if not force and now - self._alias_checked < self.alias_refresh_s:
            return
        self._alias_checked = now
        live = await self.backends.resolve_alias(self.collection_prefix)
        version = self.version_of(live) if live else self.embedder_version
        if version not in self.dims:
            raise BackendUnavailable(f"live collection {live} needs embedder {version}; configured: {sorted(self.dims)}",
                                     retry_after_s=5)
        if version != self.embedder_version:
            log.info("live_collection_switched", collection=live, embedder=version)
        self.embedder_version = version

    # ---------------------------------------------------------------- queries
    def check_query(self, image: bytes, k: int, flt: SearchFilter) -> int:
        """Validate a query before any work; returns the effective k.

        Raises:
            InvalidArgument: empty image, k outside 0..max_k, reversed year range.
        """
        if not image:
            raise InvalidArgument("image is empty (0 bytes)", field="image.content")
        if k < 0 or k > self.max_k:
            raise InvalidArgument(f"k {k} outside 1..{self.max_k} (0 = default {self.default_k})", field="k")
        check_filter(flt)
        return k or self.default_k

    async def find_similar(self, image: bytes, k: int, flt: SearchFilter, domain: str = DOMAIN_AUTO,
                           use_cache: bool = True) -> QueryResult:
        """The ``k`` catalogue designs most similar to ``image``.

        The image is embedded as every crop the segmenter finds and as the whole picture (one
        embed call); each query vector is searched for its ``max(k, fusion_depth)`` best designs
        (crops against catalogue crops, the whole picture against every catalogue point), and the
        lists are fused per design with :func:`gateway.fusion.fuse_max_agreement`. Photos are
        searched against the catalogue's ``photo`` vectors, sketches against its ``edge`` vectors.

        Args:
            image: encoded image bytes.
            k: designs to return (0 = default).
            flt: payload filter.
            domain: ``auto`` (sketch-like images → sketch), ``photo`` or ``sketch``.
            use_cache: read the cache (it is always written).

        Returns:
            Matches ordered by descending fused score (best cosine plus agreement bonus), one per
            design; each match's ``query_box`` is the box of the query region that gave its best
            cosine.

        Raises:
            InvalidArgument / InvalidImage: bad request.
            BackendUnavailable: a backend is down.
        """
        timer = _Timer()
        t0 = time.perf_counter()
        k = self.check_query(image, k, flt)
        await self.refresh_live()
        version, collection = self.embedder_version, self.collection
        query_id = hashlib.sha256(image).hexdigest()
        cached = None
        # "whole=" marks entries that hold the whole-picture vector after the crops' vectors.
        options = f"domain={domain};crops={self.max_crops};whole={WHOLE_PICTURE_MAX_SIDE}"
        key = cache_key(query_id, self.segmenter_version or "-", version, options)
        with timer.stage("cache"):
            if use_cache:
                cached = await self.cache.get(key)
        regions: list[QueryCrop]
        if cached is not None:
            regions = [QueryCrop(tuple(c["box"]), c["kind"], c["score"], b"") for c in cached.crops]
            vectors, vector_name = cached.vectors, cached.vector_name
            used_domain = DOMAIN_SKETCH if vector_name == VECTOR_EDGE else DOMAIN_PHOTO
        else:
            with timer.stage("decode"):
                rgb = await asyncio.to_thread(decode_image, image)
            used_domain = domain
            if domain == DOMAIN_AUTO:
                used_domain = DOMAIN_SKETCH if is_sketch_like(rgb) else DOMAIN_PHOTO
            vector_name = VECTOR_EDGE if used_domain == DOMAIN_SKETCH else VECTOR_PHOTO
            with timer.stage("segment"):
                seg = await self.backends.segment(image, self.max_crops)
            self.segmenter_version = seg.version
            regions = query_regions(seg.crops, image, rgb)
            # A sketch is a line drawing already: it is embedded as drawn ("photo" view) and compared
            # with the catalogue's "edge" vectors (embeddings of Canny line drawings of the photos).
            with timer.stage("embed"):
                embedded, answered = await self.backends.embed([r.jpeg for r in regions], [VECTOR_PHOTO], version)
            if answered != version:
                raise BackendUnavailable(f"embedder now serves {answered}, gateway expects {version}; "
                                         "restart the gateway after a model change", retry_after_s=5)
            vectors = np.stack([e[VECTOR_PHOTO] for e in embedded])
            key = cache_key(query_id, self.segmenter_version, version, options)
            await self.cache.set(key, CachedQuery([{"box": list(r.box), "kind": r.kind, "score": r.score}
                                                   for r in regions], vectors, vector_name))
        disliked = await asyncio.to_thread(self.catalogue.disliked, query_id)
        if disliked:
            flt = SearchFilter(flt.brands, flt.year_min, flt.year_max, flt.kinds,
                               tuple(dict.fromkeys([*flt.exclude_design_ids, *disliked])))
        limit = max(k, self.fusion_depth)
        crops_flt = crop_filter(flt)

        async def search(region: QueryCrop, vector: np.ndarray) -> list[Hit]:
            f = flt if region.kind == KIND_WHOLE_IMAGE else crops_flt
            if f is None:  # the caller's kinds filter admits no crop kind
                return []
            return await self.backends.search_designs(collection, vector, vector_name, limit, f)

        with timer.stage("search"):
            per_query = await asyncio.gather(*[search(r, v) for r, v in zip(regions, vectors)])
        with timer.stage("merge"):
            fused = fuse_max_agreement(per_query, self.fusion_bonus, self.fusion_depth)
            records = await asyncio.to_thread(self.catalogue.crops, [m.hit.id for m in fused])
            matches = []
            for m in fused:
                rec = records.get(m.hit.id)
                if rec is None:  # vector stored but catalogue row missing (crash mid-ingest): skip
                    continue
                matches.append(MatchResult(rec.design.design_id, rec.design.brand, rec.design.model, rec.design.year,
                                           m.score, regions[m.query_index].box, rec.image_id, rec.box, rec.thumbnail,
                                           rec.source))
                if len(matches) == k:
                    break
        timer.ms["total"] = (time.perf_counter() - t0) * 1000
        return QueryResult(matches, regions, used_domain, cached is not None, version, query_id, timer.ms)

    async def dislike(self, query_id: str, design_id: str) -> None:
        """Store "not similar" feedback.

        Raises:
            InvalidArgument: malformed query id or unknown design.
        """
        if len(query_id) != 64 or any(c not in "0123456789abcdef" for c in query_id):
            raise InvalidArgument("query_id must be the 64-hex sha256 returned by FindSimilar", field="query_id")
        if not await asyncio.to_thread(self.catalogue.design_exists, design_id):
            raise InvalidArgument(f"unknown design {design_id!r}", field="design_id")
        await asyncio.to_thread(self.catalogue.add_dislike, query_id, design_id)

    # -------------------------------------------------------------- ingestion
    @staticmethod
    def check_item(item: IndexItem) -> None:
        """Validate a catalogue record.

        Raises:
            InvalidArgument: missing design id/brand, year outside 1886..2100, empty image.
        """
        if not item.design_id or len(item.design_id) > 128:
            raise InvalidArgument("design.design_id must be 1-128 characters", field="design.design_id")
        if not item.brand:
            raise InvalidArgument("design.brand is empty", field="design.brand")
        if not 1886 <= item.year <= 2100:
            raise InvalidArgument(f"design.year {item.year} outside 1886..2100", field="design.year")
        if not item.image:
            raise InvalidArgument("image is empty (0 bytes)", field="image.content")

    async def index_item(self, item: IndexItem, version: str | None = None) -> IndexOutcome:
        """Ingest one catalogue image; never raises for a bad item (the outcome says ``failed``).

        The image becomes one point per region of :func:`query_regions` (its crops, then the whole
        picture; only the whole picture when the segmenter finds nothing), each with a ``photo``
        and an ``edge`` vector, payload ``kind`` = the region's kind and ``box`` = its box, ids
        :func:`point_id` ``(image_id, region index, version)``, and one catalogue row with a
        thumbnail per point. An image already indexed with ``version`` is a ``duplicate``, unless it
        was indexed before whole-picture points existed (its last point is not a whole picture):
        then it is indexed again (same ids, so nothing is duplicated) to add the whole picture.

        Args:
            item: the catalogue record and image.
            version: embedder version (and so collection) to index into; None = the live one.

        Raises:
            BackendUnavailable: a backend is down (the stream should stop; nothing half-written
                is recorded as indexed).
        """
        image_id = hashlib.sha256(item.image).hexdigest() if item.image else ""
        if version is None:
            await self.refresh_live()
            version = self.embedder_version
        try:
            self.check_item(item)
            if await asyncio.to_thread(self._fully_indexed, image_id, version):
                return IndexOutcome(item.design_id, image_id, "duplicate")
            rgb = await asyncio.to_thread(decode_image, item.image)
            seg = await self.backends.segment(item.image, self.max_crops)
            regions = query_regions(seg.crops, item.image, rgb)
            embedded, answered = await self.backends.embed([r.jpeg for r in regions], [VECTOR_PHOTO, VECTOR_EDGE],
                                                           version)
            if answered != version:
                raise BackendUnavailable(f"embedder now serves {answered}, expected {version}")
            points, crop_rows = [], []
            for i, (region, vecs) in enumerate(zip(regions, embedded)):
                pid = point_id(image_id, i, version)
                points.append(Point(pid, vecs, {
                    "design_id": item.design_id, "brand": item.brand, "model": item.model, "year": item.year,
                    "kind": region.kind, "model_version": version, "image_id": image_id, "box": list(region.box)}))
                region_rgb = rgb if region.kind == KIND_WHOLE_IMAGE else \
                    await asyncio.to_thread(decode_image, region.jpeg)
                crop_rows.append({"point_id": pid, "box": region.box, "kind": region.kind,
                                  "thumbnail": thumbnail(region_rgb, self.thumbnail_px)})
            await self.backends.upsert(self.collection_for(version), points)
            design = {"design_id": item.design_id, "brand": item.brand, "model": item.model, "year": item.year,
                      "attributes": item.attributes}
            await asyncio.to_thread(self.catalogue.add_image, design, image_id, version, item.source,
                                    (rgb.shape[1], rgb.shape[0]), crop_rows)
            return IndexOutcome(item.design_id, image_id, "added", len(points))
        except InvalidArgument as exc:
            return IndexOutcome(item.design_id, image_id, "failed", error=exc.message)

    def _fully_indexed(self, image_id: str, version: str) -> bool:
        """True when the image has a catalogue row for ``version`` whose last point is its whole
        picture (blocking: run in a thread)."""
        n = self.catalogue.indexed_points(image_id, version)
        if n is None:
            return False
        return n > 0 and self.catalogue.point_kind(point_id(image_id, n - 1, version)) == KIND_WHOLE_IMAGE

    async def stats(self) -> dict:
        """Catalogue and index counts."""
        designs, images = await asyncio.to_thread(self.catalogue.stats, self.embedder_version)
        points = await self.backends.count(self.collection)
        return {"designs": designs, "images": images, "points": points}

    async def reindex(self, items, version: str, on_item=None, drop_old: bool = False, drain_s: float | None = None) -> dict:
        """Model upgrade without downtime: index ``items`` with embedder ``version`` into its own
        collection while the live one keeps serving, then switch the alias, then (optionally)
        drop the old collection.

        Resumable: images already indexed with ``version`` (catalogue rows) are skipped, so a
        crashed run continues where it stopped.

        Args:
            items: iterable of :class:`IndexItem` (the catalogue's source images).
            version: the new embedder's version; one of the configured embedders must serve it.
            on_item: called with each :class:`IndexOutcome`.
            drop_old: delete the previously live collection after the switch.
            drain_s: wait before dropping, so gateways still on the old alias finish (default:
                2 alias refresh periods).

        Returns:
            ``{"added", "duplicates", "failed", "collection", "previous"}``.

        Raises:
            BackendUnavailable: a backend is down or no embedder serves ``version``.
        """
        if version not in self.dims:
            self.dims.update(dict(await self.backends.model_infos()))
        if version not in self.dims:
            raise BackendUnavailable(f"no configured embedder serves {version}")
        target = self.collection_for(version)
        dim = self.dims[version]
        await self.backends.create_collection(target, {VECTOR_PHOTO: dim, VECTOR_EDGE: dim})
        previous = await self.backends.resolve_alias(self.collection_prefix)
        counts = {"added": 0, "duplicate": 0, "failed": 0}
        semaphore = asyncio.Semaphore(self.ingest_concurrency)

        async def one(item: IndexItem) -> None:
            async with semaphore:
                outcome = await self.index_item(item, version)
            counts[outcome.status] += 1
            if on_item:
                on_item(outcome)

        await asyncio.gather(*[one(item) for item in items])
        await self.backends.set_alias(self.collection_prefix, target)
        if drop_old and previous and previous != target:
            await asyncio.sleep(self.alias_refresh_s * 2 if drain_s is None else drain_s)
            await self.backends.delete_collection(previous)
        return {"added": counts["added"], "duplicates": counts["duplicate"], "failed": counts["failed"],
                "collection": target, "previous": previous}
