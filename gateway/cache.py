"""Query-vector cache in Redis: the segmenter and embedder are skipped for an image seen before."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from designsearch.gateway.plan import CACHE_FORMAT
from designsearch.logs import get_logger
from designsearch.telemetry import CACHE_BREAKER_OPENINGS

log = get_logger("cache")
T = TypeVar("T")
#: What :meth:`QueryCache._call` returns for a call that was skipped or failed.
_FAILED = object()


@dataclass
class CachedQuery:
    """What a query costs to recompute: its query regions and their vectors.

    Attributes:
        crops: per query region ``{"box": [x1, y1, x2, y2], "kind": str, "score": float}``: the
            segmenter's crops, then the whole picture (kind ``whole_image``), as
            :func:`designsearch.gateway.regions.query_regions` orders them.
        vectors: float32 ``(n_regions + len(rotated_of), D)`` unit vectors, row ``i`` for ``crops[i]``,
            then the rotated copies.
        domain: ``"photo"`` or ``"sketch"``, the domain the query was embedded for (the catalogue vectors it
            is searched against follow from it, :func:`designsearch.gateway.plan.search_views`).
        rotated_of: region index of each row after the first ``n_regions`` (rotated copies of close-up
            regions, :class:`designsearch.gateway.query.EmbeddedQuery`).
    """

    crops: list[dict]
    vectors: np.ndarray
    domain: str
    rotated_of: list[int] = field(default_factory=list)

    def dumps(self) -> bytes:
        """JSON with the vectors as base64 float32, tagged with :data:`designsearch.gateway.plan.CACHE_FORMAT`."""
        return json.dumps(
            {
                "format": CACHE_FORMAT,
                "crops": self.crops,
                "shape": list(self.vectors.shape),
                "vectors": base64.b64encode(self.vectors.astype(np.float32).tobytes()).decode(),
                "domain": self.domain,
                "rotated_of": self.rotated_of,
            }
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> "CachedQuery | None":
        """Inverse of :meth:`dumps`; None for an entry that is corrupt, inconsistent (rows neither one per
        crop and rotated copy) or of another format: a miss, never an error."""
        try:
            d = json.loads(raw)
            if d.get("format") != CACHE_FORMAT:
                return None
            vectors = np.frombuffer(base64.b64decode(d["vectors"]), dtype=np.float32).reshape(d["shape"])
            rotated_of = [int(i) for i in d["rotated_of"]]
            crops = d["crops"]
            ok = (vectors.ndim == 2 and len(crops) >= 1 and vectors.shape[0] == len(crops) + len(rotated_of)
                  and all(0 <= i < len(crops) for i in rotated_of) and d["domain"] in ("photo", "sketch"))
            return cls(crops, vectors, d["domain"], rotated_of) if ok else None
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as e:
            log.warning("vector_cache_entry_unreadable", error=f"{type(e).__name__}: {e}")
            return None


def cache_key(image_sha256: str, segmenter_version: str, embedder_version: str, options: str) -> str:
    """``ds:qv:`` + sha256 over image hash, model versions and query options."""
    material = "|".join([image_sha256, segmenter_version, embedder_version, options])
    return "ds:qv:" + hashlib.sha256(material.encode()).hexdigest()


class QueryCache:
    """Redis-backed cache, never in a query's way: Redis failures are logged and count as misses.

    Redis is called from a few threads of the cache's own (a blocking client whose socket timeouts the
    kernel measures), not on the event loop: ``timeout_s`` then bounds how long Redis takes to answer,
    never how late a busy event loop gets round to reading an answer that is already there. (Measured
    on the loop, a 50 ms timeout tripped the breaker five times in 180 s of 16 clients on 2 cores with
    Redis healthy, issue 34.) A call that waits for a free thread is not timed until it is sent.

    A circuit breaker (Nygard, "Release It!", 2007) opens after ``failures_to_open`` consecutive
    failed calls (a timeout as above, a refused or broken connection); while it is open the cache is
    skipped without a network call (calls already waiting for a thread are dropped too), and after
    ``open_s`` seconds one call probes Redis again (half-open) and closes the breaker when it succeeds.
    So a frozen or dead Redis costs at most ``failures_to_open`` timeouts (in parallel on the threads),
    then one per ``open_s``; a busy gateway CPU alone never opens it. Each opening is counted
    (:attr:`openings`, the ``designsearch_cache_breaker_openings_total`` metric) and logged
    (``cache_breaker_open``).

    Args:
        url: ``redis://host:port/db``.
        ttl_s: entry lifetime in seconds.
        timeout_s: socket connect/read timeout of each call, seconds (no retries: a slow call is a miss).
        failures_to_open: consecutive failures that open the breaker, ≥ 1.
        open_s: how long the breaker stays open before a probe, seconds.
        threads: threads (and at most as many connections) calling Redis.
        clock: monotonic seconds for the breaker's open period (tests inject their own).

    Attributes:
        calls_sent: calls that reached Redis (or tried to): skipped calls do not count.
    """

    def __init__(self, url: str, ttl_s: int, timeout_s: float = 0.05, failures_to_open: int = 3,
                 open_s: float = 2.0, threads: int = 4, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           retry=Retry(NoBackoff(), 0))
        self._threads = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="redis-cache")
        self.ttl_s = ttl_s
        self.failures_to_open = max(1, failures_to_open)
        self.open_s = open_s
        self.openings = 0
        self.calls_sent = 0
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._bumps_wanted = self._bumps_stored = 0  # catalogue-version bumps asked for / known stored

    @property
    def available(self) -> bool:
        """False while the breaker is open (Redis is being skipped)."""
        return self._opened_at is None

    def _admit(self) -> str | None:
        """``"call"`` (breaker closed), ``"probe"`` (half-open: this call probes Redis), or None (skip)."""
        if self._opened_at is None:
            return "call"
        if self._clock() - self._opened_at >= self.open_s:
            self._opened_at = self._clock()  # half-open: this call probes; others keep skipping
            return "probe"
        return None

    def _ok(self) -> None:
        if self._opened_at is not None:
            log.info("cache_breaker_closed")
        self._failures, self._opened_at = 0, None

    def _failed(self, what: str, exc: Exception) -> None:
        self._failures += 1
        if self._failures >= self.failures_to_open:
            if self._opened_at is None:
                self.openings += 1
                CACHE_BREAKER_OPENINGS.inc()
                log.warning("cache_breaker_open", operation=what, error_type=type(exc).__name__, error=str(exc),
                            failures=self._failures, open_s=self.open_s)
            self._opened_at = self._clock()

    async def _call(self, what: str, fn: Callable[[redis.Redis], T], mode: str | None = None) -> T | object:
        """``fn(client)`` on a cache thread: its result, or :data:`_FAILED` (breaker open, Redis error)."""
        mode = mode or self._admit()
        if mode is None:
            return _FAILED

        def run():
            if mode == "call" and self._opened_at is not None:
                return _FAILED  # the breaker opened while this call waited for a thread
            self.calls_sent += 1
            return fn(self.client)

        try:
            result = await asyncio.get_running_loop().run_in_executor(self._threads, run)
        except (RedisError, OSError) as exc:
            self._failed(what, exc)
            return _FAILED
        if result is not _FAILED:
            self._ok()
        return result

    async def ping(self) -> bool:
        """True when Redis answers (also closes the breaker; probes even while it is open)."""
        return await self._call("ping", lambda r: bool(r.ping()), mode="probe") is True

    async def get(self, key: str) -> CachedQuery | None:
        """The cached entry, or None (miss, Redis down, or breaker open)."""
        raw = await self.get_raw(key)
        return CachedQuery.loads(raw) if raw else None  # unreadable or foreign entries are misses

    async def set(self, key: str, value: CachedQuery) -> None:
        """Store an entry with the TTL (errors logged, not raised; skipped while the breaker is open)."""
        await self.set_raw(key, value.dumps(), self.ttl_s)

    # -- answer cache: whole FindSimilar answers, valid for one catalogue version -----------------
    VERSION_KEY = "ds:catalogue_version"

    async def catalogue_version(self) -> int | None:
        """The shared catalogue version (bumped on every catalogue change), or None when answers
        must not be cached now (Redis skipped, or a bump could not be stored and is still pending)."""
        wanted = self._bumps_wanted

        def read(r: redis.Redis):
            if wanted > self._bumps_stored:
                r.incr(self.VERSION_KEY)
            return r.get(self.VERSION_KEY)

        raw = await self._call("version", read)
        if raw is _FAILED:
            return None
        self._bumps_stored = max(self._bumps_stored, wanted)
        return int(raw or 0)

    async def bump_catalogue_version(self) -> None:
        """Invalidate every cached answer (INCR of the version). If Redis cannot be reached the bump
        stays pending and no answer is served from the cache until it is stored."""
        self._bumps_wanted += 1
        wanted = self._bumps_wanted
        if await self._call("bump", lambda r: r.incr(self.VERSION_KEY)) is not _FAILED:
            self._bumps_stored = max(self._bumps_stored, wanted)

    async def get_raw(self, key: str) -> bytes | None:
        """A stored value, or None (miss, Redis down, breaker open)."""
        raw = await self._call("get", lambda r: r.get(key))
        return None if raw is _FAILED else raw

    async def set_raw(self, key: str, value: bytes, ttl_s: int) -> None:
        """Store a value with a TTL (errors logged, not raised)."""
        await self._call("set", lambda r: r.set(key, value, ex=ttl_s))

    async def close(self) -> None:
        """Stop the cache threads (a call in progress ends at its timeout) and close the connections."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.client.close()
