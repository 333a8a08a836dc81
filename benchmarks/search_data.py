"""Synthetic embedding data, payloads, exact ground truth and measurement helpers of ``search_bench.py``
(the data model is described in that module's docstring)."""

from __future__ import annotations

import time
import uuid

import numpy as np

D = 512
N_CLUSTERS = 2000
LOCAL_DIM = 16
N_BRANDS = 100
K = 10
FILTERS = {
    "f1": {"brands": ["brand-007"]},  # ~1%
    "f25": {"year_min": 2012, "year_max": 2017},  # 6 of 24 years = 25%
}


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class DataGen:
    """Clustered embedding-like vectors (see module docstring). Deterministic per seed."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        g = _unit(rng.normal(size=D))
        self.centres = _unit(0.5 * g + _unit(rng.normal(size=(N_CLUSTERS, D)))).astype(np.float32)
        w = 1.0 / np.arange(1, N_CLUSTERS + 1) ** 0.5
        self.weights = w / w.sum()
        self.spread = rng.uniform(0.35, 0.6, size=N_CLUSTERS).astype(np.float32)
        self.residual = 0.25
        self.basis_seed = seed + 1000

    def _basis(self, k: int) -> np.ndarray:
        rng = np.random.default_rng((self.basis_seed, k))
        q, _ = np.linalg.qr(rng.normal(size=(D, LOCAL_DIM)))
        return q.astype(np.float32)  # (D, LOCAL_DIM), orthonormal columns

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (vectors float32 (n, D) unit-norm, cluster ids int32 (n,))."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(N_CLUSTERS, size=n, p=self.weights).astype(np.int32)
        out = np.empty((n, D), np.float32)
        order = np.argsort(labels, kind="stable")
        sorted_labels = labels[order]
        bounds = np.flatnonzero(np.diff(sorted_labels)) + 1
        for idx in np.split(order, bounds):
            if len(idx) == 0:
                continue
            k = int(labels[idx[0]])
            z = rng.normal(size=(len(idx), LOCAL_DIM)).astype(np.float32) / np.sqrt(LOCAL_DIM)
            eps = rng.normal(size=(len(idx), D)).astype(np.float32) / np.sqrt(D)
            out[idx] = self.centres[k] + self.spread[k] * (z @ self._basis(k).T) + self.residual * eps
        return _unit(out).astype(np.float32), labels


def make_payloads(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(labels)
    return {
        "brand": rng.integers(N_BRANDS, size=n).astype(np.int16),
        "year": (2000 + rng.integers(24, size=n)).astype(np.int16),
        "hubcap": rng.random(n) < 0.1,
        "sub": rng.integers(20, size=n).astype(np.int16),
    }


def payload_dict(pl: dict[str, np.ndarray], labels: np.ndarray, i: int) -> dict:
    return {
        "design_id": f"d{int(labels[i]):04d}-{int(pl['sub'][i]):02d}",
        "brand": f"brand-{int(pl['brand'][i]):03d}",
        "model": f"model-{int(labels[i]) % 300}",
        "year": int(pl["year"][i]),
        "kind": "hubcap" if pl["hubcap"][i] else "wheel",
        "model_version": "bench-v1",
    }


def filter_mask(pl: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name == "f1":
        return pl["brand"] == 7
    if name == "f25":
        return (pl["year"] >= 2012) & (pl["year"] <= 2017)
    raise KeyError(name)


def point_ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=(0xB3 << 120) | i)) for i in range(n)]


def point_index(point_id: str) -> int:
    """Row number encoded in a benchmark point id (inverse of :func:`point_ids`)."""
    return uuid.UUID(point_id).int & ((1 << 120) - 1)


def exact_topk(X: np.ndarray, Q: np.ndarray, k: int, rows: np.ndarray | None = None, block: int = 65536):
    """Exact cosine top-k of unit vectors. Returns (ids int64 (nq,k), scores float32 (nq,k))."""
    nq = len(Q)
    best_s = np.full((nq, k), -np.inf, np.float32)
    best_i = np.zeros((nq, k), np.int64)
    n = len(X) if rows is None else len(rows)
    for start in range(0, n, block):
        idx = np.arange(start, min(start + block, n)) if rows is None else rows[start : start + block]
        S = Q @ (X[start : start + block] if rows is None else X[idx]).T
        cat_s = np.concatenate([best_s, S], axis=1)
        cat_i = np.concatenate([best_i, np.broadcast_to(idx, S.shape)], axis=1)
        part = np.argpartition(-cat_s, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(cat_s, part, 1)
        best_i = np.take_along_axis(cat_i, part, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1), np.take_along_axis(best_s, order, 1)


# ----------------------------------------------------------------------------------------------
# child-side helpers
# ----------------------------------------------------------------------------------------------


def proc_status() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in MB (from /proc/self/status)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = round(int(val.split()[0]) / 1024, 1)
    return out


def latency_stats(lat_s: list[float]) -> dict[str, float]:
    a = np.asarray(lat_s) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3), "n": len(a)}


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean recall@k: fraction of the exact top-k ids found."""
    hits = 0
    total = 0
    for f, t in zip(found, truth):
        ts = set(int(x) for x in t)
        hits += len(ts & set(f))
        total += len(t)
    return round(hits / max(1, total), 4)


def run_queries(search, Q: np.ndarray, flt) -> tuple[list[list[int]], list[float]]:
    found, lat = [], []
    for q in Q:
        t0 = time.perf_counter()
        hits = search(q, flt)
        lat.append(time.perf_counter() - t0)
        found.append(hits)
    return found, lat


def _search_filter(name: str | None):
    from designsearch.services.search.index import SearchFilter

    if name is None:
        return None
    spec = FILTERS[name]
    return SearchFilter(
        brands=tuple(spec.get("brands", ())), year_min=spec.get("year_min"), year_max=spec.get("year_max")
    )
