"""Two gateway replicas (real servers on the test stack's backends and Redis) share one per-key rate limit:
together they allow the documented burst and rate, not twice it; each may still count alone when asked to."""

from __future__ import annotations

import hashlib
import uuid

import grpc
import pytest

from designsearch.v1 import gateway_pb2, gateway_pb2_grpc


async def _calls_until_refused(addresses: list[str], key: str, n: int) -> list[str]:
    """``n`` GetStats calls with ``key``, alternating between the replicas: the status code of each."""
    codes = []
    channels = [grpc.aio.insecure_channel(a) for a in addresses]
    try:
        stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in channels]
        for i in range(n):
            try:
                await stubs[i % len(stubs)].GetStats(gateway_pb2.GetStatsRequest(), timeout=10,
                                                     metadata=[("x-api-key", key)])
                codes.append("OK")
            except grpc.aio.AioRpcError as e:
                codes.append(e.code().name)
    finally:
        for c in channels:
            await c.close()
    return codes


@pytest.mark.parametrize("shared, allowed", [(True, 3), (False, 6)])
async def test_two_gateways_allow_the_burst_once_when_shared(stack, tmp_path, make_gateway_settings, shared, allowed):
    from designsearch.gateway.server import create_server

    key = uuid.uuid4().hex  # a key of this test only: its bucket in Redis is fresh
    gateways = [await create_server(make_gateway_settings(
        stack, tmp_path / f"g{i}", api_keys=["sha256:" + hashlib.sha256(key.encode()).hexdigest()],
        rate_limit_per_s=0.2, rate_burst=3, rate_limit_shared=shared)) for i in range(2)]
    try:
        codes = await _calls_until_refused([g.address for g in gateways], key, 8)
    finally:
        for g in gateways:
            await g.stop(0)
    # one period is 5 s, far longer than the calls take: nothing refills meanwhile
    assert codes == ["OK"] * allowed + ["RESOURCE_EXHAUSTED"] * (8 - allowed)
