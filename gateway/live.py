"""What is live now: the collection the alias names, the embedder version it needs, the segmenter version.

The gateway follows the alias ``<prefix>`` (a model upgrade re-points it, :mod:`designsearch.gateway.ingest`)
and the segmenter's model version (``GetSegmenterInfo``), re-reading both at most every
``refresh_s`` seconds; query-cache keys are built from these versions, so a new segmenter or
embedder never gets answers cached for the old one.
"""

from __future__ import annotations

import asyncio
import time

from designsearch.domain import VIEW_CUTOUT, VIEW_LINES, VIEW_PHOTO
from designsearch.errors import BackendUnavailable
from designsearch.logs import get_logger
from designsearch.gateway.ports import Backends

log = get_logger("gateway")


class LiveIndex:
    """The live collection and model versions, as last resolved.

    Args:
        backends: the gateway's backends.
        collection_prefix: collections are ``<prefix>_<embedder version hex>``; the alias is ``<prefix>``.
        refresh_s: how often the alias and the segmenter version are re-read, seconds.
        lines_view: collections this gateway creates hold a ``lines`` vector per point (only searched
            with ``sketch_search`` ``lines`` or ``both``; one more embedding per catalogue region).
    """

    def __init__(self, backends: Backends, collection_prefix: str = "designs", refresh_s: float = 1.0,
                 lines_view: bool = False) -> None:
        self.backends = backends
        self.lines_view = lines_view
        self.collection_prefix = collection_prefix
        self.refresh_s = refresh_s
        self.embedder_version = ""
        self.segmenter_version = ""
        self.dims: dict[str, int] = {}
        self._checked = 0.0
        self._vectors: dict[str, frozenset[str]] = {}  # collection → its vector names (fixed at creation)

    def collection_for(self, version: str) -> str:
        """Collection of an embedder version: ``<prefix>_<16 hex>``."""
        return f"{self.collection_prefix}_{version.removeprefix('sha256:')}"

    def version_of(self, collection: str) -> str:
        """Inverse of :meth:`collection_for`."""
        return "sha256:" + collection.removeprefix(f"{self.collection_prefix}_")

    @property
    def collection(self) -> str:
        """The live collection."""
        return self.collection_for(self.embedder_version)

    async def start(self) -> None:
        """Learn the embedders' versions, make sure the first one's collection exists, point the
        alias at it if the alias is unset, then resolve what is live.

        Raises:
            BackendUnavailable: a backend does not answer, or the alias names a collection whose
                embedder is not configured.
        """
        infos = await self.backends.model_infos()
        self.dims = dict(infos)
        version, dim = infos[0]
        collection = self.collection_for(version)
        await self.backends.create_collection(collection, self.new_collection_vectors(dim))
        if await self.backends.resolve_alias(self.collection_prefix) is None:
            await self.backends.set_alias(self.collection_prefix, collection)
        self.segmenter_version = await self.backends.segmenter_version()
        await self.refresh(force=True)
        log.info("gateway_ready", collection=self.collection, embedder=self.embedder_version,
                 segmenter=self.segmenter_version)

    def new_collection_vectors(self, dim: int) -> dict[str, int]:
        """Named vectors ``{name: dim}`` of the collections this gateway creates: ``photo`` for every point,
        ``cutout`` for crop points (:data:`designsearch.domain.VIEW_CUTOUT`) and, with :attr:`lines_view`,
        ``lines`` (the Canny line drawing of every point)."""
        return {VIEW_PHOTO: dim, **({VIEW_LINES: dim} if self.lines_view else {}), VIEW_CUTOUT: dim}

    async def vectors_of(self, collection: str) -> frozenset[str]:
        """The named vectors of ``collection`` (read once, then cached: a collection's vectors are
        fixed when it is created). Ingestion computes, and queries search, only the vectors a collection
        has: collections created before the ``cutout`` vector existed lack it, and ``lines`` is there only
        when the collection was created with it (:attr:`lines_view`).

        Raises:
            BackendUnavailable: the search service does not answer.
            NotFound: no such collection.
        """
        names = self._vectors.get(collection)
        if names is None:
            names = self._vectors[collection] = frozenset(await self.backends.collection_vectors(collection))
        return names

    def forget(self, collection: str) -> None:
        """Drop the cached vector names of a deleted collection."""
        self._vectors.pop(collection, None)

    async def learn_embedders(self) -> None:
        """Re-read the configured embedders' versions and dimensions."""
        self.dims.update(dict(await self.backends.model_infos()))

    async def refresh(self, force: bool = False) -> None:
        """Re-resolve the alias and the segmenter version at most every ``refresh_s`` seconds.

        A segmenter that does not answer keeps its last known version (queries then fail at
        segmentation, or are answered from the cache entries of that version).

        Raises:
            BackendUnavailable: the live collection needs an embedder version that is not configured,
                or the search service does not answer.
        """
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_s:
            return
        self._checked = now
        live, segmenter = await asyncio.gather(self.backends.resolve_alias(self.collection_prefix),
                                               self.backends.segmenter_version(), return_exceptions=True)
        if isinstance(live, BaseException):
            raise live
        if isinstance(segmenter, BackendUnavailable):
            log.warning("segmenter_version_unknown", error=segmenter.message)
        elif isinstance(segmenter, BaseException):
            raise segmenter
        elif segmenter != self.segmenter_version:
            if self.segmenter_version:
                log.info("segmenter_switched", segmenter=segmenter, previous=self.segmenter_version)
            self.segmenter_version = segmenter
        version = self.version_of(live) if live else self.embedder_version
        if version not in self.dims:
            raise BackendUnavailable(f"live collection {live} needs embedder {version}; configured: {sorted(self.dims)}",
                                     retry_after_s=5)
        if version != self.embedder_version:
            log.info("live_collection_switched", collection=live, embedder=version)
        self.embedder_version = version
