"""Wheel-design engine: speed on this machine and realism per step (FID / KID against REAL pictures).

    .venv/bin/python benchmarks/wheelgen_bench.py [--designs 100] [--timing-designs 30]

1. Timing: ``render-wheels`` with the default recipe (8 views, drawings, 1 on-car picture per design)
   on ``--timing-designs`` designs, 2 workers; the wall time per design gives the default set's time.
2. Realism: one set per variant of :data:`designsearch.training.wheelgen.jobs.VARIANTS` (the same
   designs, views and seeds; each variant switches one realism step off), ``--designs`` designs × 2
   studio views + 1 on-car picture. Studio renders are compared with the 189 ``car-parts-50`` rim
   product shots, on-car composites with real Car-Parts-Segmentation car photos (FID and KID of
   ImageNet-Lite0 features, :mod:`designsearch.training.wheelgen.realism`). A step is worth keeping
   when switching it off raises the distance.

Writes ``benchmarks/results/wheelgen.json`` and ``.md``; pictures under ``var/wheelgen-bench/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _render(out: Path, *args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "designsearch.cli", "render-wheels", "--out", str(out), "--workers", "2",
                    "--quiet", *args], check=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (see the module docstring)."""
    from designsearch.training.wheelgen.jobs import VARIANTS
    from designsearch.training.wheelgen.realism import realism_report

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--designs", type=int, default=100)
    p.add_argument("--timing-designs", type=int, default=30)
    p.add_argument("--work", type=Path, default=ROOT / "var" / "wheelgen-bench")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wheelgen.json")
    a = p.parse_args(argv)
    result: dict = {"designs": a.designs}
    timing_dir = a.work / "timing"
    wall = _render(timing_dir, "--designs", str(a.timing_designs), "--views", "8", "--seed", "11")
    card = json.loads((timing_dir / "data_card.json").read_text())
    per_design = card["last_run"]["wall_seconds"] / max(card["last_run"]["designs_rendered"], 1)
    result["timing"] = {"designs": a.timing_designs, "pictures": card["pictures"], "wall_seconds_total": round(wall, 1),
                        "wall_seconds_render": card["last_run"]["wall_seconds"],
                        "wall_seconds_per_picture": card["last_run"]["wall_seconds_per_picture"],
                        "default_set_2000x8_hours": round(per_design * 2000 / 3600, 2),
                        "designs_per_hour": round(3600 / per_design)}
    print(json.dumps(result["timing"]), flush=True)
    renders, oncar = {}, {}
    for v in VARIANTS:
        d = a.work / v
        _render(d, "--designs", str(a.designs), "--views", "2", "--seed", "5", "--no-drawings", "--variant", v)
        renders[v] = sorted(d.glob("images/*/v*-render.jpg"))
        oncar[v] = sorted(d.glob("images/*/car*-oncar.jpg"))
    result["renders_vs_real_rims"] = realism_report(renders, "real_rims")
    result["oncar_vs_real_cars"] = realism_report(oncar, "real_cars")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, default=str))
    md = ["# Wheel-design engine benchmark", "", f"timing: {json.dumps(result['timing'])}", ""]
    for key in ("renders_vs_real_rims", "oncar_vs_real_cars"):
        md += [f"## {key}", "", "| set | n | n_ref | FID [95 % CI] | KID x1e3 |", "|---|---|---|---|---|"]
        for r in result[key]:
            fid = "" if r.get("fid") is None else f"{r['fid']:.3f} [{r.get('fid_lo') or 0:.3f}, {r.get('fid_hi') or 0:.3f}]"
            kid = "" if r.get("kid") is None else f"{r['kid'] * 1e3:.3f} ± {r['kid_std'] * 1e3:.3f}"
            md.append(f"| {r['set']} | {r['n']} | {r['n_ref']} | {fid} | {kid} |")
        md.append("")
    a.out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
