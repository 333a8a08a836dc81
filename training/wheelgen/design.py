"""Parametric wheel designs: a parameter vector per design, a stable ``design_id``, sampling, related variants.

A :class:`WheelDesign` is a point in a mixed discrete/continuous parameter space (style, spoke count,
spoke width, taper, twist, concavity, construction, ...). Units are fractions of the wheel's outer
rim radius (the rim face radius is 1 before the geometry scales the whole wheel to diameter 1), and
degrees for angles.

``design_id`` is ``"pw-"`` + 12 hex digits of the SHA-256 of the parameters quantised to the grid of
:data:`QUANTUM` (so a design written to the manifest and read back gets the same id, and ids do not
depend on float noise). Two designs are **different products** when :func:`design_distance` is at
least :data:`PRODUCT_DISTANCE`: the rule a designer would apply — a different style, spoke count or
construction always makes a different product; otherwise the continuous shape parameters must
differ by at least one "visible step" in total (each parameter's step in :data:`VISIBLE_STEP` is
the change a designer notices in a front view). :func:`sample_designs` rejects samples closer than
that to any earlier design. :func:`related_design` changes exactly one parameter by one to two
visible steps: the result is a different product that looks alike (a hard negative), marked with
``related_to`` in the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

#: Spoke styles. ``windows``: steel-wheel style disc with round holes; ``turbine``: many thin curved
#: vanes; ``dish``: a deep concave disc with short spokes; the others name their spokes.
STYLES = ("straight", "split", "y", "directional", "mesh", "multispoke", "windows", "turbine", "dish")
CONSTRUCTIONS = ("monoblock", "two_piece")
CAP_STYLES = ("none", "flat", "dome")

#: Spoke-count range per style (inclusive).
SPOKE_RANGE = {
    "straight": (4, 10), "split": (4, 10), "y": (3, 7), "directional": (5, 20), "mesh": (6, 12),
    "multispoke": (10, 20), "windows": (4, 12), "turbine": (10, 20), "dish": (5, 10),
}

#: Continuous parameters: (low, high) sampling range.
RANGES = {
    "spoke_width": (0.06, 0.22),     # spoke width at the hub, fraction of the face radius
    "taper": (0.0, 0.6),             # 1 - width at the rim / width at the hub
    "twist_deg": (0.0, 0.0),         # angular sweep of a spoke from hub to rim (style-dependent below)
    "split_gap": (0.02, 0.08),       # gap between the two arms of a split / Y spoke
    "crown": (0.0, 0.05),            # height of the raised centre ridge of a spoke
    "fillet": (0.005, 0.06),         # fillet radius of the window corners
    "concavity": (0.0, 0.35),        # depth of the face at the hub, behind the face edge
    "hub_radius": (0.2, 0.32),       # hub (spoke root) radius
    "lip_depth": (0.02, 0.25),       # step from the rim flange to the face
    "lip_width": (0.04, 0.12),       # radial width of the outer lip / face ring
    "barrel_width": (0.55, 0.85),    # barrel depth along the axle
    "bore_radius": (0.05, 0.09),     # centre bore
    "pcd_radius": (0.12, 0.18),      # lug-hole circle radius
    "pocket_depth": (0.0, 0.08),     # back pockets of the spokes
    "window_radius": (0.08, 0.2),    # hole radius of ``windows`` discs
}
#: Discrete parameters besides style / spokes / construction.
LUG_COUNTS = (4, 5, 6)

#: Quantisation grid of the continuous parameters (ids are computed on this grid).
QUANTUM = 1e-3
#: One "visible step" per continuous parameter (front view, 224 px picture of the wheel).
VISIBLE_STEP = {
    "spoke_width": 0.025, "taper": 0.15, "twist_deg": 12.0, "split_gap": 0.02, "crown": 0.02,
    "fillet": 0.02, "concavity": 0.08, "hub_radius": 0.04, "lip_depth": 0.06, "lip_width": 0.03,
    "barrel_width": 10.0, "bore_radius": 0.03, "pcd_radius": 0.04, "pocket_depth": 10.0,
    "window_radius": 0.03,
}
#: Minimum :func:`design_distance` between two different products.
PRODUCT_DISTANCE = 1.0


@dataclass(frozen=True)
class WheelDesign:
    """One rim design. All lengths are fractions of the face radius, angles in degrees.

    ``barrel_width`` and ``pocket_depth`` barely show from the front (their visible step is large), so
    they vary the geometry without making a new product on their own.
    """

    style: str
    spokes: int
    construction: str
    lugs: int
    cap: str
    spoke_width: float
    taper: float
    twist_deg: float
    split_gap: float
    crown: float
    fillet: float
    concavity: float
    hub_radius: float
    lip_depth: float
    lip_width: float
    barrel_width: float
    bore_radius: float
    pcd_radius: float
    pocket_depth: float
    window_radius: float
    rivets: int = 0

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; expected one of {', '.join(STYLES)}")
        if self.construction not in CONSTRUCTIONS:
            raise ValueError(f"unknown construction {self.construction!r}; expected one of {CONSTRUCTIONS}")
        lo, hi = SPOKE_RANGE[self.style]
        if not lo <= self.spokes <= hi:
            raise ValueError(f"style {self.style!r} takes {lo}-{hi} spokes, got {self.spokes}")

    @property
    def design_id(self) -> str:
        """Stable id: ``"pw-"`` + 12 hex of SHA-256 over the quantised parameters (see module doc)."""
        blob = json.dumps(self.quantised(), sort_keys=True, separators=(",", ":"))
        return "pw-" + hashlib.sha256(blob.encode()).hexdigest()[:12]

    def quantised(self) -> dict:
        """The parameters as a JSON-ready dict, continuous values rounded to :data:`QUANTUM`."""
        out = {}
        for k, v in asdict(self).items():
            out[k] = round(round(v / QUANTUM) * QUANTUM, 6) if isinstance(v, float) else v
        return out

    def to_json(self) -> str:
        """Compact JSON of :meth:`quantised` (the manifest's ``params`` column)."""
        return json.dumps(self.quantised(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WheelDesign:
        """Inverse of :meth:`to_json`. Raises ``ValueError`` on unknown or missing keys."""
        d = json.loads(text)
        names = {f.name for f in fields(cls)}
        if set(d) - names:
            raise ValueError(f"unknown design parameters: {sorted(set(d) - names)}")
        return cls(**d)


def design_distance(a: WheelDesign, b: WheelDesign) -> float:
    """How far apart two designs look, in visible steps.

    ``inf`` when style, spoke count or construction differ (always different products); otherwise the
    sum over continuous parameters of ``|a_k - b_k| / VISIBLE_STEP[k]`` plus one per differing lug
    count or cap style (an L1 distance on the visibility-normalised parameters).
    """
    if a.style != b.style or a.spokes != b.spokes or a.construction != b.construction:
        return float("inf")
    d = sum(abs(getattr(a, k) - getattr(b, k)) / s for k, s in VISIBLE_STEP.items())
    return d + (a.lugs != b.lugs) + (a.cap != b.cap)


def _style_ranges(style: str) -> dict[str, tuple[float, float]]:
    r = dict(RANGES)
    if style == "directional":
        r["twist_deg"] = (25.0, 70.0)
    elif style == "turbine":
        r["twist_deg"] = (30.0, 80.0)
        r["spoke_width"] = (0.03, 0.07)
    elif style in ("multispoke", "mesh"):
        r["spoke_width"] = (0.03, 0.08)
        r["twist_deg"] = (0.0, 10.0)
    elif style == "dish":
        r["concavity"] = (0.3, 0.5)
        r["hub_radius"] = (0.3, 0.45)
    elif style == "y":
        r["split_gap"] = (0.04, 0.1)
    return r


def random_design(rng: np.random.Generator, styles: tuple[str, ...] = STYLES) -> WheelDesign:
    """One design drawn uniformly: style from ``styles``, then each parameter in its range.

    Raises:
        ValueError: empty or unknown ``styles``.
    """
    if not styles:
        raise ValueError("no styles to draw from")
    bad = [s for s in styles if s not in STYLES]
    if bad:
        raise ValueError(f"unknown style(s) {bad}; expected any of {', '.join(STYLES)}")
    style = str(styles[int(rng.integers(len(styles)))])
    lo, hi = SPOKE_RANGE[style]
    ranges = _style_ranges(style)
    cont = {k: float(rng.uniform(a, b)) for k, (a, b) in ranges.items()}
    construction = "two_piece" if rng.random() < 0.25 else "monoblock"
    return _quantise(WheelDesign(
        style=style, spokes=int(rng.integers(lo, hi + 1)), construction=construction,
        lugs=int(LUG_COUNTS[int(rng.integers(len(LUG_COUNTS)))]),
        cap=str(CAP_STYLES[int(rng.integers(len(CAP_STYLES)))]),
        rivets=int(rng.choice([24, 30, 36, 40])) if construction == "two_piece" else 0, **cont))


def _quantise(d: WheelDesign) -> WheelDesign:
    return WheelDesign(**d.quantised())


def sample_designs(n: int, seed: int, styles: tuple[str, ...] = STYLES, related_fraction: float = 0.15,
                   max_tries: int = 50) -> list[tuple[WheelDesign, str | None]]:
    """``n`` designs, pairwise different products, about ``related_fraction`` of them related variants.

    Deterministic in ``seed``. A related variant (:func:`related_design` of an earlier design) comes
    with the parent's ``design_id``; other entries carry ``None``.

    Returns:
        ``[(design, related_to_or_None), ...]`` of length ``n``.

    Raises:
        ValueError: ``n < 1``, bad styles, or the space is too crowded to find ``n`` distinct designs.
    """
    if n < 1:
        raise ValueError(f"--designs must be at least 1, got {n}")
    rng = np.random.default_rng([seed, 29])
    out: list[tuple[WheelDesign, str | None]] = []
    seen: dict[str, WheelDesign] = {}
    groups: dict[tuple, list[WheelDesign]] = {}  # designs of one (style, spokes, construction): the only
    # ones within a finite distance
    while len(out) < n:
        for _ in range(max_tries):
            parent = None
            if out and rng.random() < related_fraction:
                parent = out[int(rng.integers(len(out)))][0]
                cand = related_design(parent, rng)
            else:
                cand = random_design(rng, styles)
            if cand.design_id in seen:
                continue
            key = (cand.style, cand.spokes, cand.construction)
            if all(design_distance(cand, o) >= PRODUCT_DISTANCE for o in groups.get(key, [])):
                break
        else:
            raise ValueError(f"could not draw {n} distinct designs from styles {styles} after {len(out)}")
        seen[cand.design_id] = cand
        groups.setdefault((cand.style, cand.spokes, cand.construction), []).append(cand)
        out.append((cand, parent.design_id if parent is not None else None))
    return out


#: Parameters a related variant may change.
RELATED_PARAMS = ("spoke_width", "taper", "concavity", "hub_radius", "lip_width", "crown", "fillet", "twist_deg",
                  "spokes", "cap")


def related_design(d: WheelDesign, rng: np.random.Generator) -> WheelDesign:
    """A look-alike: ``d`` with exactly one parameter changed (spoke count by ±1, cap style, or one
    continuous parameter by 1-2 visible steps, kept inside its range). The result is a different product
    (:func:`design_distance` ≥ :data:`PRODUCT_DISTANCE`) except when a spoke count is changed, which
    differs by definition.
    """
    ranges = _style_ranges(d.style)
    for _ in range(20):
        k = RELATED_PARAMS[int(rng.integers(len(RELATED_PARAMS)))]
        if k == "spokes":
            lo, hi = SPOKE_RANGE[d.style]
            n = d.spokes + (1 if rng.random() < 0.5 else -1)
            if lo <= n <= hi:
                return replace(d, spokes=n)
            continue
        if k == "cap":
            return _quantise(replace(d, cap=str(CAP_STYLES[(CAP_STYLES.index(d.cap) + 1) % len(CAP_STYLES)])))
        lo, hi = ranges[k]
        step = VISIBLE_STEP[k] * float(rng.uniform(1.05, 2.0)) * (1 if rng.random() < 0.5 else -1)
        for v in (getattr(d, k) + step, getattr(d, k) - step):
            if lo <= v <= hi:
                return _quantise(replace(d, **{k: float(v)}))
    return _quantise(replace(d, cap=str(CAP_STYLES[(CAP_STYLES.index(d.cap) + 1) % len(CAP_STYLES)])))
