"""End-to-end query path over gRPC on real Stanford Cars images, real Redis, real Qdrant API."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from designsearch.v1 import common_pb2, gateway_pb2


def _embedded_images() -> float:
    return REGISTRY.get_sample_value("designsearch_embedder_images_total") or 0.0


async def test_all_services_report_serving(stack):
    for name, service in stack.items():
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for svc in ["", *service.names]:
                r = await stub.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
                assert r.status == health_pb2.HealthCheckResponse.SERVING, (name, svc)


async def test_internal_services_refuse_calls_without_the_service_token(stack):
    """Segmenter, embedder and search answer only callers holding the internal token (health stays open)."""
    from designsearch.internal.v1 import (embedder_pb2, embedder_pb2_grpc, search_pb2, search_pb2_grpc, segmenter_pb2,
                                          segmenter_pb2_grpc)
    from tests.conftest import INTERNAL_TOKEN

    calls = [("segmenter", lambda ch: segmenter_pb2_grpc.SegmenterServiceStub(ch).GetSegmenterInfo,
              segmenter_pb2.GetSegmenterInfoRequest()),
             ("embedder", lambda ch: embedder_pb2_grpc.EmbedderServiceStub(ch).GetModelInfo,
              embedder_pb2.GetModelInfoRequest()),
             ("search", lambda ch: search_pb2_grpc.SearchServiceStub(ch).ListCollections,
              search_pb2.ListCollectionsRequest())]
    for name, method, request in calls:
        async with grpc.aio.insecure_channel(stack[name].address) as channel:
            for metadata in ([], [("x-internal-token", "guess")]):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await method(channel)(request, timeout=5, metadata=metadata)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            await method(channel)(request, timeout=5, metadata=[("x-internal-token", INTERNAL_TOKEN)])
            h = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert h.status == health_pb2.HealthCheckResponse.SERVING


async def test_segmenter_reports_the_version_it_segments_with(stack, small_catalogue):
    """GetSegmenterInfo (used by the gateway for its cache key) names the model that answers Segment."""
    from designsearch.internal.v1 import segmenter_pb2, segmenter_pb2_grpc
    from tests.conftest import INTERNAL_TOKEN

    token = [("x-internal-token", INTERNAL_TOKEN)]
    async with grpc.aio.insecure_channel(stack["segmenter"].address) as channel:
        stub = segmenter_pb2_grpc.SegmenterServiceStub(channel)
        info = await stub.GetSegmenterInfo(segmenter_pb2.GetSegmenterInfoRequest(), timeout=5, metadata=token)
        image = small_catalogue[0][0].path.read_bytes()
        seg = await stub.Segment(segmenter_pb2.SegmentRequest(image=common_pb2.Image(content=image)), timeout=30,
                                 metadata=token)
    assert info.model_version == seg.model_version and info.model_version.startswith(info.detector + ":")
    assert stack["gateway"].core.live.segmenter_version == info.model_version


async def test_ingestion_adds_every_image_once(indexed, gateway_stub):
    catalogue, _, response = indexed
    assert response.added == len(catalogue) and response.failed == 0
    assert all(r.crops_indexed >= 1 for r in response.results)
    stats = await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
    assert stats.images == len(catalogue)
    assert stats.designs == len({img.design_id for img in catalogue})
    assert stats.points == sum(r.crops_indexed for r in response.results)

    # idempotent: the same images again add nothing
    from designsearch.client import index_requests

    again = await gateway_stub.IndexDesigns(index_requests(catalogue[:4]), timeout=120)
    assert again.duplicates == 4 and again.added == 0
    assert (await gateway_stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)).points == stats.points


async def test_catalogue_image_comes_back_first(indexed, gateway_stub):
    catalogue, _, _ = indexed
    img = catalogue[7]
    r = await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(
        image=common_pb2.Image(content=img.path.read_bytes()), domain=common_pb2.DOMAIN_PHOTO), timeout=30)
    assert r.matches, "no matches"
    top = r.matches[0]
    assert top.design.design_id == img.design_id
    assert top.score >= 0.99
    assert (top.design.brand, top.design.model, top.design.year) == (img.brand, img.model, img.year)
    assert top.thumbnail[:2] == b"\xff\xd8"  # JPEG
    assert len(r.matches) == min(6, len({i.design_id for i in catalogue}))
    assert [m.score for m in r.matches] == sorted((m.score for m in r.matches), reverse=True)
    assert len({m.design.design_id for m in r.matches}) == len(r.matches)  # grouped by design


def unique_picture(path) -> bytes:
    """The picture at ``path`` with one pixel set from a fresh uuid, as PNG: bytes no other test (or earlier
    run on the same Redis) has sent, so the test's cache misses and hits are its own."""
    import uuid

    from designsearch.images import encode_png, read_image

    rgb = read_image(str(path)).copy()
    rgb[0, 0] = np.frombuffer(uuid.uuid4().bytes[:3], np.uint8)
    return encode_png(rgb)


