"""FindSimilar and Dislike (no grpc): cache lookup → (miss) segment → embed the crops and the whole
picture → cache store → search per query vector → fuse per design (:mod:`designsearch.gateway.fusion`) → merge
with catalogue records.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np

from designsearch import tracing
from designsearch.domain import (KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE, VIEW_CUTOUT, VIEW_LINES, VIEW_PHOTO, Box,
                                 Hit, SearchFilter, check_filter, check_text)
from designsearch.errors import BackendUnavailable, InvalidArgument
from designsearch.images import decode_image, is_sketch_like
from designsearch.logs import caller
from designsearch.telemetry import StageTimer
from designsearch.gateway.cache import CachedQuery, QueryCache, cache_key
from designsearch.gateway.catalogue import Catalogue
from designsearch.gateway.fusion import DEFAULT_BONUS, DEFAULT_DEPTH, away_from, design_scores, fuse_max_agreement
from designsearch.gateway.live import LiveIndex
from designsearch.gateway.ports import Backends, QueryCrop
from designsearch.gateway.regions import WHOLE_PICTURE_MAX_SIDE, point_id, query_regions

DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH = "auto", "photo", "sketch"
#: The one answer of Identify, GetNovelty and GetTypicality when no catalogue design matches the filter
#: (FAILED_PRECONDITION, reason ``NO_MATCHING_DESIGN``): there is nothing to compare the query with.
NOTHING_TO_COMPARE = "the catalogue has no design matching the filter"
#: Catalogue point kinds that are crops of an image (searched by query crops); the third kind,
#: ``whole_image``, is the whole picture (searched by the query's whole-picture vector only).
CROP_KINDS = (KIND_WHEEL, KIND_CLOSEUP)
#: Catalogue vectors a sketch query is searched against, by the gateway's ``sketch_search`` setting.
SKETCH_SEARCH = {"photo": [VIEW_PHOTO], "lines": [VIEW_LINES], "both": [VIEW_LINES, VIEW_PHOTO]}
#: Regions of a close-up query searched against the catalogue's cut-outs too, by ``closeup_cutouts``.
CLOSEUP_CUTOUTS = {"off": (), "crops": (KIND_CLOSEUP,), "crops_whole": (KIND_CLOSEUP, KIND_WHOLE_IMAGE)}


@dataclass
class MatchResult:
    """One matched design: fused ``score`` (its best region's design score — its best point's cosine, or for
    a close-up or sketch query the mean cosine of its ``design_top_m`` best catalogue points unless the best
    is a near-copy — plus the agreement bonus) and the plain best ``cosine`` of any of its points to any query
    vector."""

    design_id: str
    brand: str
    model: str
    year: int
    score: float
    query_box: Box
    image_id: str
    catalogue_box: Box
    thumbnail: bytes
    source: str
    cosine: float = 0.0


@dataclass
class EmbeddedQuery:
    """A query embedded: its regions (crops, then the whole picture), float32
    ``(len(regions) + len(rotated_of), D)`` unit vectors (row ``i`` of region ``i``, then the rotated
    copies), ``vector_name`` (``lines`` for a sketch, else ``photo``; the catalogue views searched follow
    from it, :meth:`QueryService.search_views`), the domain searched, whether they came from
    the cache, the query id (sha256 hex), the embedder version and its live collection, and the region
    index of each rotated copy (:meth:`QueryService.rotated_copies`)."""

    regions: list[QueryCrop]
    vectors: np.ndarray
    vector_name: str
    domain: str
    cache_hit: bool
    query_id: str
    embedder_version: str
    collection: str
    rotated_of: list[int] = field(default_factory=list)

    @property
    def row_regions(self) -> list[int]:
        """Region index of every row of :attr:`vectors`."""
        return [*range(len(self.regions)), *self.rotated_of]


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


def crop_filter(flt: SearchFilter) -> SearchFilter | None:
    """The filter of a query crop's search: ``flt`` restricted to catalogue crops (:data:`CROP_KINDS`).

    A wheel crop is compared with catalogue crops only, not with whole pictures (a wheel and a
    whole car are different things); the whole-picture query vector is searched with ``flt``
    itself, so against every kind. Returns None when ``flt.kinds`` admits no crop kind.
    """
    kinds = tuple(k for k in CROP_KINDS if not flt.kinds or k in flt.kinds)
    if not kinds:
        return None
    return dataclasses.replace(flt, kinds=kinds)


def answer_dumps(r: QueryResult) -> bytes:
    """JSON of a whole answer (thumbnails base64; query regions without their pixels)."""
    return json.dumps({
        "matches": [{**dataclasses.asdict(m), "thumbnail": base64.b64encode(m.thumbnail).decode()} for m in r.matches],
        "crops": [{"box": list(c.box), "kind": c.kind, "score": c.score} for c in r.crops],
        "domain": r.domain, "embedder_version": r.embedder_version, "query_id": r.query_id,
    }).encode()


def answer_loads(raw: bytes) -> QueryResult:
    """Inverse of :func:`answer_dumps` (``cache_hit`` and timings are set by the caller)."""
    d = json.loads(raw)
    matches = [MatchResult(**{**m, "query_box": tuple(m["query_box"]), "catalogue_box": tuple(m["catalogue_box"]),
                              "thumbnail": base64.b64decode(m["thumbnail"])}) for m in d["matches"]]
    crops = [QueryCrop(tuple(c["box"]), c["kind"], c["score"], b"") for c in d["crops"]]
    return QueryResult(matches, crops, d["domain"], True, d["embedder_version"], d["query_id"])


def query_cache_key(query_id: str, segmenter_version: str, embedder_version: str, domain: str, max_crops: int,
                    rotations: int = 0) -> str:
    """Cache key of a query's vectors: image hash, both model versions and every option that
    changes the vectors (domain, crops searched, whole-picture size, rotated copies of close-ups)."""
    # "whole=" marks entries that hold the whole-picture vector after the crops' vectors.
    options = f"domain={domain};crops={max_crops};whole={WHOLE_PICTURE_MAX_SIDE};rot={rotations}"
    return cache_key(query_id, segmenter_version or "-", embedder_version, options)


class QueryService:
    """FindSimilar and Dislike over the backends, the query cache and the catalogue.

    Args:
        backends: segmenter, embedder and search.
        live: the live collection and model versions.
        cache: query-vector cache.
        catalogue: design records.
        default_k, max_k: result count default and limit.
        max_crops: query crops searched per image (the whole picture is searched as well).
        fusion_bonus: agreement bonus of the query fusion, cosine units (:func:`fuse_max_agreement`).
        fusion_depth: a query vector votes for the designs among its first ``fusion_depth``.
        closeup_rotations: rotated copies (0-3: 90, 180, 270 degrees) embedded of each region of a
            close-up query (:meth:`rotated_copies`); a region's hits are its best over the copies.
        sketch_search: which catalogue vectors a sketch query is searched against (:meth:`search_views`):
            ``photo`` (the default), ``lines`` or ``both``.
        closeup_cutouts: which regions of a close-up query are also searched against the catalogue's
            ``cutout`` vectors (:meth:`row_views`): ``crops`` (its close-up crops), ``crops_whole``
            (and its whole picture) or ``off``.
        design_top_m: for a :meth:`designer_query` (a close-up or a sketch), a design's score in a region's
            list is the mean cosine of its ``design_top_m`` best catalogue points, or its best point's when
            that is a near-copy (cosine >= 0.9) (:func:`designsearch.gateway.fusion.design_scores`); other
            queries, and 1, score a design by its best point (each search then returns one point per design).
        feedback_weight: γ of :func:`away_from` for the caller's disliked designs.
        answer_ttl_s: lifetime of a cached whole answer, seconds (any catalogue change invalidates
            all of them at once through the catalogue version).
    """

    def __init__(self, backends: Backends, live: LiveIndex, cache: QueryCache, catalogue: Catalogue, *,
                 default_k: int = 6, max_k: int = 100, max_crops: int = 4, fusion_bonus: float = DEFAULT_BONUS,
                 fusion_depth: int = DEFAULT_DEPTH, closeup_rotations: int = 3, sketch_search: str = "photo",
                 closeup_cutouts: str = "crops", design_top_m: int = 5, feedback_weight: float = 0.25,
                 answer_ttl_s: int = 600) -> None:
        self.backends = backends
        self.live = live
        self.cache = cache
        self.catalogue = catalogue
        self.default_k = default_k
        self.max_k = max_k
        self.max_crops = max_crops
        self.fusion_bonus = fusion_bonus
        self.fusion_depth = fusion_depth
        self.closeup_rotations = closeup_rotations
        if sketch_search not in SKETCH_SEARCH:
            raise ValueError(f"sketch_search must be one of {sorted(SKETCH_SEARCH)}, got {sketch_search!r}")
        self.sketch_search = sketch_search
        if closeup_cutouts not in CLOSEUP_CUTOUTS:
            raise ValueError(f"closeup_cutouts must be one of {sorted(CLOSEUP_CUTOUTS)}, got {closeup_cutouts!r}")
        self.closeup_cutouts = closeup_cutouts
        if design_top_m < 1:
            raise ValueError(f"design_top_m must be >= 1, got {design_top_m}")
        self.design_top_m = design_top_m
        self.feedback_weight = feedback_weight
        self.answer_ttl_s = answer_ttl_s

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
                           use_cache: bool = True, use_feedback: bool = True) -> QueryResult:
        """The ``k`` catalogue designs most similar to ``image``.

        The image is embedded as every crop the segmenter finds and as the whole picture (one
        embed call); each query vector is searched for its ``max(k, fusion_depth)`` best designs
        (crops against catalogue crops, the whole picture against every catalogue point), and the
        lists are fused per design with :func:`designsearch.gateway.fusion.fuse_max_agreement`. Photos are
        searched against the catalogue's ``photo`` vectors, sketches as :meth:`search_views` says (with
        two views a region keeps each design's best hit); the crops of a close-up or a sketch are also searched
        against the catalogue's cut-outs (:meth:`row_views`) and the rotated copies of a close-up's regions
        (:meth:`rotated_copies`) are merged the same way.

        Args:
            image: encoded image bytes.
            k: designs to return (0 = default).
            flt: payload filter.
            domain: ``auto`` (sketch-like images → sketch), ``photo`` or ``sketch``.
            use_cache: read the cache (it is always written).
            use_feedback: apply the caller's dislikes of this image (drop and move away); Identify and
                novelty, which describe the image itself, do not.

        Returns:
            Matches ordered by descending fused score (the best region's design score plus agreement
            bonus), one per design; each match's ``query_box`` is the box of the query region that gave
            that score.

        Raises:
            InvalidArgument / InvalidImage: bad request.
            BackendUnavailable: a backend is down.
        """
        timer = StageTimer()
        t0 = time.perf_counter()
        k = self.check_query(image, k, flt)
        query_id = hashlib.sha256(image).hexdigest()  # once: the answer key and the vector cache key use it
        answer_key, raw = None, None
        if use_cache:  # a whole answer, valid for this catalogue version, model versions and options
            with timer.stage("answer_cache") as span:
                await self.live.refresh()
                catalogue_version = await self.cache.catalogue_version()
                if catalogue_version is not None:
                    answer_key = self._answer_key(query_id, k, flt, domain, use_feedback, catalogue_version)
                    raw = await self.cache.get_raw(answer_key)
                tracing.tag(span, cache__kind="answer", cache__hit=raw is not None,
                            cache__available=catalogue_version is not None)
            if raw is not None:
                answer = answer_loads(raw)
                tracing.tag(tracing.current_span(), k=k, answer_cache_hit=True, matches=len(answer.matches),
                            query_id=query_id)
                answer.timings_ms = {**timer.ms, "total": (time.perf_counter() - t0) * 1000}
                return answer
        q = await self.embed_query(image, domain, use_cache, timer, query_id)
        regions, vectors, vector_name, query_id = q.regions, q.vectors, q.vector_name, q.query_id
        row_regions = q.row_regions
        version, collection, cached, used_domain = q.embedder_version, q.collection, q.cache_hit, q.domain
        collection_vectors = await self.live.vectors_of(collection)
        disliked = await asyncio.to_thread(self.catalogue.disliked, query_id, caller.get()) if use_feedback else []
        if disliked:  # this caller's feedback on this query: drop those designs, move the query away from them
            flt = dataclasses.replace(flt, exclude_design_ids=tuple(dict.fromkeys([*flt.exclude_design_ids, *disliked])))
            with timer.stage("feedback"):
                vectors = await self._away_from_disliked(disliked, [regions[i] for i in row_regions], vectors,
                                                         self.search_views(vector_name, collection_vectors)[0], version,
                                                         collection)
        limit = max(k, self.fusion_depth)
        crops_flt = crop_filter(flt)

        # every vector in one round trip; a crop is searched only when the caller's kinds filter admits a crop
        # kind; a region's rotated copies are merged into its list (best per design) before the fusion
        flts = [flt if regions[i].kind == KIND_WHOLE_IMAGE else crops_flt for i in row_regions]
        wanted = [row for row, f in enumerate(flts) if f is not None]
        views = self.row_views(vector_name, regions, collection_vectors)
        top_m = self.design_top_m if self.designer_query(vector_name, regions) else 1
        searches = [(row, name) for row in wanted for name in views[row_regions[row]]]
        with timer.stage("search") as span:
            tracing.tag(span, k=k, limit=limit, collection=collection, searches=len(searches), design_top_m=top_m,
                        views=sorted({n for _, n in searches}), disliked=len(disliked))
            found = await self.backends.search_designs_many(
                collection, [(vectors[row], name, limit, flts[row]) for row, name in searches], top_m)
            span.set_attribute("designsearch.hits", sum(len(hits) for hits in found))
            lists: list[list[list[Hit]]] = [[] for _ in regions]  # per region: one hit list per (row, view)
            for (row, _), hits in zip(searches, found):
                lists[row_regions[row]].append(hits)
            per_query: list[list[Hit]] = [design_scores(ls, top_m) for ls in lists]
            best_cosine: dict[str, float] = {}  # each design's best plain cosine (novelty reads it)
            for hits in found:
                for h in hits:
                    d = h.payload["design_id"]
                    best_cosine[d] = max(best_cosine.get(d, -1.0), h.score)
        with timer.stage("merge") as merge_span:
            fused = fuse_max_agreement(per_query, self.fusion_bonus, self.fusion_depth)
            records = await asyncio.to_thread(self.catalogue.crops, [m.hit.id for m in fused])
            matches = []
            for m in fused:
                rec = records.get(m.hit.id)
                if rec is None:  # vector stored but catalogue row missing (crash mid-ingest): skip
                    continue
                matches.append(MatchResult(rec.design.design_id, rec.design.brand, rec.design.model, rec.design.year,
                                           m.score, regions[m.query_index].box, rec.image_id, rec.box, rec.thumbnail,
                                           rec.source, best_cosine.get(m.design_id, m.cosine)))
                if len(matches) == k:
                    break
            tracing.tag(merge_span, designs_fused=len(fused), matches=len(matches))
        tracing.tag(tracing.current_span(), k=k, answer_cache_hit=False, cache_hit=cached, domain=used_domain,
                    regions=len(regions), embedder__version=version, segmenter__version=self.live.segmenter_version,
                    matches=len(matches), query_id=query_id)
        timer.ms["total"] = (time.perf_counter() - t0) * 1000
        result = QueryResult(matches, regions, used_domain, cached, version, query_id, timer.ms)
        if answer_key is not None:
            await self.cache.set_raw(answer_key, answer_dumps(result), self.answer_ttl_s)
        return result

    def _answer_key(self, query_id: str, k: int, flt: SearchFilter, domain: str, use_feedback: bool,
                    catalogue_version: int) -> str:
        """Key of a whole answer: everything it depends on, the caller (feedback is per caller) and the
        catalogue version (any catalogue change invalidates every answer)."""
        material = json.dumps([query_id, self.live.segmenter_version, self.live.embedder_version,
                               self.live.collection, domain, k, dataclasses.astuple(flt), caller.get(), use_feedback,
                               self.fusion_bonus, self.fusion_depth, self.feedback_weight, self.max_crops,
                               WHOLE_PICTURE_MAX_SIDE, self.closeup_rotations, self.sketch_search,
                               self.closeup_cutouts, self.design_top_m, catalogue_version], default=str)
        return "ds:ans:" + hashlib.sha256(material.encode()).hexdigest()

    async def embed_query(self, image: bytes, domain: str = DOMAIN_AUTO, use_cache: bool = True,
                          timer: StageTimer | None = None, query_id: str | None = None) -> EmbeddedQuery:
        """The query's regions and their vectors: from the cache, or segmented and embedded (then cached).
        ``query_id`` is the image's sha256 hex when the caller has it already.

        Raises:
            InvalidArgument / InvalidImage: an empty or undecodable image.
            BackendUnavailable: a backend is down.
        """
        if not image:
            raise InvalidArgument("image is empty (0 bytes)", field="image.content")
        timer = timer or StageTimer()
        await self.live.refresh()
        version, collection = self.live.embedder_version, self.live.collection
        query_id = query_id or hashlib.sha256(image).hexdigest()
        cached = None
        with timer.stage("cache") as span:
            if use_cache:
                cached = await self.cache.get(query_cache_key(query_id, self.live.segmenter_version, version, domain,
                                                              self.max_crops, self.closeup_rotations))
            tracing.tag(span, cache__kind="vectors", cache__hit=cached is not None, cache__read=use_cache)
        regions: list[QueryCrop]
        if cached is not None:
            regions = [QueryCrop(tuple(c["box"]), c["kind"], c["score"], b"") for c in cached.crops]
            vectors, vector_name, rotated_of = cached.vectors, cached.vector_name, cached.rotated_of
            used_domain = DOMAIN_SKETCH if vector_name == VIEW_LINES else DOMAIN_PHOTO
        else:
            with timer.stage("decode") as span:
                rgb = await asyncio.to_thread(decode_image, image)
                tracing.tag(span, image__bytes=len(image), image__height=rgb.shape[0], image__width=rgb.shape[1])
            used_domain = domain
            if domain == DOMAIN_AUTO:
                used_domain = DOMAIN_SKETCH if is_sketch_like(rgb) else DOMAIN_PHOTO
            vector_name = VIEW_LINES if used_domain == DOMAIN_SKETCH else VIEW_PHOTO
            with timer.stage("segment") as span:
                seg = await self.backends.segment(image, self.max_crops)
                tracing.tag(span, segmenter__version=seg.version, crops=len(seg.crops), max_crops=self.max_crops,
                            domain=used_domain, segmenter__reason=seg.reason or "")
            regions = query_regions(seg.crops, image, rgb)
            # A sketch is a line drawing already: it is embedded as drawn ("photo" view) and searched as
            # search_views says (the catalogue's photos by default, or its Canny line drawings).
            copies = self.rotated_copies(regions)
            rotated_of = [i for i, c in enumerate(copies) for _ in range(c)]
            with timer.stage("embed") as span:
                tracing.tag(span, embedder__version=version, regions=len(regions), rotated_copies=len(rotated_of))
                embedded, answered = await self.backends.embed([r.image for r in regions], [VIEW_PHOTO], version,
                                                               rotated_copies=copies if rotated_of else ())
                span.set_attribute("designsearch.embedder.answered_version", answered)
            if answered != version:
                raise BackendUnavailable(f"embedder now serves {answered}, gateway expects {version}; "
                                         "restart the gateway after a model change", retry_after_s=5)
            vectors = np.stack([e[VIEW_PHOTO] for e in embedded])
            # Stored under the version that actually cut the crops (during a segmenter roll-out the
            # answering pod may be newer than the version last read by the live index).
            await self.cache.set(query_cache_key(query_id, seg.version, version, domain, self.max_crops,
                                                 self.closeup_rotations),
                                 CachedQuery([{"box": list(r.box), "kind": r.kind, "score": r.score} for r in regions],
                                             vectors, vector_name, rotated_of))
        return EmbeddedQuery(regions, vectors, vector_name, used_domain, cached is not None, query_id, version, collection,
                             rotated_of)

    def search_views(self, vector_name: str, collection_vectors: frozenset[str] | None = None) -> list[str]:
        """The catalogue vectors a query embedded for ``vector_name`` is searched against: a photo query its
        ``photo`` vectors; a sketch query (``lines``) per :attr:`sketch_search`: ``photo`` (default: the
        embedder is trained to put a drawing near the photos of its design, and designers' drawings are
        not Canny edge maps — on ``benchmarks/designer_queries.py`` line drawings find their design in
        the top 6 for 57 % against photos, 44 % against the catalogue's line drawings, 48 % against
        both), ``lines`` (the reference system's rule) or ``both``. Names the collection lacks
        (``collection_vectors``, when given: a catalogue indexed without ``lines``) are left out;
        ``photo`` when none is left."""
        if vector_name != VIEW_LINES:
            return [VIEW_PHOTO]
        views = [v for v in SKETCH_SEARCH[self.sketch_search] if collection_vectors is None or v in collection_vectors]
        return views or [VIEW_PHOTO]

    @staticmethod
    def designer_query(vector_name: str, regions: list[QueryCrop]) -> bool:
        """A picture as designers draw them: one the segmenter calls a close-up, or a sketch. Its crops are
        also compared with the catalogue's cut-outs (:meth:`row_views`) and it scores designs by their
        best points (``design_top_m``); car photos are compared as before."""
        return vector_name == VIEW_LINES or any(r.kind == KIND_CLOSEUP for r in regions)

    def row_views(self, vector_name: str, regions: list[QueryCrop], collection_vectors: frozenset[str]) -> list[list[str]]:
        """The catalogue vectors each region is searched against: :meth:`search_views`, plus ``cutout``
        (each catalogue wheel alone on white), when the collection has that vector, for the regions
        :attr:`closeup_cutouts` names of a :meth:`designer_query` (a sketch's wheel crops count as close-up
        crops). A close-up, a rendering or a drawing shows one wheel on a plain background, as the
        catalogue's wheels on cars never do (``benchmarks/designer_queries.py`` measures the gain); car
        photos are compared as before.

        Args:
            vector_name: the query's vector name (``photo``, or ``lines`` for a sketch).
            regions: the query's regions (:func:`query_regions`).
            collection_vectors: the named vectors of the collection searched.
        """
        base = self.search_views(vector_name, collection_vectors)
        kinds = CLOSEUP_CUTOUTS[self.closeup_cutouts]
        if VIEW_CUTOUT not in collection_vectors or not self.designer_query(vector_name, regions):
            kinds = ()
        elif vector_name == VIEW_LINES and KIND_CLOSEUP in kinds:
            kinds = (*kinds, KIND_WHEEL)
        return [[*base, VIEW_CUTOUT] if r.kind in kinds else list(base) for r in regions]

    def rotated_copies(self, regions: list[QueryCrop]) -> list[int]:
        """Rotated copies to embed per region: :attr:`closeup_rotations` for the close-up crops and the
        whole picture of a query the segmenter calls a close-up (one wheel filling the frame, whose
        spokes and light may be turned any way, unlike the catalogue's wheels photographed on cars),
        0 for every region of other queries (a wheel on a car stands upright)."""
        if not self.closeup_rotations or not any(r.kind == KIND_CLOSEUP for r in regions):
            return [0] * len(regions)
        return [self.closeup_rotations if r.kind in (KIND_CLOSEUP, KIND_WHOLE_IMAGE) else 0 for r in regions]

    async def _away_from_disliked(self, disliked: list[str], regions: list[QueryCrop], vectors: np.ndarray,
                                  view: str, version: str, collection: str, max_points: int = 2000) -> np.ndarray:
        """:func:`away_from` the catalogue points (view ``view``) of the disliked designs; ``regions``: the
        region of each row of ``vectors``."""
        images = await asyncio.to_thread(self.catalogue.design_points, disliked, version)
        ids = [point_id(image_id, i, version) for image_id, _, n in images for i in range(n)][:max_points]
        points = await self.backends.get_points(collection, ids) if ids else []
        negatives = [(p.payload.get("kind") != KIND_WHOLE_IMAGE, p.vectors[view]) for p in points if view in p.vectors]
        crop_mask = np.array([r.kind != KIND_WHOLE_IMAGE for r in regions])
        return away_from(vectors, crop_mask, negatives, self.feedback_weight)

    async def dislike(self, query_id: str, design_id: str) -> None:
        """Store "not similar" feedback of the current caller (``designsearch.logs.caller``) with the
        live model version; that caller's later queries of this image drop the design and are moved
        away from it (:func:`away_from`).

        Raises:
            InvalidArgument: malformed query id or unknown design.
        """
        if len(query_id) != 64 or any(c not in "0123456789abcdef" for c in query_id):
            raise InvalidArgument("query_id must be the 64-hex sha256 returned by FindSimilar", field="query_id")
        if not design_id or len(design_id) > 128:
            raise InvalidArgument("design_id must be 1-128 characters", field="design_id")
        check_text(design_id, "design_id")
        if not await asyncio.to_thread(self.catalogue.design_exists, design_id):
            raise InvalidArgument(f"unknown design {design_id!r}", field="design_id")
        await asyncio.to_thread(self.catalogue.add_dislike, query_id, design_id, caller.get(), self.live.embedder_version)
        await self.cache.bump_catalogue_version()
