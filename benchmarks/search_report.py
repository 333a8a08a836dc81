"""Summary rows and the Markdown report of ``search_bench.py``."""

from __future__ import annotations



def summarise(size_res: dict, target_recall: float) -> list[dict]:
    """One row per engine: the smallest swept ef whose unfiltered recall ≥ target (else the best)."""
    rows = []
    for name, r in size_res["engines"].items():
        if "error" in r:
            rows.append({"engine": name, "error": r["error"]})
            continue
        serve = r["serve"]
        sweeps = serve["sweeps"]
        keys = list(sweeps)
        chosen = next((k for k in keys if sweeps[k]["all"]["recall"] >= target_recall), keys[-1])
        s = sweeps[chosen]
        mem = serve.get("mem_serve", {})
        rows.append({
            "engine": name, "ef": chosen,
            "recall": s["all"]["recall"], "p50_ms": s["all"]["p50_ms"], "p99_ms": s["all"]["p99_ms"],
            "f1_recall": s["f1"]["recall"], "f1_p50_ms": s["f1"]["p50_ms"], "f1_p99_ms": s["f1"]["p99_ms"],
            "f25_recall": s["f25"]["recall"], "f25_p50_ms": s["f25"]["p50_ms"], "f25_p99_ms": s["f25"]["p99_ms"],
            "build_s": r.get("build", {}).get("build_s", serve.get("build_s")),
            "rss_mb": mem.get("VmRSS"), "peak_rss_mb": max(mem.get("VmHWM", 0), r.get("build", {}).get("mem_build", {}).get("VmHWM", 0)),
            "reopen_s": serve.get("reopen_s"),
        })
    return rows


def to_markdown(results: dict) -> str:
    lines = [f"# Search benchmark ({results['machine']})", "",
             f"Command: `{results['command']}`", "",
             "Latencies: one query at a time, one thread, ms. Recall@10 against exact search "
             "(filtered recall against exact filtered search). `f1` = brand filter (~1%), `f25` = year "
             "range (~25%). RSS = VmRSS of the serving process after the queries; peak = max VmHWM "
             "of build and serving. qdrant-local reopen is extrapolated from a 300-point disk sample.", ""]
    for size, sr in results["sizes"].items():
        st = sr["data"]
        lines += [f"## N = {int(size):,}", "",
                  f"Data: top-1 cosine p10/p50/p90 = {st['nn1_cosine_pctl']}, 10th-NN cosine median "
                  f"{st['nn10_cosine_median']}, random pairs {st['random_pair_cosine']}; filter fractions "
                  f"f1={st['filters']['f1']['fraction']}, f25={st['filters']['f25']['fraction']}.", "",
                  "| engine | ef | recall@10 | p50 | p99 | f1 recall | f1 p50 | f1 p99 | f25 recall | f25 p50 | "
                  "f25 p99 | build s | RSS MB | peak MB | reopen s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sr["summary"]:
            if "error" in r:
                lines.append(f"| {r['engine']} | error: {r['error']} |" + " |" * 13)
                continue
            lines.append("| " + " | ".join(str(r[k]) for k in (
                "engine", "ef", "recall", "p50_ms", "p99_ms", "f1_recall", "f1_p50_ms", "f1_p99_ms", "f25_recall",
                "f25_p50_ms", "f25_p99_ms", "build_s", "rss_mb", "peak_rss_mb", "reopen_s")) + " |")
        for name, r in sr["engines"].items():
            sw = r.get("serve", {}).get("sweeps", {})
            if len(sw) > 1:
                lines += ["", f"{name} ef sweep (recall / p50 ms / p99 ms):", "",
                          "| ef | all | f1 | f25 |", "|---|---|---|---|"]
                for ef, row in sw.items():
                    lines.append(f"| {ef} | " + " | ".join(
                        f"{row[f]['recall']} / {row[f]['p50_ms']} / {row[f]['p99_ms']}" for f in ("all", "f1", "f25")) + " |")
        for name, r in sr["engines"].items():
            if "persist_s_extrapolated" in r.get("serve", {}):
                lines += ["", f"{name}: disk persistence of all points ≈ {r['serve']['persist_s_extrapolated']} s "
                              f"(extrapolated from 300 points)."]
        for name, r in sr["engines"].items():
            bg = r.get("background_build")
            if bg and "error" not in bg:
                lines += ["", f"{name}, writes and a background HNSW build while serving (ef={bg.get('ef', '')}): "
                              f"query p50/p99 before {bg['before']['p50_ms']}/{bg['before']['p99_ms']} ms; after upserting "
                              f"{bg['new_points']:,} new points ({bg['upsert_new_s']} s) {bg['unindexed']['p50_ms']}/"
                              f"{bg['unindexed']['p99_ms']} ms; during the {bg['background_build_s']} s off-process build "
                              f"{bg['during_build']['p50_ms']}/{bg['during_build']['p99_ms']} ms (max "
                              f"{bg['during_build']['max_ms']} ms, {bg['during_build']['n']} queries); after the swap "
                              f"{bg['after']['p50_ms']}/{bg['after']['p99_ms']} ms."]
        for note in sr.get("notes", []):
            lines += ["", note]
        lines.append("")
    return "\n".join(lines)
