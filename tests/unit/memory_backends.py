"""In-memory gateway backends (``gateway.ports.Backends``) for the gateway core's unit tests: the segmenter
returns one centre crop with an elliptical mask, the embedder a unit vector hashed from the image bytes
and view, and search is brute force over the stored points."""

from __future__ import annotations

import hashlib
import uuid

import cv2
import numpy as np

from designsearch.domain import KIND_WHEEL, Hit, SearchFilter
from designsearch.errors import BackendUnavailable
from designsearch.images import decode_image, encode_png
from designsearch.gateway.ports import QueryCrop, Segmentation

DIM = 16


def _vector(data: bytes, view: str) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(data + view.encode()).digest()[:8], "little"))
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class MemoryBackends:
    """In-memory segmenter (centre crop), embedder (hash → unit vector) and brute-force search."""

    def __init__(self) -> None:
        self.segmenter_model = "learned:sha256:aaaa"
        self.embedder_model = f"sha256:{uuid.uuid4().hex[:16]}"  # fresh cache keys per test
        self.segment_calls = 0
        self.mirror_flags: list[list[bool]] = []  # mirror_average of each embed call
        self.rotation_counts: list[list[int]] = []  # rotated_copies of each embed call
        self.embed_views: list[list[str]] = []  # views of each embed call
        self.segment_kind = KIND_WHEEL  # kind of the one crop the in-memory segmenter returns
        self.searched_views: list[list[str]] = []  # catalogue vector of each search, per search_designs_many call
        self.per_design: list[int] = []  # points asked per design, per search_designs_many call
        self.collections: dict[str, dict] = {}
        self.collection_dims: dict[str, dict[str, int]] = {}
        self.aliases: dict[str, str] = {}

    async def segment(self, image: bytes, max_crops: int) -> Segmentation:
        self.segment_calls += 1
        rgb = decode_image(image)
        h, w = rgb.shape[:2]
        box = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        mask = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)  # the wheel: an ellipse filling the box
        cv2.ellipse(mask, (mask.shape[1] // 2, mask.shape[0] // 2), (mask.shape[1] // 2, mask.shape[0] // 2), 0, 0, 360,
                    255, -1)
        # the crop as pixels, as the segmenter sends it to the gateway
        crop = QueryCrop(box, self.segment_kind, 0.9, np.ascontiguousarray(rgb[box[1]:box[3], box[0]:box[2]]), encode_png(mask))
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

    async def resolve_alias(self, alias):
        return self.aliases.get(alias)

    async def create_collection(self, name, vectors):
        created = name not in self.collections
        self.collections.setdefault(name, {})
        self.collection_dims.setdefault(name, dict(vectors))
        return created

    async def collection_vectors(self, collection):
        return dict(self.collection_dims[self.aliases.get(collection, collection)])

    async def delete_collection(self, name):
        self.collections.pop(name, None)
        self.collection_dims.pop(name, None)

    async def set_alias(self, alias, collection):
        self.aliases[alias] = collection

    async def upsert(self, collection, points):
        for p in points:
            self.collections[self.aliases.get(collection, collection)][p.id] = p

    async def _search(self, collection, vector, using, limit, flt: SearchFilter, per_design=1):
        by_design: dict[str, list[Hit]] = {}
        for p in self.collections[self.aliases.get(collection, collection)].values():
            if flt.kinds and p.payload["kind"] not in flt.kinds or p.payload["design_id"] in flt.exclude_design_ids:
                continue
            if using not in p.vectors:  # a point may hold a subset of the named vectors
                continue
            by_design.setdefault(p.payload["design_id"], []).append(Hit(p.id, float(p.vectors[using] @ vector), p.payload))
        groups = sorted((sorted(hits, key=lambda h: -h.score)[:per_design] for hits in by_design.values()),
                        key=lambda g: -g[0].score)[:limit]
        return [h for g in groups for h in g]

    async def search_designs_many(self, collection, queries, per_design=1):
        self.searched_views.append([q[1] for q in queries])
        self.per_design.append(per_design)
        return [await self._search(collection, *q, per_design=per_design) for q in queries]

    async def count(self, collection):
        return len(self.collections[self.aliases.get(collection, collection)])

    async def delete_points(self, collection, ids):
        for i in ids:
            self.collections[self.aliases.get(collection, collection)].pop(i, None)

    async def get_points(self, collection, ids):
        stored = self.collections[self.aliases.get(collection, collection)]
        return [stored[i] for i in ids if i in stored]

    async def check(self):
        return []

    async def close(self):
        pass
