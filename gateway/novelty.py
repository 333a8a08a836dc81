"""Novelty and typicality of a draft (no grpc).

* Novelty = 1 − the best cosine similarity between the draft and any catalogue design (0 = a copy
  of an existing design, 1 = orthogonal to everything), with those nearest designs.
* Typicality within a group (brands, a year range, a set of designs) = cosine between the draft and the group's mean
  embedding, its "morph" (the car modernity/typicality reference: mean feature per body type and
  year, cosine to it), with the group's own spread (members' cosines: mean, std) and the draft's
  z-score against it, so the number can be read.
"""

from __future__ import annotations

from dataclasses import dataclass

from designsearch.domain import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE, SearchFilter
from designsearch.errors import FailedPrecondition, InvalidArgument, NotFound
from designsearch.gateway.ports import Backends
from designsearch.gateway.plan import search_views
from designsearch.gateway.query import DOMAIN_AUTO, NOTHING_TO_COMPARE, MatchResult, QueryService


@dataclass
class NoveltyResult:
    """``novelty`` = 1 − best cosine, clamped to [0, 2]; the nearest designs; model version and query id."""

    novelty: float
    nearest: list[MatchResult]
    embedder_version: str
    query_id: str


@dataclass
class TypicalityResult:
    """Cosine of the draft to the group mean, the group's size and spread, the draft's z-score, and
    the region kind compared (``crop``: the draft's best crop vs the group's crops; ``whole_image``)."""

    typicality: float
    group_size: int
    group_mean: float
    group_std: float
    z_score: float
    compared: str
    embedder_version: str
    query_id: str


async def novelty(query: QueryService, image: bytes, k: int, flt: SearchFilter, domain: str = DOMAIN_AUTO) -> NoveltyResult:
    """Novelty of a draft against the catalogue (FindSimilar's ranking; ``k`` nearest designs returned).

    Raises:
        InvalidArgument / InvalidImage: bad request.
        FailedPrecondition: no catalogue design matches ``flt`` (:data:`NOTHING_TO_COMPARE`).
        BackendUnavailable: a backend is down.
    """
    result = await query.find_similar(image, k, flt, domain, use_feedback=False)
    if not result.matches:
        raise FailedPrecondition(NOTHING_TO_COMPARE, reason="NO_MATCHING_DESIGN")
    best = max((m.cosine for m in result.matches), default=0.0)
    return NoveltyResult(min(max(1.0 - best, 0.0), 2.0), result.matches, result.embedder_version, result.query_id)


async def typicality(query: QueryService, backends: Backends, image: bytes, group: SearchFilter,
                     domain: str = DOMAIN_AUTO) -> TypicalityResult:
    """Typicality of a draft within ``group`` (brands, a year range and/or a set of design ids;
    ``kinds`` and excluded designs are set here).

    The draft's best crop (the segmenter's first) is compared with the mean of the group's crops;
    a draft without crops, by its whole picture, with the mean of the group's whole pictures. A sketch
    is compared in the first catalogue view FindSimilar searches it in
    (:func:`designsearch.gateway.plan.search_views`: the photo view by default).

    Raises:
        InvalidArgument: an empty group definition, a bad image or filter.
        FailedPrecondition: no catalogue point in the group (:data:`NOTHING_TO_COMPARE`).
        BackendUnavailable: a backend is down.
    """
    if not (group.brands or group.design_ids or group.year_min is not None or group.year_max is not None):
        raise InvalidArgument("a group needs brands, design ids and/or a year range", field="group")
    q = await query.embed_query(image, domain)
    has_crop = q.regions[0].kind != KIND_WHOLE_IMAGE
    kinds = (KIND_WHEEL, KIND_CLOSEUP) if has_crop else (KIND_WHOLE_IMAGE,)
    flt = SearchFilter(group.brands, group.year_min, group.year_max, kinds, (), group.design_ids)
    view = search_views(query.policy, q.domain, await query.live.vectors_of(q.collection))[0]
    try:
        centroid, n, mean, std = await backends.group_centroid(q.collection, view, flt)
    except NotFound:  # the search service's answer for an empty group (or no collection yet)
        n = 0
    if n == 0:
        raise FailedPrecondition(NOTHING_TO_COMPARE, reason="NO_MATCHING_DESIGN")
    t = float(q.vectors[0] @ centroid)
    z = (t - mean) / std if std > 1e-9 else 0.0
    return TypicalityResult(t, n, mean, std, z, "crop" if has_crop else KIND_WHOLE_IMAGE, q.embedder_version, q.query_id)
