"""Catalogue management (no grpc): list, get, update and delete designs, keeping the index in step.

A design's labels live twice: in the catalogue (what results show) and in its points' payloads in
every model's collection (what filters see). An update rewrites both (payloads by re-upserting the
points with their stored vectors); a delete removes both, with the thumbnails (crop rows) and the
feedback naming the design. The query cache holds query vectors only, never designs, so nothing in
it goes stale.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

from designsearch.domain import check_text
from designsearch.errors import InvalidArgument, NotFound
from designsearch.gateway.catalogue import Catalogue
from designsearch.gateway.ingest import check_attributes
from designsearch.gateway.live import LiveIndex
from designsearch.gateway.ports import Backends
from designsearch.gateway.regions import point_id

#: Fields UpdateDesign may change.
UPDATABLE = ("brand", "model", "year", "attributes")
MAX_PAGE = 500
#: Longest page token read, characters (a token names one design id of ≤ 128 characters).
MAX_TOKEN = 1024


def page_token_key(secret: str = "", internal_token: str = "") -> bytes:
    """The key page tokens are signed with: sha256 of ``secret`` (the gateway's ``page_token_secret``);
    else derived from the internal service token (the same on every gateway replica, so a token one
    replica issued is read by the others); else random (one gateway: tokens end with the process)."""
    if secret:
        return hashlib.sha256(secret.encode()).digest()
    if internal_token:
        return hmac.new(internal_token.encode(), b"designsearch.v1.ListDesigns page token", hashlib.sha256).digest()
    return os.urandom(32)


class PageTokens:
    """ListDesigns page tokens the API issued and no one else can make: ``base64url(last design id)``
    ``"." base64url(HMAC-SHA256(key, id)[:16])`` (keyset pagination: the next page starts after that id).

    Args:
        key: signing key (:func:`page_token_key`).
    """

    def __init__(self, key: bytes) -> None:
        self.key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()[:16]

    def issue(self, design_id: str) -> str:
        """The token of the page after ``design_id``."""
        payload = design_id.encode()
        return (base64.urlsafe_b64encode(payload).decode().rstrip("=") + "."
                + base64.urlsafe_b64encode(self._mac(payload)).decode().rstrip("="))

    def read(self, token: str) -> str:
        """The design id a token of :meth:`issue` names ("" for no token: the first page).

        Raises:
            InvalidArgument: anything else (a forged, edited, truncated or over-long token).
        """
        if not token:
            return ""
        try:
            if len(token) > MAX_TOKEN:
                raise ValueError("too long")
            body, mac = token.split(".")
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            if not hmac.compare_digest(base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)), self._mac(payload)):
                raise ValueError("signature")
            return payload.decode()
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("page_token is not one this API returned; start again with an empty token",
                                  field="page_token") from None


def check_design_id(design_id: str, field: str = "design_id") -> str:
    """A design id naming a design: 1-128 characters, no control character.

    Raises:
        InvalidArgument: empty, too long, or with a control character.
    """
    if not design_id or len(design_id) > 128:
        raise InvalidArgument(f"{field} must be 1-128 characters", field=field)
    return check_text(design_id, field)


def check_labels(changes: dict) -> dict:
    """Validate label changes before the database sees them.

    Raises:
        InvalidArgument: an unknown field, an empty or too long brand (128) / model (256), a control
            character in either, a year outside 1886..2100, attributes that are not short strings
            (:func:`designsearch.gateway.ingest.check_attributes`).
    """
    for key in changes:
        if key not in UPDATABLE:
            raise InvalidArgument(f"field {key!r} cannot be updated; one of {list(UPDATABLE)}", field="update_mask")
    if "brand" in changes and not 1 <= len(changes["brand"]) <= 128:
        raise InvalidArgument("design.brand must be 1-128 characters", field="design.brand")
    if "brand" in changes:
        check_text(changes["brand"], "design.brand")
    if "model" in changes and len(changes["model"]) > 256:
        raise InvalidArgument("design.model is longer than 256 characters", field="design.model")
    if "model" in changes:
        check_text(changes["model"], "design.model")
    if "year" in changes and not 1886 <= changes["year"] <= 2100:
        raise InvalidArgument(f"design.year {changes['year']} outside 1886..2100", field="design.year")
    check_attributes(changes.get("attributes", {}))
    return changes


class DesignService:
    """List, get, update and delete catalogue designs.

    Args:
        backends: search (points).
        live: collection naming per model version.
        catalogue: design records.
        on_change: coroutine function awaited after an update or delete.
        page_key: key of the page tokens (:func:`page_token_key`); None = a random one.
    """

    def __init__(self, backends: Backends, live: LiveIndex, catalogue: Catalogue, on_change=None,
                 page_key: bytes | None = None) -> None:
        self.backends = backends
        self.live = live
        self.catalogue = catalogue
        self.on_change = on_change  # awaited after every change (invalidates cached answers)
        self.tokens = PageTokens(page_key or page_token_key())

    async def list(self, brands: tuple[str, ...] = (), year_min: int | None = None, year_max: int | None = None,
                   page_size: int = 0, page_token: str = "") -> tuple[list[dict], str]:
        """A page of designs ordered by id and the token of the next page ("" on the last).

        Raises:
            InvalidArgument: page_size outside 0..500, a page token this API did not return
                (:class:`PageTokens`).
        """
        if not 0 <= page_size <= MAX_PAGE:
            raise InvalidArgument(f"page_size {page_size} outside 1..{MAX_PAGE} (0 = 50)", field="page_size")
        size = page_size or 50
        after = self.tokens.read(page_token)
        rows = await asyncio.to_thread(self.catalogue.list_designs, brands, year_min, year_max, after, size + 1)
        return rows[:size], (self.tokens.issue(rows[size - 1]["design_id"]) if len(rows) > size else "")

    async def get(self, design_id: str, field: str = "design_id") -> dict:
        """One design with its image count.

        Raises:
            InvalidArgument: an empty or malformed id (:func:`check_design_id`). NotFound: unknown design.
        """
        check_design_id(design_id, field)
        row = await asyncio.to_thread(self.catalogue.get_design, design_id)
        if row is None:
            raise NotFound(f"unknown design {design_id!r}", field="design_id")
        return row

    async def _points(self, design_id: str) -> dict[str, list[str]]:
        """Collection → point ids of a design, for every model version it is indexed with."""
        by_collection: dict[str, list[str]] = {}
        for image_id, version, n in await asyncio.to_thread(self.catalogue.design_points, [design_id]):
            by_collection.setdefault(self.live.collection_for(version), []).extend(
                point_id(image_id, i, version) for i in range(n))
        return by_collection

    async def update(self, design_id: str, changes: dict) -> tuple[dict, int]:
        """Change labels in the catalogue and in the payloads of the design's points.

        Raises:
            InvalidArgument: an empty or malformed id, a bad change (:func:`check_labels`). NotFound: unknown design.
        """
        check_design_id(design_id, "design.design_id")
        check_labels(changes)
        await self.get(design_id, "design.design_id")
        updated = 0
        payload = {k: changes[k] for k in ("brand", "model", "year") if k in changes}
        if payload:
            for collection, ids in (await self._points(design_id)).items():
                try:
                    points = await self.backends.get_points(collection, ids)
                except NotFound:  # a collection dropped after a model upgrade
                    continue
                for p in points:
                    p.payload.update(payload)
                if points:
                    await self.backends.upsert(collection, points)
                updated += len(points)
        row = await asyncio.to_thread(self.catalogue.update_design, design_id, changes)
        if self.on_change is not None:
            await self.on_change()
        if row is None:
            raise NotFound(f"unknown design {design_id!r}", field="design_id")
        return row, updated

    async def delete(self, design_id: str) -> tuple[int, int]:
        """Remove a design's points (every collection), then its rows; returns ``(images, points)``.

        Raises:
            InvalidArgument: an empty or malformed id. NotFound: unknown design.
        """
        await self.get(design_id)
        deleted = 0
        for collection, ids in (await self._points(design_id)).items():
            try:
                await self.backends.delete_points(collection, ids)
            except NotFound:
                continue
            deleted += len(ids)
        images = await asyncio.to_thread(self.catalogue.delete_design, design_id)
        if self.on_change is not None:
            await self.on_change()
        return images, deleted
