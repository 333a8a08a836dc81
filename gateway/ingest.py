"""Catalogue ingestion and model upgrades (no grpc).

Every catalogue image is indexed as its crops plus one whole-picture point; idempotent by image
sha256 and embedder version. A reindex builds the collection of a new embedder beside the live
one, then re-points the alias (:class:`designsearch.gateway.live.LiveIndex` follows it).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from designsearch.domain import KIND_WHOLE_IMAGE, VIEW_CUTOUT, VIEW_LINES, VIEW_PHOTO, Point, check_text
from designsearch.errors import AlreadyExists, BackendUnavailable, InvalidArgument
from designsearch.images import decode_image, thumbnail
from designsearch.gateway.catalogue import Catalogue
from designsearch.gateway.live import LiveIndex
from designsearch.gateway.ports import Backends
from designsearch.gateway.regions import point_id, query_regions, region_cutout
from designsearch.gateway.streams import bounded_map



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
    move: bool = False


#: :class:`IndexOutcome` statuses.
OUTCOMES = ("added", "duplicate", "moved", "failed")


@dataclass
class IndexOutcome:
    """Per-item ingestion result: status ``added`` | ``duplicate`` | ``moved`` | ``failed``;
    ``crops`` is the number of points indexed (the crops plus the whole picture); ``failure`` is
    the error of a failed item (its ``message`` is ``error``)."""

    design_id: str
    image_id: str
    status: str
    crops: int = 0
    error: str = ""
    failure: InvalidArgument | AlreadyExists | BackendUnavailable | None = None


def check_attributes(attributes: dict) -> dict:
    """Attribute keys ≤ 128 and values ≤ 1024 characters, without control characters (values may hold
    tab and line breaks).

    Raises:
        InvalidArgument: a key or value too long, or with a control character.
    """
    for k, v in attributes.items():
        if len(k) > 128 or len(v) > 1024:
            raise InvalidArgument("attribute keys ≤ 128 and values ≤ 1024 characters", field="design.attributes")
        check_text(k, "design.attributes")
        check_text(v, "design.attributes", free_text=True)
    return attributes


def check_item(item: IndexItem) -> None:
    """Validate a catalogue record.

    Raises:
        InvalidArgument: missing or too long design id (128) / brand (128) / model (256) / source
            (1024) / attributes, a control character in any of them (NUL included; tab and line breaks
            are allowed in attribute values), year outside 1886..2100, empty image (checked before the
            database sees them, so SQLite and PostgreSQL catalogues accept the same records).
    """
    if not item.design_id or len(item.design_id) > 128:
        raise InvalidArgument("design.design_id must be 1-128 characters", field="design.design_id")
    check_text(item.design_id, "design.design_id")
    if not item.brand or len(item.brand) > 128:
        raise InvalidArgument("design.brand must be 1-128 characters", field="design.brand")
    check_text(item.brand, "design.brand")
    if len(item.model) > 256:
        raise InvalidArgument("design.model is longer than 256 characters", field="design.model")
    check_text(item.model, "design.model")
    if len(item.source) > 1024:
        raise InvalidArgument("image.source is longer than 1024 characters", field="image.source")
    check_text(item.source, "image.source")
    check_attributes(item.attributes)
    if not 1886 <= item.year <= 2100:
        raise InvalidArgument(f"design.year {item.year} outside 1886..2100", field="design.year")
    if not item.image:
        raise InvalidArgument("image is empty (0 bytes)", field="image.content")


class Ingestor:
    """Indexes catalogue images into the live collection or a new model's collection.

    Args:
        backends: segmenter, embedder and search.
        live: the live collection and model versions.
        catalogue: design records.
        max_crops: crops indexed per image (the whole picture is indexed as well).
        concurrency: images processed at once.
        thumbnail_px: stored thumbnail size.
        mirror_whole_picture: index the whole picture's vectors as the normalised mean of the
            picture's and its mirror image's (catalogue-side flip augmentation; query vectors are
            not mirrored, so a catalogue indexed either way answers the same queries).
        cutouts: give each crop point a ``cutout`` vector, the embedding of its object alone on white
            (:func:`designsearch.gateway.regions.region_cutout`), when the collection has that vector
            (what close-up, rendering and sketch queries are also compared with).
        on_change: coroutine function awaited after each image added or moved (the gateway bumps the
            catalogue version of its answer cache).
    """

    def __init__(self, backends: Backends, live: LiveIndex, catalogue: Catalogue, *, max_crops: int = 4,
                 concurrency: int = 4, thumbnail_px: int = 128, mirror_whole_picture: bool = True,
                 cutouts: bool = True, on_change=None) -> None:
        self.backends = backends
        self.live = live
        self.catalogue = catalogue
        self.max_crops = max_crops
        self.concurrency = concurrency
        self.thumbnail_px = thumbnail_px
        self.mirror_whole_picture = mirror_whole_picture
        self.cutouts = cutouts
        self.on_change = on_change  # awaited after every catalogue change (invalidates cached answers)
        # (image_id, version) → [lock, items holding or waiting for it]: same bytes one at a time
        self._in_flight: dict[tuple[str, str], list] = {}

    async def index_item(self, item: IndexItem, version: str | None = None) -> IndexOutcome:
        """Ingest one catalogue image; never raises for a bad item (the outcome says ``failed``).

        The image becomes one point per region of :func:`designsearch.gateway.regions.query_regions` (its crops,
        then the whole picture; only the whole picture when the segmenter finds nothing), each with
        a ``photo`` vector and, when the collection has that vector, a ``lines`` one (the whole
        picture's flip-averaged when ``mirror_whole_picture``) and, for crops with a mask when
        ``cutouts`` and the collection has the vector, a ``cutout`` vector (the crop's object on
        white, embedded as a photo), payload ``kind`` = the region's kind and ``box`` = its box, ids
        :func:`point_id` ``(image_id, region index, version)``, and one catalogue row with a
        thumbnail per point. An image already indexed with ``version`` is a ``duplicate``, unless
        it was indexed before whole-picture points existed (its last point is not a whole picture):
        then it is indexed again (same ids, so nothing is duplicated) to add the whole picture.

        The same bytes already catalogued under this design are a ``duplicate``; under another
        design they fail with :class:`AlreadyExists` naming it, unless ``item.move``: then they are
        indexed again under this design (same point ids: the payloads and catalogue rows change)
        and the outcome is ``moved``. Items with the same bytes are processed one at a time, so an
        image sent twice in one stream is ``added`` once and a ``duplicate`` once.

        Args:
            item: the catalogue record and image.
            version: embedder version (and so collection) to index into; None = the live one.

        A catalogue write that stays busy fails this item alone (``failed``, UNAVAILABLE in its
        status), after its points are removed again (compensation), so the stream goes on and the
        index and the catalogue agree.

        Raises:
            BackendUnavailable: a backend (segmenter, embedder, search) is down (the stream should
                stop; nothing half-written is recorded as indexed).
        """
        image_id = hashlib.sha256(item.image).hexdigest() if item.image else ""
        if version is None:
            await self.live.refresh()
            version = self.live.embedder_version
        key = (image_id, version)
        entry = self._in_flight.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                return await self._index_item(item, image_id, version)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._in_flight[key]

    async def _index_item(self, item: IndexItem, image_id: str, version: str) -> IndexOutcome:
        status, current = "added", None
        try:
            check_item(item)
            if await asyncio.to_thread(self._fully_indexed, image_id, version):
                current = await asyncio.to_thread(self.catalogue.image_design, image_id, version)
                if current == item.design_id:
                    return IndexOutcome(item.design_id, image_id, "duplicate")
                if not item.move:
                    raise AlreadyExists(f"image {image_id[:12]}… is already catalogued under design {current!r}; "
                                        "send it with move=true to move it to this design", field="design.design_id")
                status = "moved"
            rgb = await asyncio.to_thread(decode_image, item.image)
            seg = await self.backends.segment(item.image, self.max_crops)
            regions = query_regions(seg.crops, item.image, rgb)
            mirror = [self.mirror_whole_picture and r.kind == KIND_WHOLE_IMAGE for r in regions]
            collection = self.live.collection_for(version)
            vectors = await self.live.vectors_of(collection)
            cutouts: list[np.ndarray | None] = [None] * len(regions)
            if self.cutouts and VIEW_CUTOUT in vectors:
                cutouts = await asyncio.to_thread(lambda: [region_cutout(rgb, r) for r in regions])
            cut = [i for i, c in enumerate(cutouts) if c is not None]
            views = [VIEW_PHOTO, VIEW_LINES] if VIEW_LINES in vectors else [VIEW_PHOTO]
            calls = [self.backends.embed([r.image for r in regions], views, version, mirror)]
            if cut:  # the cut-outs in a call of their own (photo view only); the embedder batches both
                calls.append(self.backends.embed([cutouts[i] for i in cut], [VIEW_PHOTO], version))
            answers = await asyncio.gather(*calls)
            embedded = answers[0][0]
            for i, vecs in zip(cut, answers[1][0] if cut else []):
                embedded[i][VIEW_CUTOUT] = vecs[VIEW_PHOTO]
            for _, answered in answers:
                if answered != version:
                    raise BackendUnavailable(f"embedder now serves {answered}, expected {version}")
            points, crop_rows = [], []
            for i, (region, vecs) in enumerate(zip(regions, embedded)):
                pid = point_id(image_id, i, version)
                points.append(Point(pid, vecs, {
                    "design_id": item.design_id, "brand": item.brand, "model": item.model, "year": item.year,
                    "kind": region.kind, "model_version": version, "image_id": image_id, "box": list(region.box)}))
                region_rgb = rgb if region.kind == KIND_WHOLE_IMAGE else await asyncio.to_thread(region.pixels)
                crop_rows.append({"point_id": pid, "box": region.box, "kind": region.kind,
                                  "thumbnail": thumbnail(region_rgb, self.thumbnail_px)})
            await self.backends.upsert(collection, points)
            design = {"design_id": item.design_id, "brand": item.brand, "model": item.model, "year": item.year,
                      "attributes": item.attributes}
            try:
                await asyncio.to_thread(self.catalogue.add_image, design, image_id, version, item.source,
                                        (rgb.shape[1], rgb.shape[0]), crop_rows)
            except BackendUnavailable as exc:
                # compensation, so index and catalogue never disagree: new points go again; a moved
                # image's points get back the labels its catalogue rows still hold
                if status == "added":
                    await self.backends.delete_points(collection, [p.id for p in points])
                else:
                    old = await asyncio.to_thread(self.catalogue.get_design, current)
                    if old is not None:
                        for p in points:
                            p.payload.update({k: old[k] for k in ("design_id", "brand", "model", "year")})
                        await self.backends.upsert(collection, points)
                return IndexOutcome(item.design_id, image_id, "failed", error=exc.message, failure=exc)
            if self.on_change is not None:
                await self.on_change()
            return IndexOutcome(item.design_id, image_id, status, len(points))
        except (InvalidArgument, AlreadyExists) as exc:
            return IndexOutcome(item.design_id, image_id, "failed", error=exc.message, failure=exc)

    async def index_stream(self, items: Iterable[IndexItem] | AsyncIterable[IndexItem], version: str | None = None,
                           on_item: Callable[[IndexOutcome], None] | None = None) -> list[IndexOutcome]:
        """:meth:`index_item` over a stream, ``concurrency`` at a time with bounded read-ahead.

        Returns:
            One outcome per item, in stream order.

        Raises:
            BackendUnavailable: a backend is down (unfinished items are cancelled).
        """
        async def one(_: int, item: IndexItem) -> IndexOutcome:
            outcome = await self.index_item(item, version)
            if on_item:
                on_item(outcome)
            return outcome

        return await bounded_map(items, one, concurrency=self.concurrency)

    def _fully_indexed(self, image_id: str, version: str) -> bool:
        """True when the image has a catalogue row for ``version`` whose last point is its whole
        picture (blocking: run in a thread)."""
        n = self.catalogue.indexed_points(image_id, version)
        if n is None:
            return False
        return n > 0 and self.catalogue.point_kind(point_id(image_id, n - 1, version)) == KIND_WHOLE_IMAGE

    async def reindex(self, items: Iterable[IndexItem], version: str, on_item=None, drop_old: bool = False,
                      drain_s: float | None = None) -> dict:
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
            ``{"added", "duplicates", "moved", "failed", "collection", "previous"}``.

        Raises:
            BackendUnavailable: a backend is down or no embedder serves ``version``.
        """
        if version not in self.live.dims:
            await self.live.learn_embedders()
        if version not in self.live.dims:
            raise BackendUnavailable(f"no configured embedder serves {version}")
        target = self.live.collection_for(version)
        dim = self.live.dims[version]
        await self.backends.create_collection(target, self.live.new_collection_vectors(dim))
        previous = await self.backends.resolve_alias(self.live.collection_prefix)
        outcomes = await self.index_stream(items, version, on_item)
        counts = {s: sum(o.status == s for o in outcomes) for s in OUTCOMES}
        await self.backends.set_alias(self.live.collection_prefix, target)
        if drop_old and previous and previous != target:
            await asyncio.sleep(self.live.refresh_s * 2 if drain_s is None else drain_s)
            await self.backends.delete_collection(previous)
            self.live.forget(previous)
        return {"added": counts["added"], "duplicates": counts["duplicate"], "moved": counts["moved"],
                "failed": counts["failed"], "collection": target, "previous": previous}