async def test_second_identical_query_is_served_from_cache(indexed, gateway_stub):
    _, queries, _ = indexed
    req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=unique_picture(queries[0].path)), k=3)
    first = await gateway_stub.FindSimilar(req, timeout=30)
    before = _embedded_images()
    second = await gateway_stub.FindSimilar(req, timeout=30)
    assert second.cache_hit and not first.cache_hit
    assert _embedded_images() == before, "the embedder ran again on a cached query"
    assert [m.design.design_id for m in second.matches] == [m.design.design_id for m in first.matches]
    assert "segment" not in second.timings_ms and "answer_cache" in second.timings_ms


async def test_filters_restrict_results(indexed, gateway_stub):
    catalogue, queries, _ = indexed
    brand = catalogue[-1].brand
    req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[0].path.read_bytes()), k=10,
                                         filters=common_pb2.Filters(brands=[brand]))
    r = await gateway_stub.FindSimilar(req, timeout=30)
    assert r.matches and all(m.design.brand == brand for m in r.matches)
    years = sorted({i.year for i in catalogue})
    req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[0].path.read_bytes()), k=10,
                                         filters=common_pb2.Filters(year_min=years[-1], year_max=years[-1]))
    r = await gateway_stub.FindSimilar(req, timeout=30)
    assert r.matches and all(m.design.year == years[-1] for m in r.matches)
    expected = {i.design_id for i in catalogue if i.year == years[-1]}
    assert {m.design.design_id for m in r.matches} == expected


async def test_dislike_drops_design_from_later_results(indexed, gateway_stub):
    _, queries, _ = indexed
    req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[1].path.read_bytes()), k=3)
    first = await gateway_stub.FindSimilar(req, timeout=30)
    disliked = first.matches[0].design.design_id
    await gateway_stub.Dislike(gateway_pb2.DislikeRequest(query_id=first.query_id, design_id=disliked), timeout=10)
    again = await gateway_stub.FindSimilar(req, timeout=30)
    assert disliked not in {m.design.design_id for m in again.matches}
    assert len(again.matches) == 3


async def test_api_key_is_required_when_configured(stack, tmp_path, small_catalogue, make_gateway_settings):
    from designsearch.gateway.server import create_server

    import hashlib

    # the key is configured by its hash only; 3 calls may burst, then 1 per second
    gateway = await create_server(make_gateway_settings(
        stack, tmp_path, api_keys=["sha256:" + hashlib.sha256(b"s3cret").hexdigest()], rate_limit_per_s=1,
        rate_burst=3))
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            from designsearch.v1 import gateway_pb2_grpc

            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10, metadata=[("x-api-key", "wrong")])
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            r = await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10, metadata=[("x-api-key", "s3cret")])
            assert r.collection.startswith("designs_")
            # the key's bucket: one more call is fine (burst 3: one taken above), then RESOURCE_EXHAUSTED + RetryInfo
            await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10, metadata=[("x-api-key", "s3cret")])
            await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10, metadata=[("x-api-key", "s3cret")])
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10, metadata=[("x-api-key", "s3cret")])
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            from google.rpc import error_details_pb2
            from grpc_status import rpc_status

            retry = error_details_pb2.RetryInfo()
            assert any(d.Unpack(retry) for d in rpc_status.from_call(info.value).details)
            assert 0 < retry.retry_delay.ToMilliseconds() <= 1000
            # health stays open without a key (Kubernetes probes carry none)
            h = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert h.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await gateway.stop(0)


