"""Ablation of the design-level training signals (issue 9): each switched off in turn, same seed and budget.

Configurations (:class:`.train_contrastive.ContrastiveConfig` overrides):

* ``full``: instance discrimination + same-photo positives + car-model cross-entropy;
* ``no_ce``: without the car-model cross-entropy;
* ``no_same_photo``: without same-photo positives (instance positives only);
* ``no_instance``: one view per crop (same-photo positives + cross-entropy only);
* ``ce_only``: car-model cross-entropy alone, full network (today's objective, end to end).

The first configuration calibrates the number of steps from ``--minutes`` (see
``ContrastiveConfig.steps``); every other one runs exactly that many steps with the same seed, so
all see the same number of views. Each run is exported and evaluated on classes 79-98 (rows of
:mod:`.evaluate`); the table goes to ``runs/embedder/ablation.md`` and ``ablation.json``.

Usage::

    flock /tmp/designsearch-cpu.lock nice -n 5 .venv/bin/python -m designsearch.training.embedder.ablation \\
        --minutes 5 --seed 0
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from . import data as D
from .train_contrastive import ContrastiveConfig, train

CONFIGS = {
    "full": {},
    "no_ce": {"ce_weight": 0.0},
    "no_same_photo": {"same_photo": False},
    "no_instance": {"instance": False},
    "ce_only": {"instance": False, "same_photo": False},
}
#: (task, metric) rows of the ablation table.
ROWS = [("wheel_partner", "R@1"), ("wheel_partner", "R@1_photo"), ("wheel_partner_rot", "R@1"),
        ("wheel", "R@1"), ("wheel", "R@5"), ("wheel", "mAP@R"), ("car", "R@1"), ("car", "mAP@R"),
        ("wheel_edge", "R@5"), ("car_edge", "R@5")]


def table(results: dict[str, dict]) -> str:
    """Markdown table: one column per run (``{name: {"eval": rows, "minutes": float, "steps": int}}``)."""
    names = list(results)
    lines = ["| row | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for task, metric in ROWS:
        vals = [results[n]["eval"].get(task, {}).get(metric) for n in names]
        lines.append(f"| {task} {metric} | " + " | ".join("" if v is None else f"{v:.4f}" for v in vals) + " |")
    lines.append("| steps | " + " | ".join(str(results[n]["steps"]) for n in names) + " |")
    lines.append("| train minutes | " + " | ".join(f"{results[n]['minutes']:.1f}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the configurations in order; write ``runs/embedder/ablation.{json,md}``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per run (calibrated on the first)")
    p.add_argument("--steps", type=int, default=0, help="fixed steps per run (0 = calibrate from --minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", default="full,no_ce,no_same_photo,no_instance")
    p.add_argument("--prefix", default="abl")
    args = p.parse_args(argv)
    out_json = D.DEFAULT_RUNS / "ablation.json"
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    steps = args.steps
    for name in args.configs.split(","):
        cfg = replace(ContrastiveConfig(), seed=args.seed, steps=steps, minutes=0.0 if steps else args.minutes,
                      run_name=f"{args.prefix}_{name}", **CONFIGS[name])
        summary = train(cfg)
        steps = steps or summary["steps_done"]
        results[name] = {"eval": summary["eval"], "steps": summary["steps_done"],
                         "minutes": summary["seconds"]["train"] / 60, "config": summary["config"],
                         "model": summary["model"]}
        out_json.write_text(json.dumps(results, indent=2))
        (D.DEFAULT_RUNS / "ablation.md").write_text(table(results) + "\n")
        print(table(results), flush=True)
    return results


if __name__ == "__main__":
    main()
