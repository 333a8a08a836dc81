"""Identify (no grpc): brand / model / year of a query by a similarity-weighted vote of its nearest
catalogue designs (k-nearest-neighbour classification with similarity weights; e.g. Wu et al.,
"Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018, weighted kNN)."""

from __future__ import annotations

from dataclasses import dataclass, field

from designsearch.domain import SearchFilter
from designsearch.errors import FailedPrecondition, InvalidArgument
from designsearch.gateway.query import DOMAIN_AUTO, NOTHING_TO_COMPARE, QueryService

#: Candidates returned.
TOP = 5


@dataclass
class Candidate:
    """One label with its vote share in [0, 1], best fused score and voting designs (best first)."""

    brand: str
    model: str
    year: int
    vote_share: float
    best_score: float
    design_ids: list[str] = field(default_factory=list)


@dataclass
class IdentifyResult:
    """Up to :data:`TOP` candidates by descending vote share, the model version and the query id."""

    candidates: list[Candidate]
    embedder_version: str
    query_id: str


async def identify(query: QueryService, image: bytes, flt: SearchFilter, domain: str = DOMAIN_AUTO,
                   neighbours: int = 0, default_neighbours: int = 20) -> IdentifyResult:
    """Vote of the ``neighbours`` most similar designs (FindSimilar's ranking, query cache included).

    Each design votes for its (brand, model, year) with weight ``max(score, 0)`` (its fused
    similarity); a label's share is its weight over the total.

    Raises:
        InvalidArgument: neighbours outside 0..max_k, or a bad image/filter.
        FailedPrecondition: no catalogue design matches ``flt`` (:data:`designsearch.gateway.query.NOTHING_TO_COMPARE`).
        BackendUnavailable: a backend is down.
    """
    if not 0 <= neighbours <= query.policy.max_k:
        raise InvalidArgument(f"neighbours {neighbours} outside 1..{query.policy.max_k} (0 = {default_neighbours})",
                              field="neighbours")
    result = await query.find_similar(image, neighbours or default_neighbours, flt, domain, use_feedback=False)
    if not result.matches:
        raise FailedPrecondition(NOTHING_TO_COMPARE, reason="NO_MATCHING_DESIGN")
    labels: dict[tuple[str, str, int], Candidate] = {}
    for m in result.matches:
        c = labels.setdefault((m.brand, m.model, m.year), Candidate(m.brand, m.model, m.year, 0.0, m.score))
        c.vote_share += max(m.score, 0.0)
        c.best_score = max(c.best_score, m.score)
        c.design_ids.append(m.design_id)
    total = sum(c.vote_share for c in labels.values())
    for c in labels.values():
        c.vote_share = c.vote_share / total if total > 0 else 0.0
    ranked = sorted(labels.values(), key=lambda c: (-c.vote_share, -c.best_score, c.brand, c.model, c.year))
    return IdentifyResult(ranked[:TOP], result.embedder_version, result.query_id)
