"""API keys are checked before a request's body is read (issue 34): over a real gRPC server with the
shared interceptor, a 30 MB message with a wrong or missing key is refused UNAUTHENTICATED without
being parsed or reaching its handler (a client stream too); with the right key the same methods work."""

from __future__ import annotations

import grpc
import pytest

from designsearch.server import ServiceInterceptor

MB = 1024 * 1024


async def test_a_wrong_key_is_refused_before_the_message_is_read():
    parsed: list[int] = []
    handled: list[int] = []

    def deserialize(data: bytes) -> bytes:
        parsed.append(len(data))
        return data

    async def echo(request: bytes, context) -> bytes:
        handled.append(len(request))
        return request[:10]

    async def count(request_iterator, context) -> bytes:
        n = 0
        async for r in request_iterator:
            n += len(r)
        handled.append(n)
        return str(n).encode()

    generic = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(echo, deserialize, bytes),
        "Stream": grpc.stream_unary_rpc_method_handler(count, deserialize, bytes)})
    server = grpc.aio.server(interceptors=[ServiceInterceptor(api_keys=["s3cret"])],
                             options=[("grpc.max_receive_message_length", 40 * MB)])
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    big = b"x" * (30 * MB)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                             options=[("grpc.max_send_message_length", 40 * MB)]) as channel:
            unary, stream = channel.unary_unary("/test.Echo/Unary"), channel.stream_unary("/test.Echo/Stream")
            for key in ([], [("x-api-key", "wrong")]):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await unary(big, metadata=key, timeout=30)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stream(iter([b"x" * 1000] * 3), metadata=key, timeout=30)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
            assert parsed == [] and handled == []  # no message was parsed, no handler ran
            assert await unary(b"hello", metadata=[("x-api-key", "s3cret")], timeout=10) == b"hello"
            assert await stream(iter([b"ab", b"cde"]), metadata=[("x-api-key", "s3cret")], timeout=10) == b"5"
            assert parsed == [5, 2, 3] and handled == [5, 5]
    finally:
        await server.stop(0)
