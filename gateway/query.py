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
from designsearch.domain import KIND_WHOLE_IMAGE, VIEW_PHOTO, Box, SearchFilter, check_filter, check_text
from designsearch.errors import BackendUnavailable, InvalidArgument
from designsearch.images import decode_image, is_sketch_like
from designsearch.logs import caller, get_logger
from designsearch.telemetry import StageTimer
from designsearch.gateway import plan as P
from designsearch.gateway.cache import CachedQuery, QueryCache, cache_key
from designsearch.gateway.catalogue import Catalogue
from designsearch.gateway.fusion import away_from
from designsearch.gateway.live import LiveIndex
from designsearch.gateway.plan import (CROP_KINDS, DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH, QueryPolicy,  # noqa: F401
                                       crop_filter)
from designsearch.gateway.ports import Backends, Region
from designsearch.gateway.regions import point_id, query_regions

log = get_logger("query")
#: The one answer of Identify, GetNovelty and GetTypicality when no catalogue design matches the filter
#: (FAILED_PRECONDITION, reason ``NO_MATCHING_DESIGN``): there is nothing to compare the query with.
NOTHING_TO_COMPARE = "the catalogue has no design matching the filter"


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
    copies; every row embedded as drawn, through the embedder's ``photo`` view), the domain searched
    (``photo`` or ``sketch``: the catalogue vectors searched follow from it, :func:`plan.search_views`),
    whether they came from the cache, the query id (sha256 hex), the embedder version and its live
    collection, and the region index of each rotated copy (:func:`plan.rotated_copies`)."""

    regions: list[Region]
    vectors: np.ndarray
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
    crops: list[Region]
    domain: str
    cache_hit: bool
    embedder_version: str
    query_id: str
    timings_ms: dict[str, float] = field(default_factory=dict)


def answer_dumps(r: QueryResult) -> bytes:
    """JSON of a whole answer (thumbnails base64; query regions without their pixels), tagged with
    :data:`plan.CACHE_FORMAT`."""
    return json.dumps({
        "format": P.CACHE_FORMAT,
        "matches": [{**dataclasses.asdict(m), "thumbnail": base64.b64encode(m.thumbnail).decode()} for m in r.matches],
        "crops": [{"box": list(c.box), "kind": c.kind, "score": c.score} for c in r.crops],
        "domain": r.domain, "embedder_version": r.embedder_version, "query_id": r.query_id,
    }).encode()


def answer_loads(raw: bytes) -> QueryResult | None:
    """Inverse of :func:`answer_dumps` (``cache_hit`` and timings are set by the caller); None for an entry
    that is corrupt or of another :data:`plan.CACHE_FORMAT` (another release wrote it): a miss, never an
    error."""
    try:
        d = json.loads(raw)
        if d.get("format") != P.CACHE_FORMAT:
            return None
        matches = [MatchResult(**{**m, "query_box": tuple(m["query_box"]), "catalogue_box": tuple(m["catalogue_box"]),
                                  "thumbnail": base64.b64decode(m["thumbnail"])}) for m in d["matches"]]
        crops = [Region(tuple(c["box"]), c["kind"], float(c["score"]), b"") for c in d["crops"]]
        return QueryResult(matches, crops, d["domain"], True, d["embedder_version"], d["query_id"])
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # JSONDecodeError is a ValueError
        log.warning("answer_cache_entry_unreadable", error=f"{type(e).__name__}: {e}")
        return None


def query_cache_key(query_id: str, segmenter_version: str, embedder_version: str, domain: str,
                    policy: QueryPolicy) -> str:
    """Cache key of a query's vectors: image hash, both model versions (the segmenter's includes its crop
    and post-processing settings), the domain asked for and the whole policy (:meth:`QueryPolicy.fingerprint`,
    which covers :data:`plan.CACHE_FORMAT`), so no rule can be left out of it."""
    return cache_key(query_id, segmenter_version or "-", embedder_version, f"domain={domain};{policy.fingerprint()}")


def answer_cache_key(query_id: str, segmenter_version: str, embedder_version: str, collection: str, domain: str,
                     k: int, flt: SearchFilter, caller_id: str, use_feedback: bool, policy: QueryPolicy,
                     catalogue_version: int) -> str:
    """Key of a whole answer: ``ds:ans:`` + sha256 over the request (image hash, k, filter, domain), the caller
    (feedback is per caller), the live models and collection, the whole policy (:meth:`QueryPolicy.fingerprint`,
    which covers :data:`plan.CACHE_FORMAT`) and the catalogue version (any catalogue change invalidates every
    answer)."""
    material = json.dumps([query_id, segmenter_version, embedder_version, collection, domain, k,
                           dataclasses.astuple(flt), caller_id, use_feedback, policy.fingerprint(), catalogue_version],
                          default=str)
    return "ds:ans:" + hashlib.sha256(material.encode()).hexdigest()


class QueryService:
    """FindSimilar and Dislike over the backends, the query cache and the catalogue: the I/O around the
    pure plan of :mod:`designsearch.gateway.plan` (cache, segmenter, one embed call, one
    ``SearchPointsBatch``, catalogue records).

    Args:
        backends: segmenter, embedder and search.
        live: the live collection and model versions.
        cache: query-vector and answer cache.
        catalogue: design records.
        policy: every rule of a query (:class:`designsearch.gateway.plan.QueryPolicy`; default: its
            defaults). Replace it as a whole (it is frozen); both cache keys hash it.
    """

    def __init__(self, backends: Backends, live: LiveIndex, cache: QueryCache, catalogue: Catalogue,
                 policy: QueryPolicy | None = None) -> None:
        self.backends = backends
        self.live = live
        self.cache = cache
        self.catalogue = catalogue
        self.policy = policy or QueryPolicy()

    def check_query(self, image: bytes, k: int, flt: SearchFilter) -> int:
        """Validate a query before any work; returns the effective k.

        Raises:
            InvalidArgument: empty image, k outside 0..max_k, reversed year range.
        """
        if not image:
            raise InvalidArgument("image is empty (0 bytes)", field="image.content")
        if k < 0 or k > self.policy.max_k:
            raise InvalidArgument(f"k {k} outside 1..{self.policy.max_k} (0 = default {self.policy.default_k})",
                                  field="k")
        check_filter(flt)
        return k or self.policy.default_k

    async def find_similar(self, image: bytes, k: int, flt: SearchFilter, domain: str = DOMAIN_AUTO,
                           use_cache: bool = True, use_feedback: bool = True) -> QueryResult:
        """The ``k`` catalogue designs most similar to ``image``.

        The image is embedded as every crop the segmenter finds and as the whole picture (one embed call,
        with the rotated copies of :func:`plan.rotated_copies`); the searches of :func:`plan.search_plan`
        (crops against catalogue crops, the whole picture against every catalogue point, each against the
        catalogue vectors of :func:`plan.row_views`) go in one batch, and :func:`plan.rank` fuses their hits
        per design. The plan is logged at debug level (``query_plan``).

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
        policy = self.policy
        query_id = hashlib.sha256(image).hexdigest()  # once: the answer key and the vector cache key use it
        answer_key, raw, answer = None, None, None
        if use_cache and policy.answer_ttl_s > 0:  # a whole answer, valid for this catalogue version, models, policy
            with timer.stage("answer_cache") as span:
                await self.live.refresh()
                catalogue_version = await self.cache.catalogue_version()
                if catalogue_version is not None:
                    answer_key = self.answer_key(query_id, k, flt, domain, use_feedback, catalogue_version)
                    raw = await self.cache.get_raw(answer_key)
                answer = answer_loads(raw) if raw is not None else None
                tracing.tag(span, cache__kind="answer", cache__hit=answer is not None,
                            cache__available=catalogue_version is not None)
            if answer is not None:
                tracing.tag(tracing.current_span(), k=k, answer_cache_hit=True, matches=len(answer.matches),
                            query_id=query_id)
                answer.timings_ms = {**timer.ms, "total": (time.perf_counter() - t0) * 1000}
                return answer
        q = await self.embed_query(image, domain, use_cache, timer, query_id)
        regions, vectors, row_regions = q.regions, q.vectors, q.row_regions
        version, collection, cached, used_domain = q.embedder_version, q.collection, q.cache_hit, q.domain
        collection_vectors = await self.live.vectors_of(collection)
        disliked = await asyncio.to_thread(self.catalogue.disliked, query_id, caller.get()) if use_feedback else []
        if disliked:  # this caller's feedback on this query: drop those designs, move the query away from them
            flt = dataclasses.replace(flt, exclude_design_ids=tuple(dict.fromkeys([*flt.exclude_design_ids, *disliked])))
            with timer.stage("feedback"):
                vectors = await self._away_from_disliked(disliked, [regions[i] for i in row_regions], vectors,
                                                         P.search_views(policy, used_domain, collection_vectors)[0],
                                                         version, collection)
        search_plan = P.search_plan(policy, used_domain, regions, row_regions, flt, k, collection_vectors)
        log.debug("query_plan", query_id=query_id, domain=used_domain, **search_plan.describe())
        with timer.stage("search") as span:
            tracing.tag(span, k=k, limit=search_plan.limit, collection=collection, searches=len(search_plan.searches),
                        design_top_m=search_plan.top_m, views=sorted({s.view for s in search_plan.searches}),
                        disliked=len(disliked))
            found = await self.backends.search_designs_many(
                collection, [(vectors[s.row], s.view, s.limit, s.filter) for s in search_plan.searches],
                search_plan.top_m)
            span.set_attribute("designsearch.hits", sum(len(hits) for hits in found))
        with timer.stage("merge") as merge_span:
            fused, best_cosine = P.rank(policy, search_plan, found)
            records = await asyncio.to_thread(self.catalogue.crops, [m.hit.id for m in fused])
            matches = []
            for m in fused:
                rec = records.get(m.hit.id)
                if rec is None:  # vector stored but catalogue row missing (crash mid-ingest): skip
                    continue
                matches.append(MatchResult(rec.design.design_id, rec.design.brand, rec.design.model, rec.design.year,
                                           m.score, regions[m.query_index].box, rec.image_id, rec.box, rec.thumbnail,
                                           rec.source, best_cosine.get(m.design_id, m.best)))
                if len(matches) == k:
                    break
            tracing.tag(merge_span, designs_fused=len(fused), matches=len(matches))
        tracing.tag(tracing.current_span(), k=k, answer_cache_hit=False, cache_hit=cached, domain=used_domain,
                    regions=len(regions), embedder__version=version, segmenter__version=self.live.segmenter_version,
                    matches=len(matches), query_id=query_id)
        timer.ms["total"] = (time.perf_counter() - t0) * 1000
        result = QueryResult(matches, regions, used_domain, cached, version, query_id, timer.ms)
        if answer_key is not None:
            # off the event loop (JSON + base64 thumbnails: milliseconds that cached queries would wait behind)
            await self.cache.set_raw(answer_key, await asyncio.to_thread(answer_dumps, result), policy.answer_ttl_s)
        return result

    def answer_key(self, query_id: str, k: int, flt: SearchFilter, domain: str, use_feedback: bool,
                   catalogue_version: int) -> str:
        """:func:`answer_cache_key` of a request under the live models, this policy and the current caller."""
        return answer_cache_key(query_id, self.live.segmenter_version, self.live.embedder_version, self.live.collection,
                                domain, k, flt, caller.get(), use_feedback, self.policy, catalogue_version)

    def vector_key(self, query_id: str, segmenter_version: str, domain: str) -> str:
        """Key of a query's vectors (:func:`query_cache_key` under the live embedder and this policy)."""
        return query_cache_key(query_id, segmenter_version, self.live.embedder_version, domain, self.policy)

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
        policy = self.policy
        await self.live.refresh()
        version, collection = self.live.embedder_version, self.live.collection
        query_id = query_id or hashlib.sha256(image).hexdigest()
        cached = None
        with timer.stage("cache") as span:
            if use_cache:
                cached = await self.cache.get(self.vector_key(query_id, self.live.segmenter_version, domain))
            tracing.tag(span, cache__kind="vectors", cache__hit=cached is not None, cache__read=use_cache)
        regions: list[Region]
        if cached is not None:
            regions = [Region(tuple(c["box"]), c["kind"], c["score"], b"") for c in cached.crops]
            vectors, used_domain, rotated_of = cached.vectors, cached.domain, cached.rotated_of
        else:
            with timer.stage("decode") as span:
                rgb = await asyncio.to_thread(decode_image, image)
                tracing.tag(span, image__bytes=len(image), image__height=rgb.shape[0], image__width=rgb.shape[1])
            used_domain = domain
            if domain == DOMAIN_AUTO:
                sketch = is_sketch_like(rgb, policy.sketch_max_saturation, policy.sketch_min_low_saturation,
                                        policy.sketch_min_bright)
                used_domain = DOMAIN_SKETCH if sketch else DOMAIN_PHOTO
            with timer.stage("segment") as span:
                seg = await self.backends.segment(image, policy.max_crops)
                tracing.tag(span, segmenter__version=seg.version, crops=len(seg.crops), max_crops=policy.max_crops,
                            domain=used_domain, segmenter__reason=seg.reason or "")
            # off the event loop: shrinking and re-encoding a large whole picture takes milliseconds
            regions = await asyncio.to_thread(query_regions, seg.crops, image, rgb, policy.whole_picture_max_side)
            # A sketch is a line drawing already: it is embedded as drawn (the "photo" view) and searched
            # as plan.search_views says (the catalogue's photos by default, or its Canny line drawings).
            copies = P.rotated_copies(policy, regions)
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
            await self.cache.set(self.vector_key(query_id, seg.version, domain),
                                 CachedQuery([{"box": list(r.box), "kind": r.kind, "score": r.score} for r in regions],
                                             vectors, used_domain, rotated_of))
        return EmbeddedQuery(regions, vectors, used_domain, cached is not None, query_id, version, collection,
                             rotated_of)

    async def _away_from_disliked(self, disliked: list[str], regions: list[Region], vectors: np.ndarray,
                                  view: str, version: str, collection: str) -> np.ndarray:
        """:func:`away_from` the catalogue points (view ``view``, the first of :func:`plan.search_views`) of
        the disliked designs, at most ``policy.feedback_max_points`` of them; ``regions``: the region of each
        row of ``vectors``."""
        images = await asyncio.to_thread(self.catalogue.design_points, disliked, version)
        ids = [point_id(image_id, i, version) for image_id, _, n in images for i in range(n)]
        ids = ids[:self.policy.feedback_max_points]
        points = await self.backends.get_points(collection, ids) if ids else []
        negatives = [(p.payload.get("kind") != KIND_WHOLE_IMAGE, p.vectors[view]) for p in points if view in p.vectors]
        crop_mask = np.array([r.kind != KIND_WHOLE_IMAGE for r in regions])
        return away_from(vectors, crop_mask, negatives, self.policy.feedback_weight)

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
