"""Gateway backends (``gateway.ports.Backends``) for the gateway core's unit tests without services: the
segmenter returns one centre crop with an elliptical mask, the embedder a unit vector hashed from the image
bytes and view, and search is the REAL search core (:class:`designsearch.services.search.core.SearchCore`
over the embedded Qdrant Edge engine, on disk in a temporary folder), called in-process: its grouping and
filters are the production ones."""

from __future__ import annotations

import hashlib
import tempfile
import uuid

import cv2
import numpy as np

from designsearch.domain import KIND_WHEEL, SearchFilter
from designsearch.errors import BackendUnavailable
from designsearch.images import decode_image, encode_png
from designsearch.gateway.ports import Region, Segmentation

DIM = 16


def _vector(data: bytes, view: str) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(data + view.encode()).digest()[:8], "little"))
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class MemoryBackends:
    """In-process segmenter (centre crop), embedder (hash → unit vector) and the real search core.

    Args:
        index_dir: folder of the embedded search engine (default: a fresh temporary folder, removed by
            :meth:`close`).
    """

    def __init__(self, index_dir: str | None = None) -> None:
        from designsearch.services.search.core import SearchCore
        from designsearch.services.search.engines import open_index
        from designsearch.services.search.index import HnswConfig

        self._tmp = None if index_dir else tempfile.TemporaryDirectory(prefix="memory-backends-")
        path = index_dir or self._tmp.name
        self.search = SearchCore(open_index(None, path, "edge", HnswConfig()))
        self.segmenter_model = "learned:sha256:aaaa"
        self.embedder_model = f"sha256:{uuid.uuid4().hex[:16]}"  # fresh cache keys per test
        self.segment_calls = 0
        self.mirror_flags: list[list[bool]] = []  # mirror_average of each embed call
        self.rotation_counts: list[list[int]] = []  # rotated_copies of each embed call
        self.embed_views: list[list[str]] = []  # views of each embed call
        self.segment_kind = KIND_WHEEL  # kind of the one crop the in-memory segmenter returns
        self.searched_views: list[list[str]] = []  # catalogue vector of each search, per search_designs_many call
        self.per_design: list[int] = []  # points asked per design, per search_designs_many call

    async def segment(self, image: bytes, max_crops: int) -> Segmentation:
        self.segment_calls += 1
        rgb = decode_image(image)
        h, w = rgb.shape[:2]
        box = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        mask = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)  # the wheel: an ellipse filling the box
        cv2.ellipse(mask, (mask.shape[1] // 2, mask.shape[0] // 2), (mask.shape[1] // 2, mask.shape[0] // 2), 0, 0, 360,
                    255, -1)
        # the crop as pixels, as the segmenter sends it to the gateway
        crop = Region(box, self.segment_kind, 0.9, np.ascontiguousarray(rgb[box[1]:box[3], box[0]:box[2]]), encode_png(mask))
        return Segmentation([crop][:max_crops], self.segmenter_model, "", w, h)

    async def segmenter_version(self) -> str:
        return self.segmenter_model

    async def embed(self, images, views, version, mirror_average=(), rotated_copies=()):
        if version != self.embedder_model:
            raise BackendUnavailable(f"no embedder serves {version}")
        self.mirror_flags.append(list(mirror_average))
        self.rotation_counts.append(list(rotated_copies))
        self.embed_views.append(list(views))
        images = [b.tobytes() if isinstance(b, np.ndarray) else b for b in images]
        copies = [b + f"@rot{r}".encode() for b, c in zip(images, rotated_copies) for r in range(1, c + 1)]
        return [{v: _vector(b, "photo") for v in views} for b in [*images, *copies]], self.embedder_model

    async def model_infos(self):
        return [(self.embedder_model, DIM)]

    # -- search: the real core, in-process -------------------------------------------------------

    async def resolve_alias(self, alias):
        return self.search.list_collections([alias])[1].get(alias)

    async def create_collection(self, name, vectors):
        return self.search.create_collection(name, dict(vectors))

    async def collection_vectors(self, collection):
        return self.search.vector_dims(collection)

    async def delete_collection(self, name):
        self.search.delete_collection(name)

    async def set_alias(self, alias, collection):
        self.search.set_alias(alias, collection)

    async def upsert(self, collection, points):
        self.search.upsert(collection, list(points))

    async def search_designs_many(self, collection, queries, per_design=1):
        self.searched_views.append([q[1] for q in queries])
        self.per_design.append(per_design)
        return [self.search.search(collection, vector, using, limit, flt, True, per_design)
                for vector, using, limit, flt in queries]

    async def count(self, collection):
        return self.search.count(collection, SearchFilter())

    async def delete_points(self, collection, ids):
        self.search.delete(collection, list(ids))

    async def get_points(self, collection, ids):
        return self.search.get_points(collection, list(ids))

    async def group_centroid(self, collection, using, flt):
        return self.search.group_centroid(collection, using, flt)

    def points(self, collection: str) -> list:
        """Every stored point of ``collection`` (vectors and payloads), for assertions."""
        return list(self.search.index.iter_points(collection))

    async def check(self):
        return []

    async def close(self):
        self.search.index.close()
        if self._tmp is not None:
            self._tmp.cleanup()
