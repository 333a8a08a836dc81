"""The Redis query cache's circuit breaker on a real redis-server (issue 34): a busy gateway never opens
it, a frozen or stopped Redis does, and it closes again once Redis answers."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

from designsearch.gateway.cache import QueryCache
from designsearch.procs import RedisProcess


#: A Lua script that keeps Redis busy for ~ARGV[1] ms (answers to other clients wait behind it).
_BUSY = """local t = redis.call('TIME'); local t0 = t[1] * 1e6 + t[2]
repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - t0 >= tonumber(ARGV[1]) * 1000"""


async def _calls_on_a_busy_loop(cache: QueryCache, url: str, rounds: int, block_s: float) -> list:
    """Rounds of 8 concurrent GETs while the gateway's event loop is busy and Redis is healthy but not
    instant (another client keeps it busy in 10 ms stretches, so an answer takes up to 10 ms, well
    within the 50 ms timeout). Every 0-20 ms the loop runs a CPU-bound step of ``block_s`` holding the
    GIL (as requests decoding images or fusing results do), so an answer that arrives meanwhile is read
    on the loop up to ``block_s`` after it came. (The old client, timed on the loop, opened the breaker
    in every run of this.)"""
    import threading

    import redis

    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def step() -> None:
        end = time.perf_counter() + block_s
        while time.perf_counter() < end:  # CPU-bound Python, holding the GIL as a busy gateway does
            pass
        if not stop.is_set():
            loop.call_later(random.uniform(0, 0.02), step)

    def other_client() -> None:
        with redis.Redis.from_url(url) as r:
            while not stop.is_set():
                r.eval(_BUSY, 0, 10)
                time.sleep(0.001)

    busy_redis = threading.Thread(target=other_client)
    busy_redis.start()
    loop.call_later(0, step)
    try:
        return [await asyncio.gather(*[cache.get_raw("k") for _ in range(8)]) for _ in range(rounds)]
    finally:
        stop.set()
        busy_redis.join()
        await asyncio.sleep(block_s * 2)


async def test_a_busy_event_loop_does_not_open_the_breaker(redis_server):
    """Redis healthy, the gateway's event loop busy (each iteration 60 ms of CPU, beyond the 50 ms
    timeout): every call still gets its value and the breaker never opens."""
    cache = QueryCache(redis_server.url, 60, timeout_s=0.05, open_s=2.0)
    try:
        await cache.set_raw("k", b"v", 60)
        await asyncio.gather(*[cache.get_raw("k") for _ in range(8)])  # connections made
        assert await _calls_on_a_busy_loop(cache, redis_server.url, 30, 0.06) == [[b"v"] * 8] * 30
        assert cache.available and cache.openings == 0
    finally:
        await cache.close()


async def test_a_frozen_or_stopped_redis_opens_the_breaker_and_it_closes_again(tmp_path):
    """SIGSTOP: the breaker opens after a few failed calls, later calls skip Redis (nothing sent); once Redis
    runs again and the open period has passed (an injected clock, no sleeping) one call probes and closes it.
    A stopped Redis (connection refused) opens it too. (How long a frozen Redis costs a query is measured by
    ``benchmarks/fault_load.py``, not here.)"""
    import redis as redis_py

    redis = RedisProcess(tmp_path / "redis")
    now = [0.0]
    cache = QueryCache(redis.url, 60, timeout_s=0.05, open_s=0.3, clock=lambda: now[0])
    try:
        await cache.set_raw("k", b"v", 60)
        assert await cache.get_raw("k") == b"v"
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            assert await asyncio.gather(*[cache.get_raw("k") for _ in range(8)]) == [None] * 8
            assert not cache.available and cache.openings == 1
            sent = cache.calls_sent
            assert await cache.get_raw("k") is None
            assert cache.calls_sent == sent  # open: no call sent at all
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        with redis_py.Redis.from_url(redis.url, socket_timeout=10) as direct:
            assert direct.ping()
        assert await cache.get_raw("k") is None and cache.calls_sent == sent  # still open within open_s
        for _ in range(3):  # one probe per open period (a just-resumed Redis may miss one 50 ms probe)
            now[0] += 0.3
            await cache.get_raw("k")
            if cache.available:
                break
        assert cache.available and await cache.get_raw("k") == b"v"

        redis.stop()
        for _ in range(4):
            assert await cache.get_raw("k") is None
        assert not cache.available and cache.openings == 2
    finally:
        await cache.close()
        redis.stop()
