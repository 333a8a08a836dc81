"""The embedder's adaptive batcher on the real model: concurrent requests share model calls, each gets
exactly its own rows, and a failing model call fails its requests without stopping the worker."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from designsearch.images import read_image
from designsearch.services.embedder.core import AdaptiveBatcher, OnnxEmbedder


@pytest.fixture(scope="module")
def embedder(embedder_model) -> OnnxEmbedder:
    return OnnxEmbedder(embedder_model, threads=2)


@pytest.fixture(scope="module")
def pictures(small_catalogue) -> list[np.ndarray]:
    catalogue, _ = small_catalogue
    return [read_image(str(img.path)) for img in catalogue[:8]]


async def test_concurrent_requests_share_model_calls_and_get_their_own_rows(embedder, pictures):
    calls: list[int] = []
    run = embedder.embed_inputs

    def counting(batch):
        calls.append(len(batch))
        return run(batch)

    embedder.embed_inputs = counting  # count model calls on the real model
    try:
        batcher = AdaptiveBatcher(embedder, max_batch_size=32, max_batch_time_s=0.0)
        inputs = [embedder.preprocess([p]) for p in pictures]
        vectors = await asyncio.gather(*[batcher.embed_inputs(x) for x in inputs])
        await batcher.stop()
    finally:
        embedder.embed_inputs = run
    assert sum(calls) == len(pictures) and len(calls) < len(pictures), calls  # batched, nothing lost
    alone = embedder.embed(pictures)
    for i, v in enumerate(vectors):
        assert v.shape == (1, embedder.dim)
        np.testing.assert_allclose(v[0], alone[i], atol=2e-5)


async def test_a_failing_model_call_fails_its_requests_and_the_worker_goes_on(embedder, pictures):
    batcher = AdaptiveBatcher(embedder, max_batch_size=32, max_batch_time_s=0.0)
    bad = np.zeros((1, 3, 10, 10), np.float32)  # wrong input size: onnxruntime refuses it
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    with pytest.raises(InvalidArgument, match="pixels"):  # the model's own refusal, not any error
        await batcher.embed_inputs(bad)
    ok = await batcher.embed([pictures[0]])
    await batcher.stop()
    assert ok.shape == (1, embedder.dim) and abs(float(np.linalg.norm(ok[0])) - 1) < 1e-5


async def test_instances_split_a_request_and_keep_its_rows_in_order(embedder_model, embedder, pictures):
    """Two model instances: a lone request of several images runs on both at once (one part each), concurrent
    requests still share model calls, and every request gets its own rows in order."""
    instances = [OnnxEmbedder(embedder_model, threads=1) for _ in range(2)]
    calls: list[list[int]] = [[], []]
    runs = [e.embed_inputs for e in instances]
    for k, e in enumerate(instances):
        e.embed_inputs = lambda batch, k=k: (calls[k].append(len(batch)), runs[k](batch))[1]
    batcher = AdaptiveBatcher(instances, max_batch_size=32, max_batch_time_s=0.0)
    try:
        lone = await batcher.embed(pictures)
        assert sorted(calls[0] + calls[1]) == [4, 4], calls  # split in two, one part per instance
        together = await asyncio.gather(*[batcher.embed([p]) for p in pictures * 3])
    finally:
        await batcher.stop()
    assert sum(calls[0] + calls[1]) == 8 + 24 and len(calls[0] + calls[1]) < 2 + 24, calls  # batched, nothing lost
    alone = embedder.embed(pictures)
    np.testing.assert_allclose(lone, alone, atol=2e-5)
    for i, v in enumerate(together):
        np.testing.assert_allclose(v[0], alone[i % len(pictures)], atol=2e-5)
    with pytest.raises(ValueError):
        AdaptiveBatcher([])
