"""Embedder domain logic (no grpc): ONNX inference and an adaptive batcher.

The batcher follows SeldonIO/MLServer's adaptive batching: requests are queued, a worker takes up
to ``max_batch_size`` items or whatever arrived within ``max_batch_time`` of the first one, runs
one model call, and resolves each request's future with its own rows. With ``max_batch_time`` 0
(the default on CPU) it is continuous batching: a lone request runs at once, and a batch is whatever
queued while the previous model call ran, so batching adds no latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import Counter, Histogram

from designsearch.domain import VIEW_PHOTO, VIEWS
from designsearch.errors import InvalidArgument
from designsearch.images import decode_image, edge_map, to_model_input
from designsearch.versioning import file_version
from designsearch.onnx import make_session

EMBEDDED_IMAGES = Counter("designsearch_embedder_images_total", "Images run through the embedding model")
BATCH_SIZE = Histogram("designsearch_embedder_batch_size", "Images per model call", buckets=(1, 2, 4, 8, 16, 32, 64))


class OnnxEmbedder:
    """An ONNX embedding model: raw RGB pixels → unit-norm float32 vectors.

    The model contract (see ``training/embedder/model.py``): input ``pixels`` float32
    ``(N, 3, S, S)`` RGB in [0, 255]; output ``embedding`` float32 ``(N, D)``, unit L2 norm.

    Args:
        path: ONNX file.
        providers: execution providers in preference order; those not available are skipped.
        threads: intra-op threads.
        spinning: onnxruntime threads busy-wait between runs (see :func:`designsearch.onnx.make_session`).

    Raises:
        FileNotFoundError: missing model file.
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 2,
                 spinning: bool = False) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"embedder model not found: {path} (run `designsearch export-embedder`)")
        self.session = make_session(path, threads, providers, spinning)
        self.providers = self.session.get_providers()
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        size = inp.shape[2]
        self.input_size = int(size) if isinstance(size, int) else 224
        self.dim = int(self.session.get_outputs()[0].shape[1])
        self.version = file_version(path)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Embed RGB images.

        Args:
            images: ``uint8`` arrays ``(H, W, 3)``.

        Returns:
            float32 ``(N, D)``, rows of unit L2 norm.
        """
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_inputs(self.preprocess(images))

    def preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        """The model input of RGB ``uint8`` images: float32 ``(N, 3, S, S)`` (:func:`to_model_input`)."""
        return to_model_input(images, self.input_size)

    def embed_inputs(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a preprocessed batch, float32 ``(N, 3, S, S)`` → float32 ``(N, D)`` unit rows."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.session.run(None, {self.input_name: batch})[0].astype(np.float32)
        EMBEDDED_IMAGES.inc(len(batch))
        BATCH_SIZE.observe(len(batch))
        # Re-normalise in float32 so every stored vector is unit norm whatever the graph did.
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@dataclass
class _Job:
    inputs: np.ndarray  # preprocessed, float32 (N, 3, S, S)
    future: asyncio.Future


class AdaptiveBatcher:
    """Groups concurrent embedding requests into model calls. Requests arrive preprocessed (decoded,
    resized; done in the caller's thread, overlapping the model's run), so the model thread only
    concatenates and runs the network.

    With several model instances (sessions of one model file), each has a worker taking batches from the
    one queue, and a request of several images is split into one part per instance, so that alone it
    still runs on every instance at once (data parallelism instead of onnxruntime's intra-op threads;
    see ``benchmarks/embedder_service_bench.py`` for when it pays).

    Args:
        embedder: the model, or its instances (sessions of the same file: same version and input size).
        max_batch_size: most images per model call.
        max_batch_time_s: longest wait, after the first queued image, for more images.

    Raises:
        ValueError: no instance, or instances of different model versions.
    """

    def __init__(self, embedder: OnnxEmbedder | Sequence[OnnxEmbedder], max_batch_size: int = 32,
                 max_batch_time_s: float = 0.005) -> None:
        self.instances = [embedder] if isinstance(embedder, OnnxEmbedder) else list(embedder)
        if not self.instances or len({e.version for e in self.instances}) != 1:
            raise ValueError("an adaptive batcher needs one or more instances of one model")
        self.embedder = self.instances[0]
        self.max_batch_size = max_batch_size
        self.max_batch_time_s = max_batch_time_s
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._workers: list[asyncio.Task] = []
        self._idle = 0  # workers waiting on the queue

    def start(self) -> None:
        """Start one worker task per instance on the running loop."""
        if not self._workers:
            self._workers = [asyncio.create_task(self._run(e)) for e in self.instances]

    async def stop(self) -> None:
        """Stop the workers; queued jobs are cancelled."""
        for worker in self._workers:
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass
        self._workers = []

    async def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Preprocess RGB ``uint8`` ``images`` in a thread, queue them and wait for their vectors,
        float32 ``(len(images), D)``."""
        return await self.embed_inputs(await asyncio.to_thread(self.embedder.preprocess, images))

    async def embed_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Queue a preprocessed batch, float32 ``(N, 3, S, S)`` (split into one part per instance), and wait
        for its vectors, float32 ``(N, D)``."""
        if not self._workers:
            self.start()
            await asyncio.sleep(0)  # let the workers reach the queue, so the parts go to different ones
        parts = np.array_split(inputs, min(len(self.instances), len(inputs))) if len(inputs) > 1 else [inputs]
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in parts]
        for part, future in zip(parts, futures):
            self._queue.put_nowait(_Job(part, future))
        vectors = await asyncio.gather(*futures)  # a failed part fails the request; every part's outcome is read
        return vectors[0] if len(vectors) == 1 else np.concatenate(vectors)

    async def _run(self, embedder: OnnxEmbedder) -> None:
        while True:
            self._idle += 1
            try:
                jobs = [await self._queue.get()]
            finally:
                self._idle -= 1
            count = len(jobs[0].inputs)
            deadline = time.monotonic() + self.max_batch_time_s
            # a worker waiting for work takes the next job: batches grow only while every instance is busy
            while count < self.max_batch_size and not self._idle:
                if not self._queue.empty():  # whatever queued while the previous batch ran: no waiting
                    job = self._queue.get_nowait()
                    jobs.append(job)
                    count += len(job.inputs)
                    continue
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                jobs.append(job)
                count += len(job.inputs)
            try:
                vectors = await asyncio.to_thread(self._embed_chunked, embedder, [job.inputs for job in jobs])
            except Exception as exc:  # resolve every waiting request, keep the worker alive
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                n = len(job.inputs)
                if not job.future.done():
                    job.future.set_result(vectors[start : start + n])
                start += n

    def _embed_chunked(self, embedder: OnnxEmbedder, inputs: list[np.ndarray]) -> np.ndarray:
        batch = np.concatenate(inputs) if len(inputs) > 1 else inputs[0]
        parts = [embedder.embed_inputs(batch[i : i + self.max_batch_size])
                 for i in range(0, len(batch), self.max_batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)


class EmbedService:
    """Decodes request images, builds the requested views and embeds them through the batcher.

    Args:
        batcher: the adaptive batcher over the model.
        max_images: most images per request.
    """

    def __init__(self, batcher: AdaptiveBatcher, max_images: int = 64) -> None:
        self.batcher = batcher
        self.max_images = max_images

    @property
    def version(self) -> str:
        """Model version id."""
        return self.batcher.embedder.version

    async def embed(self, encoded: list[bytes | np.ndarray], views: list[str], mirror_average: list[bool] | None = None,
                    rotated_copies: list[int] | None = None) -> list[dict[str, np.ndarray]]:
        """Embed each image in each view.

        Args:
            encoded: encoded image files, or decoded ``uint8`` ``(H, W, 3)`` RGB pixels (not decoded again;
                at the model's input size, square, not resized either).
            views: subset of :data:`designsearch.domain.VIEWS` (``photo``, ``lines``); empty = ``["photo"]``.
            mirror_average: per image (empty or None = none): also embed its mirror image (left-right
                flip of the model input; for ``lines``, of the line drawing) and return the normalised
                mean of the two vectors, so an image and its mirror image get one vector (flip
                test-time augmentation; e.g. Simonyan & Zisserman, ICLR 2015, "multi-crop and flip"
                evaluation). Costs one more model run per flagged image and view.
            rotated_copies: per image (empty or None = none): 0-3 extra copies of it rotated by 90, 180
                and 270 degrees counter-clockwise (the square model input turned: exact), each embedded
                like its image (mirror averaging included). One more model run per copy and view.

        Returns:
            One dict per image (view → float32 ``(D,)`` unit vector), then one per rotated copy: image
            by image, then by angle.

        Raises:
            InvalidArgument: no images, too many, an unknown view, ``mirror_average`` or
                ``rotated_copies`` neither empty nor one value per image, a copy count outside 0-3, more
                than ``2 * max_images`` model inputs in all (views, copies and mirror images counted).
            InvalidImage: an image cannot be decoded.
        """
        views = list(dict.fromkeys(views or [VIEW_PHOTO]))
        unknown = [v for v in views if v not in VIEWS]
        if unknown:
            raise InvalidArgument(f"unknown views {unknown}; expected a subset of {list(VIEWS)}", field="views")
        if not encoded:
            raise InvalidArgument("no images to embed", field="images")
        if len(encoded) > self.max_images:
            raise InvalidArgument(f"{len(encoded)} images in one request; the limit is {self.max_images}", field="images")
        mirror = list(mirror_average or [])
        if mirror and len(mirror) != len(encoded):
            raise InvalidArgument(f"{len(mirror)} mirror_average flags for {len(encoded)} images; send none or one per image",
                                  field="mirror_average")
        copies = list(rotated_copies or [])
        if copies and len(copies) != len(encoded):
            raise InvalidArgument(f"{len(copies)} rotated_copies counts for {len(encoded)} images; send none or one per "
                                  "image", field="rotated_copies")
        if any(c < 0 or c > 3 for c in copies):
            raise InvalidArgument(f"rotated_copies must be 0-3 per image; got {copies}", field="rotated_copies")
        # slots: the images, then each rotated copy (source image, quarter turns)
        slots = [(i, 0) for i in range(len(encoded))] + [(i, r) for i, c in enumerate(copies) for r in range(1, c + 1)]
        nv = len(views)
        # rows of the mirror-averaged slots' views; their mirror images are appended after all rows
        rows = [s * nv + j for s, (i, _) in enumerate(slots) if mirror and mirror[i] for j in range(nv)]
        model_inputs = len(slots) * nv + len(rows)
        if model_inputs > 2 * self.max_images:  # memory: each input is 3 x S x S float32 (0.6 MB at 224 px)
            raise InvalidArgument(f"{model_inputs} model inputs in one request (images and their rotated_copies x "
                                  f"views, mirror_average counted twice); the limit is {2 * self.max_images}",
                                  field="rotated_copies")
        embedder = self.batcher.embedder

        def prepare() -> np.ndarray:  # decode, draw the line views, resize: off the event loop and the model thread
            rgbs = [b if isinstance(b, np.ndarray) else decode_image(b) for b in encoded]
            base = embedder.preprocess([rgb if view == VIEW_PHOTO else edge_map(rgb) for rgb in rgbs for view in views])
            inputs = np.concatenate([base] + [np.rot90(base[i * nv:(i + 1) * nv], r, axes=(2, 3))
                                              for i, r in slots[len(encoded):]]) if len(slots) > len(encoded) else base
            if not rows:
                return inputs
            return np.concatenate([inputs, inputs[rows][..., ::-1]])  # mirror images: width axis flipped

        inputs = await asyncio.to_thread(prepare)
        vectors = await self.batcher.embed_inputs(inputs)
        n = len(slots) * nv
        if rows:
            mean = vectors[rows] + vectors[n:]
            vectors = vectors[:n].copy()
            vectors[rows] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return [{view: vectors[s * nv + j] for j, view in enumerate(views)} for s in range(len(slots))]