async def test_line_drawings_are_detected_as_sketches_and_find_their_design(indexed, gateway_stub):
    """Line drawings (Canny maps at another scale than the catalogue's) of catalogue cars are detected as
    sketches and, searched as the policy says (the catalogue's photo vectors by default), find their own
    design far above chance (1 in 5 designs); a photo stays a photo."""
    from designsearch.images import edge_map, encode_png, read_image

    catalogue, _, _ = indexed
    firsts = []
    for img in catalogue:
        sketch = encode_png(edge_map(read_image(str(img.path)), size=448))
        r = await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=sketch), k=5),
                                           timeout=30)
        assert r.domain == common_pb2.DOMAIN_SKETCH  # detected: mostly white, grey lines
        firsts.append(r.matches[0].design.design_id == img.design_id)
    print(f"sketch top-1 over {len(firsts)} catalogue cars: {sum(firsts)}")
    assert sum(firsts) / len(firsts) >= 0.4, f"sketch top-1 rate {sum(firsts)}/{len(firsts)}"
    photo = await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(
        image=common_pb2.Image(content=catalogue[0].path.read_bytes()), k=3), timeout=30)
    assert photo.domain == common_pb2.DOMAIN_PHOTO


async def test_long_ingestion_stream_outlives_connection_age(stack, tmp_path, small_catalogue, make_gateway_settings):
    """Connections get GOAWAY after max_connection_age_s (so clients spread to new pods); a running
    IndexDesigns stream must still finish within the grace period."""
    import asyncio

    from designsearch.client import index_request
    from designsearch.v1 import gateway_pb2_grpc
    from designsearch.gateway.server import create_server

    gateway = await create_server(make_gateway_settings(stack, tmp_path, max_connection_age_s=0.5,
                                                        max_connection_age_grace_s=60))
    catalogue, _ = small_catalogue

    async def slow_stream():
        for img in catalogue[:3]:
            yield index_request(img)
            await asyncio.sleep(0.8)

    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            r = await gateway_pb2_grpc.GatewayServiceStub(channel).IndexDesigns(slow_stream(), timeout=60)
        assert len(r.results) == 3 and r.failed == 0
    finally:
        await gateway.stop(0)


