"""Query-vector cache in Redis: the segmenter and embedder are skipped for an image seen before."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

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
        vectors: float32 ``(n_regions, D)`` unit vectors, row ``i`` for ``crops[i]``.
        vector_name: catalogue vector the query is searched against, ``"photo"`` or ``"lines"``.
    """

    crops: list[dict]
    vectors: np.ndarray
    vector_name: str

    def dumps(self) -> bytes:
        """JSON with the vectors as base64 float32."""
        return json.dumps(
            {
                "crops": self.crops,
                "shape": list(self.vectors.shape),
                "vectors": base64.b64encode(self.vectors.astype(np.float32).tobytes()).decode(),
                "vector_name": self.vector_name,
            }
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> "CachedQuery":
        """Inverse of :meth:`dumps`."""
        d = json.loads(raw)
        vectors = np.frombuffer(base64.b64decode(d["vectors"]), dtype=np.float32).reshape(d["shape"])
        return cls(d["crops"], vectors, d["vector_name"])


def cache_key(image_sha256: str, segmenter_version: str, embedder_version: str, options: str) -> str:
    """``ds:qv:`` + sha256 over image hash, model versions and query options."""
    material = "|".join([image_sha256, segmenter_version, embedder_version, options])
    return "ds:qv:" + hashlib.sha256(material.encode()).hexdigest()


class QueryCache:
    """Redis-backed cache; Redis failures are logged and treated as misses (the query still works).

    Args:
        url: ``redis://host:port/db``.
        ttl_s: entry lifetime in seconds.
    """

    def __init__(self, url: str, ttl_s: int) -> None:
        self.client = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.ttl_s = ttl_s

    async def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def get(self, key: str) -> CachedQuery | None:
        """The cached entry, or None (miss or Redis down)."""
        try:
            raw = await self.client.get(key)
        except (RedisError, OSError) as exc:
            log.warning("cache_get_failed", error=str(exc))
            return None
        return CachedQuery.loads(raw) if raw else None

    async def set(self, key: str, value: CachedQuery) -> None:
        """Store an entry with the TTL (errors logged, not raised)."""
        try:
            await self.client.set(key, value.dumps(), ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            log.warning("cache_set_failed", error=str(exc))

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
