"""Query-vector cache in Redis: the segmenter and embedder are skipped for an image seen before."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from designsearch.logs import get_logger

log = get_logger("cache")


@dataclass
class CachedQuery:
    """What a query costs to recompute: its query regions and their vectors.

    Attributes:
        crops: per query region ``{"box": [x1, y1, x2, y2], "kind": str, "score": float}``: the
            segmenter's crops, then the whole picture (kind ``whole_image``), as
            :func:`designsearch.gateway.core.query_regions` orders them.
        vectors: float32 ``(n_regions + len(rotated_of), D)`` unit vectors, row ``i`` for ``crops[i]``,
            then the rotated copies.
        vector_name: ``"photo"`` for a photo query, ``"lines"`` for a sketch (the catalogue vectors it is
            searched against follow from it, :meth:`designsearch.gateway.query.QueryService.search_views`).
        rotated_of: region index of each row after the first ``n_regions`` (rotated copies of close-up
            regions, :class:`designsearch.gateway.query.EmbeddedQuery`).
    """

    crops: list[dict]
    vectors: np.ndarray
    vector_name: str
    rotated_of: list[int] = field(default_factory=list)

    def dumps(self) -> bytes:
        """JSON with the vectors as base64 float32."""
        return json.dumps(
            {
                "crops": self.crops,
                "shape": list(self.vectors.shape),
                "vectors": base64.b64encode(self.vectors.astype(np.float32).tobytes()).decode(),
                "vector_name": self.vector_name,
                "rotated_of": self.rotated_of,
            }
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> "CachedQuery":
        """Inverse of :meth:`dumps`."""
        d = json.loads(raw)
        vectors = np.frombuffer(base64.b64decode(d["vectors"]), dtype=np.float32).reshape(d["shape"])
        return cls(d["crops"], vectors, d["vector_name"], d.get("rotated_of", []))


def cache_key(image_sha256: str, segmenter_version: str, embedder_version: str, options: str) -> str:
    """``ds:qv:`` + sha256 over image hash, model versions and query options."""
    material = "|".join([image_sha256, segmenter_version, embedder_version, options])
    return "ds:qv:" + hashlib.sha256(material.encode()).hexdigest()


class QueryCache:
    """Redis-backed cache, never in a query's way: Redis failures are logged and count as misses.

    Every call has a short timeout; a circuit breaker (Nygard, "Release It!", 2007) opens after
    ``failures_to_open`` consecutive failures, and while it is open the cache is skipped without a
    network call; after ``open_s`` seconds one call probes Redis again (half-open) and closes the
    breaker when it succeeds. So a frozen or dead Redis costs at most one timeout per ``open_s``.

    Args:
        url: ``redis://host:port/db``.
        ttl_s: entry lifetime in seconds.
        timeout_s: socket connect/read timeout of each call, seconds.
        failures_to_open: consecutive failures that open the breaker.
        open_s: how long the breaker stays open before a probe, seconds.
    """

    def __init__(self, url: str, ttl_s: int, timeout_s: float = 0.05, failures_to_open: int = 1,
                 open_s: float = 2.0) -> None:
        self.client = aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.ttl_s = ttl_s
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._failures = 0
        self._opened_at: float | None = None
        self._bump_pending = False

    @property
    def available(self) -> bool:
        """False while the breaker is open (Redis is being skipped)."""
        return self._opened_at is None

    def _skip(self) -> bool:
        if self._opened_at is None:
            return False
        if time.monotonic() - self._opened_at >= self.open_s:
            self._opened_at = time.monotonic()  # half-open: this call probes; others keep skipping
            return False
        return True

    def _ok(self) -> None:
        if self._opened_at is not None:
            log.info("cache_breaker_closed")
        self._failures, self._opened_at = 0, None

    def _failed(self, what: str, exc: Exception) -> None:
        self._failures += 1
        if self._failures >= self.failures_to_open:
            if self._opened_at is None:
                log.warning("cache_breaker_open", operation=what, error_type=type(exc).__name__, error=str(exc),
                            open_s=self.open_s)
            self._opened_at = time.monotonic()

    async def ping(self) -> bool:
        """True when Redis answers (also closes the breaker)."""
        try:
            ok = bool(await self.client.ping())
        except (RedisError, OSError) as exc:
            self._failed("ping", exc)
            return False
        self._ok()
        return ok

    async def get(self, key: str) -> CachedQuery | None:
        """The cached entry, or None (miss, Redis down, or breaker open)."""
        raw = await self.get_raw(key)
        return CachedQuery.loads(raw) if raw else None

    async def set(self, key: str, value: CachedQuery) -> None:
        """Store an entry with the TTL (errors logged, not raised; skipped while the breaker is open)."""
        await self.set_raw(key, value.dumps(), self.ttl_s)

    # -- answer cache: whole FindSimilar answers, valid for one catalogue version -----------------
    VERSION_KEY = "ds:catalogue_version"

    async def catalogue_version(self) -> int | None:
        """The shared catalogue version (bumped on every catalogue change), or None when answers
        must not be cached now (Redis skipped, or a bump could not be stored and is still pending)."""
        if self._skip():
            return None
        try:
            if self._bump_pending:
                await self.client.incr(self.VERSION_KEY)
                self._bump_pending = False
            raw = await self.client.get(self.VERSION_KEY)
        except (RedisError, OSError) as exc:
            self._failed("version", exc)
            return None
        self._ok()
        return int(raw or 0)

    async def bump_catalogue_version(self) -> None:
        """Invalidate every cached answer (INCR of the version). If Redis cannot be reached the bump
        stays pending and no answer is served from the cache until it is stored."""
        self._bump_pending = True
        if self._skip():
            return
        try:
            await self.client.incr(self.VERSION_KEY)
            self._bump_pending = False
        except (RedisError, OSError) as exc:
            self._failed("bump", exc)
            return
        self._ok()

    async def get_raw(self, key: str) -> bytes | None:
        """A stored value, or None (miss, Redis down, breaker open)."""
        if self._skip():
            return None
        try:
            raw = await self.client.get(key)
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            return None
        self._ok()
        return raw

    async def set_raw(self, key: str, value: bytes, ttl_s: int) -> None:
        """Store a value with a TTL (errors logged, not raised)."""
        if self._skip():
            return
        try:
            await self.client.set(key, value, ex=ttl_s)
        except (RedisError, OSError) as exc:
            self._failed("set", exc)
            return
        self._ok()

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