async def test_verify_over_grpc(indexed, gateway_stub):
    """Verify with the committed calibration of the shipped model: an image against itself is the same
    design; an empty image is INVALID_ARGUMENT; the answer carries the threshold's held-out error rates."""
    catalogue, queries, _ = indexed
    same_img = catalogue[0].path.read_bytes()
    r = await gateway_stub.Verify(gateway_pb2.VerifyRequest(first=common_pb2.Image(content=same_img),
                                                            second=common_pb2.Image(content=same_img)), timeout=60)
    assert r.same_design and r.similarity == pytest.approx(1.0, abs=1e-4) and 0 < r.threshold < 1
    assert 0 < r.equal_error_rate < 0.5 and r.domain == common_pb2.DOMAIN_PHOTO
    other = next(q for q in queries if q.design_id != catalogue[0].design_id)
    r2 = await gateway_stub.Verify(gateway_pb2.VerifyRequest(first=common_pb2.Image(content=same_img),
                                                             second=common_pb2.Image(content=other.path.read_bytes())),
                                   timeout=60)
    assert r2.similarity < r.similarity and r2.threshold == r.threshold
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gateway_stub.Verify(gateway_pb2.VerifyRequest(first=common_pb2.Image(content=b""),
                                                            second=common_pb2.Image(content=same_img)), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "first" in info.value.details()


async def test_identify_over_grpc(indexed, gateway_stub):
    """A catalogue image is identified as its own brand/model/year; shares are a distribution."""
    catalogue, _, _ = indexed
    img = catalogue[0]
    r = await gateway_stub.Identify(gateway_pb2.IdentifyRequest(image=common_pb2.Image(content=img.path.read_bytes())),
                                    timeout=60)
    assert (r.candidates[0].brand, r.candidates[0].model, r.candidates[0].year) == (img.brand, img.model, img.year)
    assert img.design_id in r.candidates[0].design_ids and 1 <= len(r.candidates) <= 5
    shares = [c.vote_share for c in r.candidates]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-6
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gateway_stub.Identify(gateway_pb2.IdentifyRequest(image=common_pb2.Image(content=img.path.read_bytes()),
                                                                neighbours=1000), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "neighbours" in info.value.details()


async def test_novelty_and_typicality_over_grpc(indexed, gateway_stub):
    """A catalogue image is not novel (its own copy is indexed); a held-out one is more novel. Typicality
    is the cosine to the group mean with the group's spread; an empty or missing group is a clear error."""
    catalogue, queries, _ = indexed
    img = catalogue[0]
    own = await gateway_stub.GetNovelty(gateway_pb2.GetNoveltyRequest(image=common_pb2.Image(content=img.path.read_bytes()),
                                                                      k=3), timeout=60)
    assert 0 <= own.novelty < 1e-3 and own.nearest[0].design.design_id == img.design_id
    held_out = await gateway_stub.GetNovelty(
        gateway_pb2.GetNoveltyRequest(image=common_pb2.Image(content=queries[0].path.read_bytes())), timeout=60)
    assert held_out.novelty > own.novelty + 0.01 and len(held_out.nearest) == len({c.design_id for c in catalogue})

    t = await gateway_stub.GetTypicality(gateway_pb2.GetTypicalityRequest(
        image=common_pb2.Image(content=img.path.read_bytes()), group=common_pb2.Filters(brands=[img.brand])), timeout=60)
    assert t.group_size > 0 and -1 <= t.typicality <= 1 and 0 < t.group_mean <= 1 and t.compared in ("crop", "whole_image")
    other = await gateway_stub.GetTypicality(gateway_pb2.GetTypicalityRequest(
        image=common_pb2.Image(content=img.path.read_bytes()),
        group=common_pb2.Filters(year_min=1990, year_max=2100)), timeout=60)
    assert other.group_size >= t.group_size
    one = await gateway_stub.GetTypicality(gateway_pb2.GetTypicalityRequest(
        image=common_pb2.Image(content=img.path.read_bytes()), group=common_pb2.Filters(design_ids=[img.design_id])),
        timeout=60)
    assert 0 < one.group_size <= t.group_size and one.typicality > t.typicality  # closer to its own design
    for group, code in [(common_pb2.Filters(brands=["No Such Brand"]), grpc.StatusCode.FAILED_PRECONDITION),
                        (common_pb2.Filters(), grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gateway_stub.GetTypicality(gateway_pb2.GetTypicalityRequest(
                image=common_pb2.Image(content=img.path.read_bytes()), group=group), timeout=60)
        assert info.value.code() == code, info.value.details()


async def test_feedback_is_per_caller_and_moves_the_query(indexed, stack, tmp_path, make_gateway_settings):
    """Alice's dislike drops the design from Alice's later results of that image, not from Bob's; and
    Alice's query is moved away from the disliked design (Rocchio), so her scores change."""
    from designsearch.gateway.server import create_server
    from designsearch.v1 import gateway_pb2_grpc

    _, queries, _ = indexed
    url = stack["gateway"].core.catalogue.engine.url.render_as_string(hide_password=False)
    gateway = await create_server(make_gateway_settings(stack, tmp_path, api_keys=["alice-key", "bob-key"],
                                                        catalogue_url=url))
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            alice, bob = [("x-api-key", "alice-key")], [("x-api-key", "bob-key")]
            req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[3].path.read_bytes()), k=5)
            before = await stub.FindSimilar(req, timeout=30, metadata=alice)
            disliked = before.matches[0].design.design_id
            await stub.Dislike(gateway_pb2.DislikeRequest(query_id=before.query_id, design_id=disliked), timeout=10,
                               metadata=alice)
            after_alice = await stub.FindSimilar(req, timeout=30, metadata=alice)
            after_bob = await stub.FindSimilar(req, timeout=30, metadata=bob)
    finally:
        await gateway.stop(0)
    assert disliked not in [m.design.design_id for m in after_alice.matches]
    assert [m.design.design_id for m in after_bob.matches] == [m.design.design_id for m in before.matches]
    bob_scores = {m.design.design_id: m.score for m in after_bob.matches}
    moved = [abs(m.score - bob_scores[m.design.design_id]) for m in after_alice.matches if m.design.design_id in bob_scores]
    assert moved and max(moved) > 1e-3  # the query itself changed, not only the filter
    assert "feedback" in after_alice.timings_ms and "feedback" not in after_bob.timings_ms


async def test_gateway_starts_and_answers_without_redis(indexed, stack, tmp_path, make_gateway_settings):
    """Redis is a cache: with none listening the gateway still starts SERVING and answers queries."""
    from designsearch.gateway.server import create_server
    from designsearch.procs import free_port
    from designsearch.v1 import gateway_pb2_grpc

    _, queries, _ = indexed
    url = stack["gateway"].core.catalogue.engine.url.render_as_string(hide_password=False)
    gateway = await create_server(make_gateway_settings(stack, tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                                        catalogue_url=url), ready_timeout_s=20)
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            h = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert h.status == health_pb2.HealthCheckResponse.SERVING
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[0].path.read_bytes()), k=3)
            r1 = await stub.FindSimilar(req, timeout=30)
            r2 = await stub.FindSimilar(req, timeout=30)
            assert len(r1.matches) == 3 and not r1.cache_hit and not r2.cache_hit
    finally:
        await gateway.stop(0)


