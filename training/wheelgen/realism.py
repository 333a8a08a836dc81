"""How close the wheel-design engine's synthetic pictures come to REAL pictures: FID and KID.

Both metrics compare two sets of image features:

* Fréchet distance (FID; Heusel et al., "GANs trained by a two time-scale update rule converge to a
  local Nash equilibrium", NeurIPS 2017, eq. 6): ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``
  of the Gaussians fitted to the two sets (means ``mu``, unbiased covariances ``S``). It is biased
  upward at small sample sizes, the more so the higher the feature dimension.
* Kernel Inception Distance (KID; Bińkowski et al., "Demystifying MMD GANs", ICLR 2018, §3.4): the
  unbiased estimate of the squared MMD with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``,
  averaged over random subsets. Unbiased, so it is the better number for the small real sets here.

Features are not Inception-v3 ones but those of the project's ImageNet baseline embedder
(``var/models/imagenet-lite0.onnx``, written by ``designsearch export-embedder``): ImageNet-pretrained
EfficientNet-Lite0, its 1280 final feature maps globally average-pooled, then L2-normalised (unit
rows; ``training/embedder/model.py::EmbeddingNet`` with ``dim=None``). With unit rows, FID lies in
about ``[0, 4]`` and KID is small (``x.y / d`` is at most ``1/1280``): compare numbers with each
other and with the real-vs-real floor row, never with published Inception FIDs.

Real references (read from the shared data folder, ``$DESIGNSEARCH_DATA``): ``real_rims`` (the 189
car-parts-50 rim product shots), ``real_cars`` (the first 200 Car-Parts-Segmentation car photos, by
sorted file name; the reference of on-car composites) and ``real_cutouts`` (the 16 wheel-vision RGBA
cut-outs composited on white). Their features are cached as ``.npy`` under ``var/cache/realism/``.

CLI (:func:`main`): ``python -m designsearch.training.wheelgen.realism --manifest DIR/manifest.csv``.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import scipy.linalg

from designsearch.services.embedder.core import OnnxEmbedder
from designsearch.settings import IMAGENET_EMBEDDER_MODEL, VAR_DIR, default_data_dir

CACHE_DIR = VAR_DIR / "cache" / "realism"  #: default folder of the cached reference features
BATCH = 32  #: images per embedder run
REAL_CARS_N = 200  #: car photos of the ``real_cars`` reference (the first ones by sorted file name)

Model = OnnxEmbedder | str | Path | None


def _pair(feats_a: np.ndarray, feats_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    for name, x in (("feats_a", a), ("feats_b", b)):
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"{name} must be a 2-D array with at least 2 rows; got shape {x.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are a
    network's; Heusel et al. 2017): ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``.

    ``(S_a S_b)^{1/2}`` is :func:`scipy.linalg.sqrtm`, real part taken. When a set has fewer rows
    than dimensions it is taken of the smaller equivalent matrix ``C C^T`` with ``C = A B^T /
    sqrt((n_a - 1)(n_b - 1))`` (``A``, ``B`` the centred rows): its eigenvalues are the non-zero
    ones of ``S_a S_b``, so the trace is the same, exactly, at ``n x n`` rather than ``d x d`` cost.

    Args:
        feats_a: ``(n_a, d)`` features, any float dtype (computed in float64).
        feats_b: ``(n_b, d)`` features.

    Returns:
        The distance, in squared feature units, ``>= 0``.

    Raises:
        ValueError: a set is not 2-D or has fewer than 2 rows, or the dimensions differ.
    """
    a, b = _pair(feats_a, feats_b)
    (na, d), nb = a.shape, len(b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    trace_a, trace_b = float((ca * ca).sum()) / (na - 1), float((cb * cb).sum()) / (nb - 1)
    if min(na, nb) < d:
        c = ca @ cb.T / np.sqrt((na - 1) * (nb - 1))
        with warnings.catch_warnings():  # C C^T is symmetric PSD and singular (centred rows): sqrtm is exact
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm(c @ c.T if na <= nb else c.T @ c)
    else:
        s_a, s_b = ca.T @ ca / (na - 1), cb.T @ cb / (nb - 1)
        covmean = scipy.linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(covmean).all():  # singular product: offset the diagonals (as pytorch-fid)
            eye = np.eye(d) * 1e-6
            covmean = scipy.linalg.sqrtm((s_a + eye) @ (s_b + eye))
    diff = mu_a - mu_b
    value = float(diff @ diff) + trace_a + trace_b - 2.0 * float(np.trace(np.real(covmean)))
    return max(value, 0.0)


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 50,
                              subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD^2 estimate with the kernel
    ``k(x, y) = (x.y / d + 1)^3``, over ``subsets`` pairs of random subsets (drawn without replacement).

    Per subset pair ``X``, ``Y`` of ``m`` rows: ``sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j}
    k(y_i, y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i, y_j) / m^2``. It can be slightly negative (unbiased).

    Args:
        feats_a: ``(n_a, d)`` features, any float dtype (computed in float64).
        feats_b: ``(n_b, d)`` features.
        subsets: number of subset pairs, ``>= 1``.
        subset_size: rows per subset, capped at ``min(n_a, n_b)``.
        seed: seed of the subset draws.

    Returns:
        ``(mean, std)`` of the MMD^2 estimates over the subsets (std with ``ddof=0``; 0 when every
        subset is the whole set).

    Raises:
        ValueError: a set is not 2-D or has fewer than 2 rows, the dimensions differ, or
            ``subsets < 1`` / ``subset_size < 2``.
    """
    a, b = _pair(feats_a, feats_b)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2; got {subsets}, {subset_size}")
    m, d = min(subset_size, len(a), len(b)), a.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[s] = within - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


@lru_cache(maxsize=4)
def _embedder(path: str) -> OnnxEmbedder:
    return OnnxEmbedder(path, threads=1)


def _model(model: Model) -> OnnxEmbedder:
    """``model`` itself, else the (cached, 1-thread) embedder of its path or of the default ONNX file."""
    path = Path(model or IMAGENET_EMBEDDER_MODEL) if not isinstance(model, OnnxEmbedder) else None
    return model if path is None else _embedder(str(path.resolve()))


def lite0_features(images: Iterable[np.ndarray], model: Model = None) -> np.ndarray:
    """ImageNet EfficientNet-Lite0 features of RGB pictures, embedded 32 at a time.

    Args:
        images: ``uint8`` RGB arrays ``(H, W, 3)``, any size (squeezed to the model's 224 x 224);
            consumed lazily, so a generator keeps memory flat.
        model: an :class:`OnnxEmbedder`, or the path of an ONNX embedder (loaded with 1 thread);
            default ``var/models/imagenet-lite0.onnx``.

    Returns:
        float32 ``(N, D)`` unit rows (``D = 1280`` for the ImageNet model).

    Raises:
        FileNotFoundError: no model file (run ``designsearch export-embedder``).
        ValueError: an image is not a ``uint8`` ``(H, W, 3)`` array.
    """
    embedder = _model(model)
    out, batch = [], []
    for img in images:
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"images must be uint8 (H, W, 3) RGB arrays; got {getattr(img, 'shape', img)}")
        batch.append(img)
        if len(batch) == BATCH:
            out.append(embedder.embed(batch))
            batch = []
    out.append(embedder.embed(batch))
    return np.concatenate(out).astype(np.float32)


def read_picture(path: str | Path) -> np.ndarray:
    """A picture file as RGB ``uint8`` ``(H, W, 3)``, read with OpenCV (BGR -> RGB); a picture with an
    alpha channel (RGBA PNG) is composited on white (alpha = mask); grey is replicated; 16-bit is scaled.

    Raises:
        OSError: the file is missing or not decodable by OpenCV.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"cannot read picture {path}")
    img = (img // 257).astype(np.uint8) if img.dtype == np.uint16 else img
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = np.rint(img[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2RGB)


def features_of_files(paths: Iterable[str | Path], model: Model = None) -> np.ndarray:
    """:func:`lite0_features` of picture files (:func:`read_picture`): float32 ``(N, D)`` unit rows.

    Raises:
        OSError: a file is missing or not decodable.
        FileNotFoundError: no model file.
    """
    return lite0_features((read_picture(p) for p in paths), model)


def _labelled(folder: str, column: str, value: str) -> Callable[[Path], list[Path]]:
    def paths(data: Path) -> list[Path]:  # the files in labels.csv are relative to wheel-pictures/
        labels = data / "wheel-pictures" / folder / "labels.csv"
        if not labels.is_file():
            raise FileNotFoundError(f"reference labels not found: {labels} (set DESIGNSEARCH_DATA)")
        with open(labels, newline="") as f:
            return [labels.parents[1] / r["file"] for r in csv.DictReader(f) if r[column] == value]
    return paths


def _real_cars(data: Path) -> list[Path]:
    folder = data / "car-parts-seg" / "JPEGImages"
    if not folder.is_dir():
        raise FileNotFoundError(f"reference pictures not found: {folder} (set DESIGNSEARCH_DATA)")
    return sorted(folder.glob("*.jpg"))[:REAL_CARS_N]


#: The real reference sets: name -> the picture files under the data folder.
REFERENCES: dict[str, Callable[[Path], list[Path]]] = {
    "real_rims": _labelled("car-parts-50", "wheel", "rim"), "real_cars": _real_cars,
    "real_cutouts": _labelled("wheel-vision", "kind", "cutout_rgba")}


def reference_paths(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The picture files of the real reference set ``name`` (see :data:`REFERENCES`).

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the set is not in the data folder.
    """
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; known: {', '.join(REFERENCES)}")
    return REFERENCES[name](Path(data_dir) if data_dir else default_data_dir())


def reference_features(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                       model: Model = None) -> np.ndarray:
    """Features of a real reference set, cached as ``<cache_dir>/<name>-<model sha256 prefix>.npy``.

    Args:
        name: ``real_rims``, ``real_cars`` or ``real_cutouts``.
        data_dir: shared data folder (default ``$DESIGNSEARCH_DATA``, else ``../shared/data``).
        cache_dir: cache folder (default ``var/cache/realism``).
        model: as in :func:`lite0_features`.

    Returns:
        float32 ``(N, D)`` unit rows, in the order of :func:`reference_paths`.

    Raises:
        ValueError: unknown name (the message lists the known ones).
        FileNotFoundError: the set or the model is missing.
        OSError: a picture cannot be read.
    """
    paths = reference_paths(name, data_dir)
    embedder = _model(model)
    cache = Path(cache_dir or CACHE_DIR) / f"{name}-{embedder.version.split(':')[-1]}.npy"
    if cache.is_file():
        return np.load(cache)
    feats = features_of_files(paths, embedder)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(tmp := cache.with_suffix(".tmp.npy"), feats)
    tmp.replace(cache)  # atomic: a reader never sees half a file
    return feats


def distance_row(name: str, feats: np.ndarray, reference: str, ref: np.ndarray, bootstrap: int, seed: int) -> dict:
    """One row of :func:`realism_report` (its doc: FID with a bootstrap interval, KID) for features
    ``feats`` ``(N, D)`` against ``ref`` ``(M, D)``."""
    row: dict = {"set": name, "n": len(feats), "reference": reference, "n_ref": len(ref)}
    if len(feats) < 2:
        return row | {"fid": None, "fid_lo": None, "fid_hi": None, "kid": None, "kid_std": None,
                      "note": "fewer than 2 pictures"}
    rng, fid, n = np.random.default_rng(seed), frechet_distance(feats, ref), len(feats)
    boot = np.array([frechet_distance(feats[rng.integers(0, n, n)], ref) for _ in range(bootstrap)])
    ci = (np.percentile(boot, [2.5, 97.5]) + fid - boot.mean()).clip(0).tolist() if bootstrap else [None] * 2
    kid, kid_std = kernel_inception_distance(feats, ref, seed=seed)
    return row | {"fid": fid, "fid_lo": ci[0], "fid_hi": ci[1], "kid": kid, "kid_std": kid_std}


def realism_report(sets: dict[str, list[Path]], reference: str, *, data_dir: str | Path | None = None,
                   cache_dir: str | Path | None = None, model: Model = None, bootstrap: int = 20,
                   floor: bool = True, seed: int = 0) -> list[dict]:
    """FID and KID of each named set of pictures against a real reference set.

    Each row: ``set``, ``n`` (pictures), ``reference``, ``n_ref``, ``fid``, ``fid_lo`` / ``fid_hi``
    (2.5 / 97.5 percentiles of the FID of ``bootstrap`` resamples, with replacement, of the set, less
    the bootstrap bias estimate ``mean(boot) - fid`` (Efron & Tibshirani 1993, §10.2: duplicated
    pictures raise FID); it covers the set's sampling only, not the reference's), ``kid`` and
    ``kid_std`` (mean and std over 50 subsets of at most 100). A set of fewer than 2 pictures gets
    ``None`` values and a ``note``. With ``floor`` the last row is the reference split at random in
    two halves, one against the other: the value of a real-vs-real pair at this sample size (FID is
    biased upward at small ``n``, so compare sets of similar size).

    Raises:
        ValueError: unknown reference.
        FileNotFoundError: the reference set or the model is missing.
        OSError: a picture cannot be read.
    """
    embedder = _model(model)
    ref = reference_features(reference, data_dir, cache_dir, embedder)
    rows = [distance_row(name, features_of_files(paths, embedder), reference, ref, bootstrap, seed)
            for name, paths in sets.items()]
    if floor:
        perm = np.random.default_rng(seed).permutation(len(ref))
        a, b = ref[perm[:len(ref) // 2]], ref[perm[len(ref) // 2:]]
        rows.append(distance_row(f"{reference} half A (real floor)", a, f"{reference} half B", b, bootstrap, seed))
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`realism_report` as a markdown table."""
    def num(v: float | None, fmt: str = ".4f") -> str:
        return "-" if v is None else format(v, fmt)
    lines = ["| set | n | reference | n_ref | FID [95% boot] | KID x 1e3 (std) |", "|---" * 6 + "|"]
    for r in rows:
        kid = "-" if r["kid"] is None else f"{r['kid'] * 1e3:.3f} ({r['kid_std'] * 1e3:.3f})"
        lines.append(f"| {r['set']} | {r['n']} | {r['reference']} | {r['n_ref']} | {num(r['fid'])} "
                     f"[{num(r['fid_lo'])}, {num(r['fid_hi'])}] | {kid} |")
    return "\n".join(lines)


def manifest_sets(manifest: Path, kind: str | None = "render", group_by: Sequence[str] | None = None,
                  limit: int | None = None) -> dict[str, list[Path]]:
    """Picture sets of an engine manifest (CSV with columns ``file``, relative to its folder, and
    ``kind``): rows of ``kind`` (``None``: all), grouped by ``group_by`` (default ``variant`` when that
    column exists, else one group ``all``), each group's first ``limit`` pictures.

    Raises:
        FileNotFoundError: no manifest.
        ValueError: a needed column is missing.
    """
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        columns, rows = reader.fieldnames or [], list(reader)
    group_by = list(group_by) if group_by else (["variant"] if "variant" in columns else [])
    missing = [c for c in ["file", "kind", *group_by] if c not in columns]
    if missing:
        raise ValueError(f"{manifest} lacks column(s) {missing}; has {columns}")
    sets: dict[str, list[Path]] = {}
    for r in rows:
        if kind is None or r["kind"] == kind:
            name = ",".join(f"{c}={r[c]}" for c in group_by) or "all"
            sets.setdefault(name, []).append(manifest.parent / r["file"])
    return {k: v[:limit] for k, v in sorted(sets.items())}


def main(argv: list[str] | None = None) -> list[dict]:
    """CLI: FID / KID of the engine's pictures (``--manifest``) and/or picture folders (``--dirs``)
    against a real reference; prints a markdown table and writes the rows as JSON (``--out``) and
    the table beside it (``.md``). Returns the rows."""
    p = argparse.ArgumentParser(prog="python -m designsearch.training.wheelgen.realism",
                                description=__doc__.split("\n")[0])
    p.add_argument("--manifest", type=Path, help="the engine's manifest.csv")
    p.add_argument("--kind", default="render", help="manifest rows of this kind (render/oncar/drawing; all)")
    p.add_argument("--group-by", nargs="+", metavar="COLUMN", help="default: variant if present")
    p.add_argument("--dirs", nargs="+", default=[], metavar="NAME=GLOB", help="extra sets: mine='out/*.png'")
    p.add_argument("--reference", default="real_rims", choices=sorted(REFERENCES))
    p.add_argument("--out", type=Path, help="JSON file to write (and the markdown table as .md beside it)")
    p.add_argument("--limit", type=int, help="at most this many pictures per set (the first ones)")
    p.add_argument("--bootstrap", type=int, default=20, help="bootstrap resamples of the FID interval")
    p.add_argument("--no-floor", action="store_true", help="leave out the real-vs-real half-split row")
    for flag, default in (("--data-dir", None), ("--cache-dir", None), ("--model", IMAGENET_EMBEDDER_MODEL)):
        p.add_argument(flag, type=Path, default=default)
    args = p.parse_args(argv)
    sets: dict[str, list[Path]] = {}
    if args.manifest:
        try:
            kind = None if args.kind == "all" else args.kind
            sets |= manifest_sets(args.manifest, kind, args.group_by, args.limit)
        except (OSError, ValueError) as exc:
            p.error(str(exc))
    for spec in args.dirs:
        name, sep, pattern = spec.partition("=")
        if not sep or not name:
            p.error(f"--dirs wants NAME=GLOB; got {spec!r}")
        sets[name] = [Path(f) for f in sorted(glob.glob(pattern, recursive=True))][:args.limit]
    if not sets and args.no_floor:
        p.error("nothing to measure: give --manifest and/or --dirs")
    rows = realism_report(sets, args.reference, data_dir=args.data_dir, cache_dir=args.cache_dir,
                          model=args.model, bootstrap=args.bootstrap, floor=not args.no_floor)
    table = markdown_table(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"reference": args.reference, "model": _model(args.model).version, "rows": rows}
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table + "\n")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
