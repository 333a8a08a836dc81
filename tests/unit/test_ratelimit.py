"""Rate limits (designsearch/ratelimit.py): the per-process token bucket on an injected clock, and the GCRA
limit shared through a real Redis by several replicas, with its per-replica fallback while Redis is down."""

from __future__ import annotations

import socket
import uuid

import pytest

from designsearch.ratelimit import RateLimiter, RedisRateLimiter


def test_the_token_bucket_allows_a_burst_then_the_rate():
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", now=100.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert limiter.take("b", now=100.0) == 0.0  # per caller
    assert limiter.take("a", now=100.5) == 0.0  # refilled
    assert limiter.take("a", now=100.5) > 0
    assert RateLimiter(0.0, 3).take("a", now=0.0) == 0.0  # rate 0: no limit


async def test_replicas_share_one_limit_through_redis(redis_server):
    """Two gateways' limiters on one Redis: together they allow the burst, not twice it, and say how long to
    wait (about one period); another caller has its own bucket."""
    replicas = [RedisRateLimiter(redis_server.url, rate=0.5, burst=4) for _ in range(2)]
    caller = f"key:{uuid.uuid4().hex[:12]}"  # its own bucket: the test stands alone
    try:
        waits = [await replicas[i % 2].acquire(caller) for i in range(8)]
        assert waits[:4] == [0.0] * 4
        assert all(0 < w <= 2.0 + 0.05 for w in waits[4:])  # period 1 / 0.5 s
        assert await replicas[1].acquire(caller + "-other") == 0.0
    finally:
        for r in replicas:
            r.close()


async def test_a_limiter_without_redis_falls_back_to_its_own_bucket():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", rate=0.5, burst=2, timeout_s=0.05)
    try:
        waits = [await limiter.acquire("key:x") for _ in range(3)]
        assert waits[:2] == [0.0, 0.0] and waits[2] > 0  # the limit still holds, per replica
    finally:
        limiter.close()
