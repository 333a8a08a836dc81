"""The interfaces the gateway core needs from its backends, and the types that cross them.

The core (query, ingestion, live index) depends on these only; :mod:`designsearch.gateway.backends` implements
them over gRPC, and unit tests implement them in memory. No grpc, no protobuf, no service module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from designsearch.domain import Box, Hit, Point, SearchFilter
from designsearch.images import decode_image


@dataclass
class Region:
    """A region of an image (glossary: :mod:`designsearch.domain`) — a segmenter crop or the whole picture: box
    ``(x1, y1, x2, y2)`` px, kind (``wheel``, ``closeup`` or ``whole_image``), score, the region's picture (an
    encoded image, or ``uint8`` ``(H, W, 3)`` RGB pixels as the segmenter sends its crops to the gateway), mask
    PNG."""

    box: Box
    kind: str
    score: float
    image: bytes | np.ndarray
    mask: bytes = b""

    def pixels(self) -> np.ndarray:
        """The region's picture as ``uint8`` ``(H, W, 3)`` RGB (decoded when it is an encoded image).

        Raises:
            InvalidImage: an encoded image that does not decode.
        """
        return self.image if isinstance(self.image, np.ndarray) else decode_image(self.image)


@dataclass
class Segmentation:
    """Segmenter answer: crops (maybe empty), detector version, reason when empty, image size px."""

    crops: list[Region]
    version: str
    reason: str
    width: int
    height: int


class Backends(Protocol):
    """Segmenter, embedder(s) and vector search, as the gateway core uses them.

    Every method raises :class:`designsearch.errors.BackendUnavailable` when the backend does not
    answer in time, and :class:`designsearch.errors.InvalidArgument` /
    :class:`designsearch.errors.InvalidImage` for a request the backend rejects.
    """

    async def segment(self, image: bytes, max_crops: int) -> Segmentation:
        """Crops of an encoded image, best first (at most ``max_crops``); each crop's picture as pixels or
        an encoded image (:class:`Region`)."""
        ...

    async def segmenter_version(self) -> str:
        """The version string :meth:`segment` answers with now."""
        ...

    async def embed(self, images: Sequence[bytes | np.ndarray], views: Sequence[str], version: str,
                    mirror_average: Sequence[bool] = (),
                    rotated_copies: Sequence[int] = ()) -> tuple[list[dict[str, np.ndarray]], str]:
        """Unit float32 vectors ``(D,)`` per image (encoded, or ``uint8`` ``(H, W, 3)`` RGB pixels) and view
        from the embedder serving ``version``, and the version it answered with. ``mirror_average`` (empty,
        or one flag per image): the flagged images are embedded as the normalised mean of their own and their
        mirror image's vector. ``rotated_copies`` (empty, or 0-3 per image): that many copies of the image
        turned by 90, 180, 270 degrees are embedded too; their vectors follow the images', image by image,
        then by angle."""
        ...

    async def model_infos(self) -> list[tuple[str, int]]:
        """``(version, dimension)`` of each configured embedder, in configuration order."""
        ...

    async def resolve_alias(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None."""
        ...

    async def create_collection(self, name: str, vectors: dict[str, int]) -> bool:
        """Create a collection with named vectors ``{view: dim}`` if missing; False if it existed."""
        ...

    async def collection_vectors(self, collection: str) -> dict[str, int]:
        """Named vectors ``{name: dim}`` of a collection or alias (NotFound when there is none)."""
        ...

    async def delete_collection(self, name: str) -> None:
        """Drop a collection."""
        ...

    async def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection``."""
        ...

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Store points (insert or replace by id)."""
        ...

    async def search_designs_many(self, collection: str, queries: Sequence[tuple[np.ndarray, str, int, SearchFilter]],
                                  per_design: int = 1) -> list[list[Hit]]:
        """For each ``(vector, using, limit, flt)`` (one round trip), in order: the best hit of each of the
        ``limit`` designs most similar to ``vector`` in view ``using`` among the points matching ``flt``; with
        ``per_design`` > 1 each design's best ``per_design`` hits (designs ranked by their best hit)."""
        ...

    async def delete_points(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by id (unknown ids ignored)."""
        ...

    async def get_points(self, collection: str, ids: Sequence[str]) -> list[Point]:
        """Points by id with their vectors (unknown ids skipped)."""
        ...

    async def group_centroid(self, collection: str, using: str, flt: SearchFilter) -> tuple[np.ndarray, int, float, float]:
        """Mean unit embedding ``(D,)`` of the points matching ``flt``, their count, and the mean and
        std of their cosines to it. Raises NotFound for an empty group."""
        ...

    async def count(self, collection: str) -> int:
        """Points in a collection."""
        ...

    async def check(self) -> list[str]:
        """Names of the backends that do not answer a cheap call now (empty = all reachable)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
