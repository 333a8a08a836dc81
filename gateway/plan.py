"""The query as a plan (no I/O, no grpc): a frozen :class:`QueryPolicy` built once from the settings, pure
functions that turn a query's regions, domain and the policy into an embedding plan (rotated copies) and a
search plan (which rows are searched against which catalogue vectors, limits, filters, top-m), and the pure
ranking step that fuses the searches' hits per design.

:class:`designsearch.gateway.query.QueryService` does the I/O around these: cache, segmenter, embedder,
one ``SearchPointsBatch`` and the catalogue. Every knob of FindSimilar lives in :class:`QueryPolicy` (the
only place its defaults are written; :class:`designsearch.gateway.config.GatewaySettings` reads them from
here), and both cache keys hash the whole policy (:meth:`QueryPolicy.fingerprint`), so a new rule cannot
be served stale from Redis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from designsearch.domain import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE, VIEW_CUTOUT, VIEW_LINES, VIEW_PHOTO, Hit, SearchFilter
from designsearch.gateway.fusion import FusedMatch, design_scores, fuse_max_agreement
from designsearch.gateway.ports import Region
from designsearch.gateway.regions import WHOLE_PICTURE_MAX_SIDE
from designsearch.images import SKETCH_MAX_SATURATION, SKETCH_MIN_BRIGHT, SKETCH_MIN_LOW_SATURATION

if TYPE_CHECKING:
    from designsearch.gateway.config import GatewaySettings

#: Format of both cache entries (query vectors and whole answers); part of both keys and of each entry, so an
#: entry written by another release is a miss, never a wrong answer. Bump on any change of what is stored.
CACHE_FORMAT = 2

DOMAIN_AUTO, DOMAIN_PHOTO, DOMAIN_SKETCH = "auto", "photo", "sketch"
#: Catalogue point kinds that are crops of an image (searched by query crops); the third kind,
#: ``whole_image``, is the whole picture (searched by the query's whole-picture vector only).
CROP_KINDS = (KIND_WHEEL, KIND_CLOSEUP)
#: Catalogue vectors a sketch query is searched against, by the policy's ``sketch_search``.
SKETCH_SEARCH = {"photo": (VIEW_PHOTO,), "lines": (VIEW_LINES,), "both": (VIEW_LINES, VIEW_PHOTO)}
#: Regions of a designer query searched against the catalogue's cut-outs too, by ``closeup_cutouts``.
CLOSEUP_CUTOUTS = {"off": (), "crops": (KIND_CLOSEUP,), "crops_whole": (KIND_CLOSEUP, KIND_WHOLE_IMAGE)}


@dataclass(frozen=True)
class QueryPolicy:
    """Every rule that shapes one FindSimilar, fixed for the gateway's lifetime.

    Attributes:
        default_k, max_k: designs returned when a request leaves k at 0; largest accepted k.
        max_crops: most segmenter crops embedded per query image (the whole picture is embedded too).
        whole_picture_max_side: longest side of the whole picture sent to the embedder, px (ingestion uses
            the same constant, :data:`designsearch.gateway.regions.WHOLE_PICTURE_MAX_SIDE`).
        sketch_max_saturation, sketch_min_low_saturation, sketch_min_bright: the ``auto`` domain's
            sketch test (:func:`designsearch.images.is_sketch_like`).
        fusion_bonus: agreement bonus of the fusion, cosine units (:func:`fuse_max_agreement`).
        fusion_depth: a query vector votes for the designs among its first ``fusion_depth``; each vector is
            searched for ``max(k, fusion_depth)`` designs.
        closeup_rotations: rotated copies (0-3: 90, 180, 270 degrees) of each close-up crop and of the whole
            picture of a close-up query (:func:`rotated_copies`).
        sketch_search: catalogue vectors a sketch is searched against (``photo``, ``lines``, ``both``).
        closeup_cutouts: regions of a designer query also searched against the catalogue's cut-outs
            (``off``, ``crops``, ``crops_whole``).
        design_top_m: a designer query scores a design by the mean cosine of its best ``design_top_m``
            points (:func:`designsearch.gateway.fusion.design_scores`), other queries by its best point.
        near_copy_cosine: a design whose best point reaches this cosine scores that cosine alone.
        feedback_weight: Rocchio γ of the caller's disliked designs (:func:`designsearch.gateway.fusion.away_from`).
        feedback_max_points: most catalogue points of the disliked designs read for the move.
        answer_ttl_s: lifetime of a cached whole answer, seconds (any catalogue change invalidates them all).

    Raises:
        ValueError: a value outside its range (checked at construction).
    """

    default_k: int = 6
    max_k: int = 100
    max_crops: int = 4
    whole_picture_max_side: int = WHOLE_PICTURE_MAX_SIDE
    sketch_max_saturation: int = SKETCH_MAX_SATURATION
    sketch_min_low_saturation: float = SKETCH_MIN_LOW_SATURATION
    sketch_min_bright: float = SKETCH_MIN_BRIGHT
    fusion_bonus: float = 0.03
    fusion_depth: int = 6
    closeup_rotations: int = 3
    sketch_search: str = "photo"
    closeup_cutouts: str = "crops"
    design_top_m: int = 5
    near_copy_cosine: float = 0.9
    feedback_weight: float = 0.25
    feedback_max_points: int = 2000
    answer_ttl_s: int = 600

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.default_k <= self.max_k, f"default_k {self.default_k} must be in 1..max_k ({self.max_k})"),
            (self.max_crops >= 0, f"max_crops must be >= 0, got {self.max_crops}"),
            (self.fusion_bonus >= 0, f"fusion_bonus must be >= 0, got {self.fusion_bonus}"),
            (self.fusion_depth >= 1, f"fusion_depth must be >= 1, got {self.fusion_depth}"),
            (0 <= self.closeup_rotations <= 3, f"closeup_rotations must be 0-3, got {self.closeup_rotations}"),
            (self.sketch_search in SKETCH_SEARCH,
             f"sketch_search must be one of {sorted(SKETCH_SEARCH)}, got {self.sketch_search!r}"),
            (self.closeup_cutouts in CLOSEUP_CUTOUTS,
             f"closeup_cutouts must be one of {sorted(CLOSEUP_CUTOUTS)}, got {self.closeup_cutouts!r}"),
            (self.design_top_m >= 1, f"design_top_m must be >= 1, got {self.design_top_m}"),
            (self.feedback_weight >= 0, f"feedback_weight must be >= 0, got {self.feedback_weight}"),
            (self.answer_ttl_s >= 0, f"answer_ttl_s must be >= 0, got {self.answer_ttl_s}"),
            (self.feedback_max_points >= 1, f"feedback_max_points must be >= 1, got {self.feedback_max_points}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> QueryPolicy:
        """The policy of a gateway's settings (fields of the same name; ``query_closeup_rotations`` for
        ``closeup_rotations``); fields the settings do not expose keep the defaults above."""
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(cls) if hasattr(settings, f.name)}
        values["closeup_rotations"] = settings.query_closeup_rotations
        return cls(**values)

    def fingerprint(self) -> str:
        """sha256 hex of :data:`CACHE_FORMAT` and every field: changes whenever any rule changes (computed once
        per policy: it is frozen)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            material = json.dumps([CACHE_FORMAT, dataclasses.asdict(self)], sort_keys=True)
            cached = hashlib.sha256(material.encode()).hexdigest()
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    def replace(self, **changes: Any) -> QueryPolicy:
        """A copy with ``changes`` (validated like a new policy)."""
        return dataclasses.replace(self, **changes)