async def test_readiness_follows_the_embedder(stack, tmp_path, embedder_model, make_gateway_settings):
    """The gateway says NOT_SERVING while its embedder is down and SERVING again within 2 s of its return."""
    import time

    from designsearch.gateway.server import create_server
    from designsearch.procs import free_port
    from designsearch.services.embedder.config import EmbedderSettings
    from designsearch.services.embedder.server import create_server as create_embedder

    port = free_port()
    embedder = await create_embedder(EmbedderSettings(port=port, model_path=embedder_model))
    settings = make_gateway_settings(stack, tmp_path, embedder_address=f"127.0.0.1:{port}", health_interval_s=0.2)
    gateway = await create_server(settings)

    async def status() -> int:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            r = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return r.status

    async def wait_for(expected: int, within_s: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < within_s:
            if await status() == expected:
                return time.monotonic() - t0
            await asyncio.sleep(0.05)
        raise AssertionError(f"health not {expected} within {within_s} s")

    try:
        assert await status() == health_pb2.HealthCheckResponse.SERVING
        await embedder.stop(0)
        await wait_for(health_pb2.HealthCheckResponse.NOT_SERVING, 5)
        embedder = await create_embedder(EmbedderSettings(port=port, model_path=embedder_model))
        assert await wait_for(health_pb2.HealthCheckResponse.SERVING, 5) <= 2.0
    finally:
        await gateway.stop(0)
        await embedder.stop(0)


async def test_tls_round_trip(indexed, stack, tmp_path, make_gateway_settings):
    """A gateway serving TLS from certificate files: a client trusting the CA is answered over TLS; a
    plaintext client is not."""
    import subprocess

    from designsearch.client import DesignSearchClient
    from designsearch.gateway.server import create_server

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    url = stack["gateway"].core.catalogue.engine.url.render_as_string(hide_password=False)
    gateway = await create_server(make_gateway_settings(stack, tmp_path, catalogue_url=url, tls_cert_file=str(cert),
                                                        tls_key_file=str(key)))
    try:
        address = f"localhost:{gateway.port}"

        def over_tls():
            with DesignSearchClient(address, tls_ca=cert.read_bytes(), timeout_s=10) as client:
                return client.stats()

        def plaintext():
            with DesignSearchClient(address, timeout_s=3) as client:
                return client.stats()

        stats = await asyncio.to_thread(over_tls)
        assert stats.images > 0
        with pytest.raises(grpc.RpcError):
            await asyncio.to_thread(plaintext)
        # the image's health check, as the TLS overlay's probes run it: a pod probes itself on 127.0.0.1 and
        # verifies the certificate for its Service name; a wrong name or plaintext is not SERVING
        import importlib.util

        from designsearch.settings import REPO_ROOT

        spec = importlib.util.spec_from_file_location("grpc_health_check", REPO_ROOT / "deploy" / "grpc_health_check.py")
        check = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(check)
        here = f"127.0.0.1:{gateway.port}"
        probe = ["grpc-health-check", "--tls-ca", str(cert), "--server-name"]
        assert await asyncio.to_thread(check.main, [*probe, "localhost", here]) == 0
        assert await asyncio.to_thread(check.main, [*probe, "segmenter", here]) == 1
        assert await asyncio.to_thread(check.main, ["grpc-health-check", here]) == 1
    finally:
        await gateway.stop(0)
