"""Per-caller rate limits: a token bucket in the process (:class:`RateLimiter`) and the same limit shared by
every replica through Redis (:class:`RedisRateLimiter`), so two gateway replicas allow the documented rate,
not twice it.

Both answer ``await acquire(caller)`` with 0 (go on, one request counted) or the seconds until the caller may
call again (the interceptor answers ``RESOURCE_EXHAUSTED`` with that ``RetryInfo``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from designsearch.logs import get_logger

log = get_logger("ratelimit")


class RateLimiter:
    """Token bucket per caller in this process (``rate`` requests per second, bursts of ``burst``); rate 0 =
    no limit. Memory is bounded: past 100,000 callers the buckets start afresh."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}  # caller → (tokens, last time)

    def take(self, caller: str, now: float | None = None) -> float:
        """0 when ``caller`` may proceed (a token is taken), else the seconds until it may; ``now``: a
        ``time.monotonic()`` reading (default: the clock's)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[caller] = (tokens - 1, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        if len(self._buckets) > 100_000:  # bounded memory under many distinct callers
            self._buckets.clear()
        return (1 - tokens) / self.rate

    async def acquire(self, caller: str) -> float:
        """:meth:`take` (the interface the interceptor calls)."""
        return self.take(caller)


#: GCRA, the Generic Cell Rate Algorithm (ATM Forum Traffic Management 4.0, 1996; the "virtual scheduling"
#: form): the key holds the caller's theoretical arrival time (TAT). A request at ``now`` is allowed when
#: ``TAT + T - burst * T <= now`` (T = 1 / rate), and then TAT becomes ``max(TAT, now) + T`` — the token bucket
#: of rate ``1/T`` and size ``burst``, in one number. Redis's own clock (TIME) is used, so replicas whose clocks
#: differ agree; the script is atomic. Returns the seconds to wait as a string (Lua numbers become integers).
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat + period - burst * period
if now < allow_at then return tostring(allow_at - now) end
local new_tat = tat + period
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return '0'
"""


class RedisRateLimiter:
    """The per-caller limit shared by every replica through one Redis (:data:`GCRA_LUA`).

    While Redis does not answer (timeout, refused connection) each replica falls back to its own
    :class:`RateLimiter` of the same rate, for ``retry_s`` before Redis is tried again: the limit then holds per
    replica, and no request fails because the limiter's store is down.

    Args:
        url: Redis URL (the gateway's ``redis_url``).
        rate: requests per second per caller; 0 = no limit (Redis is never called).
        burst: bucket size, requests (at least 1).
        timeout_s: timeout of each Redis call, seconds.
        retry_s: how long a failed Redis is left alone, seconds.
        prefix: key prefix; a caller's key is ``prefix`` + 24 hex of its sha256.
    """

    def __init__(self, url: str, rate: float, burst: float, timeout_s: float = 0.05, retry_s: float = 2.0,
                 prefix: str = "ds:rl:") -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self.local = RateLimiter(rate, burst)
        self.retry_s, self.prefix = retry_s, prefix
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry=Retry(NoBackoff(), 0))
        self._script = self._client.register_script(GCRA_LUA)
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="ratelimit")
        self._down_until = 0.0

    def key(self, caller: str) -> str:
        """The Redis key of ``caller``'s arrival time."""
        return self.prefix + hashlib.sha256(caller.encode()).hexdigest()[:24]

    async def acquire(self, caller: str) -> float:
        """0 when ``caller`` may proceed (counted on every replica), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        if time.monotonic() < self._down_until:
            return self.local.take(caller)
        try:
            wait = await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: self._script(keys=[self.key(caller)], args=[1.0 / self.rate, self.burst]))
            return float(wait)
        except (RedisError, OSError, ValueError) as e:
            self._down_until = time.monotonic() + self.retry_s
            log.warning("rate_limit_store_unavailable", error=f"{type(e).__name__}: {e}", fallback="per replica",
                        retry_s=self.retry_s)
            return self.local.take(caller)

    def close(self) -> None:
        """Release the connection pool and the threads."""
        self._executor.shutdown(wait=False)
        self._client.close()
