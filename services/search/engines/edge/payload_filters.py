"""Payload filters of the embedded engine: :class:`~designsearch.domain.SearchFilter` → ``qdrant_edge.Filter``."""

from __future__ import annotations

import qdrant_edge as qe

from designsearch.domain import SearchFilter


def to_edge_filter(flt: SearchFilter | None) -> qe.Filter | None:
    """Translate a :class:`SearchFilter` into a ``qdrant_edge.Filter`` (None if empty)."""
    if flt is None or flt.is_empty():
        return None
    must = []
    if flt.brands:
        must.append(qe.FieldCondition(key="brand", match=qe.MatchAny(any=list(flt.brands))))
    if flt.kinds:
        must.append(qe.FieldCondition(key="kind", match=qe.MatchAny(any=list(flt.kinds))))
    if flt.design_ids:
        must.append(qe.FieldCondition(key="design_id", match=qe.MatchAny(any=list(flt.design_ids))))
    if flt.year_min is not None or flt.year_max is not None:
        rng = qe.RangeFloat(
            gte=None if flt.year_min is None else float(flt.year_min),
            lte=None if flt.year_max is None else float(flt.year_max),
        )
        must.append(qe.FieldCondition(key="year", range=rng))
    must_not = []
    if flt.exclude_design_ids:
        must_not.append(qe.FieldCondition(key="design_id", match=qe.MatchAny(any=list(flt.exclude_design_ids))))
    return qe.Filter(must=must or None, must_not=must_not or None)