#: The defaults, for code that needs one value (settings defaults read them from here).
DEFAULT_POLICY = QueryPolicy()


@dataclass(frozen=True)
class Search:
    """One search of the plan: query-vector ``row`` (of region ``region``) against catalogue vector ``view``."""

    row: int
    region: int
    view: str
    limit: int
    filter: SearchFilter


@dataclass(frozen=True)
class SearchPlan:
    """What one query searches: its :class:`Search` list (in the order sent), the points kept per design
    (``top_m``), the number of regions and which of them are searched at all (the fusion's ``n``)."""

    searches: tuple[Search, ...]
    top_m: int
    n_regions: int
    limit: int

    @property
    def searched_regions(self) -> list[int]:
        """Regions with at least one search, ascending."""
        return sorted({s.region for s in self.searches})

    def describe(self) -> dict:
        """A JSON-able summary (logged at debug level, so a result can be explained)."""
        return {"top_m": self.top_m, "limit": self.limit, "regions": self.n_regions,
                "searched_regions": self.searched_regions,
                "searches": [[s.row, s.region, s.view] for s in self.searches]}


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


def search_views(policy: QueryPolicy, domain: str, collection_vectors: frozenset[str] | None = None) -> list[str]:
    """The catalogue vectors a query of ``domain`` is searched against: a photo its ``photo`` vectors; a
    sketch per ``policy.sketch_search``: ``photo`` (default: the embedder puts a drawing near the photos of
    its design; on ``benchmarks/designer_queries.py`` line drawings find their design in the top 6 for 57 %
    against photos, 44 % against the catalogue's line drawings, 48 % against both), ``lines`` (the
    reference system's rule) or ``both``. Names the collection lacks (``collection_vectors``, when given) are
    left out; ``photo`` when none is left."""
    if domain != DOMAIN_SKETCH:
        return [VIEW_PHOTO]
    views = [v for v in SKETCH_SEARCH[policy.sketch_search] if collection_vectors is None or v in collection_vectors]
    return views or [VIEW_PHOTO]


def designer_query(domain: str, regions: Sequence[Region]) -> bool:
    """A picture as designers draw them: one the segmenter calls a close-up, or a sketch. Its crops are also
    compared with the catalogue's cut-outs (:func:`row_views`) and it scores designs by their best points
    (``design_top_m``); car photos are compared as before."""
    return domain == DOMAIN_SKETCH or any(r.kind == KIND_CLOSEUP for r in regions)


def row_views(policy: QueryPolicy, domain: str, regions: Sequence[Region],
              collection_vectors: frozenset[str]) -> list[list[str]]:
    """The catalogue vectors each region is searched against: :func:`search_views`, plus ``cutout`` (each
    catalogue wheel alone on white), when the collection has that vector, for the regions
    ``policy.closeup_cutouts`` names of a :func:`designer_query` (a sketch's wheel crops count as close-up
    crops). A close-up, a rendering or a drawing shows one wheel on a plain background, as the catalogue's
    wheels on cars never do; car photos are compared as before."""
    base = search_views(policy, domain, collection_vectors)
    kinds = CLOSEUP_CUTOUTS[policy.closeup_cutouts]
    if VIEW_CUTOUT not in collection_vectors or not designer_query(domain, regions):
        kinds = ()
    elif domain == DOMAIN_SKETCH and KIND_CLOSEUP in kinds:
        kinds = (*kinds, KIND_WHEEL)
    return [[*base, VIEW_CUTOUT] if r.kind in kinds else list(base) for r in regions]


def rotated_copies(policy: QueryPolicy, regions: Sequence[Region]) -> list[int]:
    """The embedding plan: rotated copies to embed per region — ``policy.closeup_rotations`` for the
    close-up crops and the whole picture of a query the segmenter calls a close-up (one wheel filling the
    frame, whose spokes and light may be turned any way, unlike the catalogue's wheels photographed on
    cars), 0 for every region of other queries (a wheel on a car stands upright)."""
    if not policy.closeup_rotations or not any(r.kind == KIND_CLOSEUP for r in regions):
        return [0] * len(regions)
    return [policy.closeup_rotations if r.kind in (KIND_CLOSEUP, KIND_WHOLE_IMAGE) else 0 for r in regions]


def search_plan(policy: QueryPolicy, domain: str, regions: Sequence[Region], row_regions: Sequence[int],
                flt: SearchFilter, k: int, collection_vectors: frozenset[str]) -> SearchPlan:
    """Which rows are searched against which catalogue vectors, with which limit and filter.

    A crop row is searched with :func:`crop_filter` (skipped when the caller's kinds admit no crop kind),
    the whole picture with ``flt`` itself; each row against :func:`row_views` of its region; each search
    returns ``max(k, fusion_depth)`` designs, with ``design_top_m`` points each for a designer query.

    Args:
        policy: the rules.
        domain: ``photo`` or ``sketch`` (the domain searched).
        regions: the query's regions (crops, then the whole picture).
        row_regions: region index of every query-vector row (regions, then rotated copies).
        flt: the caller's filter (with its disliked designs excluded already).
        k: designs to return, >= 1.
        collection_vectors: named vectors of the collection searched.
    """
    crops_flt = crop_filter(flt)
    views = row_views(policy, domain, regions, collection_vectors)
    limit = max(k, policy.fusion_depth)
    top_m = policy.design_top_m if designer_query(domain, regions) else 1
    searches = []
    for row, region in enumerate(row_regions):
        f = flt if regions[region].kind == KIND_WHOLE_IMAGE else crops_flt
        if f is None:
            continue
        searches.extend(Search(row, region, view, limit, f) for view in views[region])
    return SearchPlan(tuple(searches), top_m, len(regions), limit)


def rank(policy: QueryPolicy, plan: SearchPlan, found: Sequence[Sequence[Hit]]) -> tuple[list[FusedMatch], dict[str, float]]:
    """The ranking step: each region's hit lists (its views, its rotated copies) merged per design
    (:func:`design_scores` with the plan's ``top_m``), then the regions fused (:func:`fuse_max_agreement`);
    only searched regions count in the fusion's ``n``.

    Args:
        policy: the rules (fusion bonus and depth, near-copy cosine).
        plan: the plan ``found`` answers.
        found: one hit list per ``plan.searches`` entry, in order.

    Returns:
        The fused designs, best first (``query_index`` = the region index), and each design's best plain
        cosine over every search.

    Raises:
        ValueError: ``found`` and ``plan.searches`` differ in length.
    """
    if len(found) != len(plan.searches):
        raise ValueError(f"{len(found)} hit lists for {len(plan.searches)} searches")
    regions = plan.searched_regions
    lists: dict[int, list[Sequence[Hit]]] = {r: [] for r in regions}
    best_cosine: dict[str, float] = {}
    for search, hits in zip(plan.searches, found):
        lists[search.region].append(hits)
        for h in hits:
            d = h.payload["design_id"]
            best_cosine[d] = max(best_cosine.get(d, -1.0), h.score)
    per_region = [design_scores(lists[r], plan.top_m, policy.near_copy_cosine) for r in regions]
    fused = fuse_max_agreement(per_region, policy.fusion_bonus, policy.fusion_depth)
    return [dataclasses.replace(m, query_index=regions[m.query_index]) for m in fused], best_cosine
