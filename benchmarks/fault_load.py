"""Fault and load suite of the local stack (issue 12): bad inputs, kill -9 of each service mid-ingest,
Redis frozen, and concurrent clients with memory sampled per service.

Starts Redis and the four services as processes on a fresh folder (as ``designsearch up`` does, with
its supervision: a killed service is restarted with back-off), ingests part of the demo catalogue,
then runs four phases:

1. **bad inputs** — empty, truncated, non-image, a one-bit 8000x5000 PNG bomb, a 20000x20000 header,
   k out of range, a reversed year range, an unknown design in Dislike, a 100,000-character design id,
   malformed protobuf bytes: the status code of each (never UNKNOWN/INTERNAL, stored counts unchanged);
2. **kill -9** of the segmenter, the embedder, the search service and the gateway while an
   ingestion stream runs: the stream fails (UNAVAILABLE), the service is restarted, the stream is
   resent, and the catalogue and the index must agree (images and points counted both ways);
   recovery = time from the kill until a query succeeds again;
3. **Redis frozen** (SIGSTOP) for ``--freeze-s``: query latency before / during / after, against
   cold (``no_cache``) queries measured just before, and the cache breaker's openings;
4. **load** — for each of ``--clients`` (e.g. ``16,32``), that many concurrent clients for
   ``--load-s`` seconds, half cold (``no_cache``), half cached: calls/s, errors by status,
   p50/p95/p99 overall and per mode, cached calls served cold, the cache breaker's openings (Redis
   healthy: there should be none), RSS of each service at start and end;
5. **stream** — one IndexDesigns stream of ``--stream-items`` items (empty images: each fails its
   check, so the stream machinery alone is measured) with the gateway's CPU seconds, then one of
   ``max_stream_items + 1`` (``--stream-limit``, the gateway's setting) and the time to its INVALID_ARGUMENT.

``--phases`` picks some (``bad,kill9,frozen,load,stream``; default all). Breaker openings are the
``cache_breaker_open`` lines of the gateway's log during a phase.

Usage: ``python benchmarks/fault_load.py [--load-s 600] [--clients 16,32] [--phases load]``; writes
``benchmarks/results/fault_load.json`` and prints it (the README summarises it). Smoke run:
``--images 20 --phases frozen,load --clients 2 --load-s 5 --freeze-s 2``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from designsearch.catalogue_data import demo_split, read_labels
from designsearch.client import DesignSearchClient
from designsearch.procs import Stack, cpu_seconds
from designsearch.settings import REPO_ROOT, default_data_dir


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (0 when it is gone)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 of latencies in seconds, as ms."""
    if not values:
        return {}
    a = np.array(values) * 1000
    return {f"p{q}": round(float(np.percentile(a, q)), 1) for q in (50, 95, 99)} | {"n": len(values)}


def bad_inputs(client: DesignSearchClient, address: str, good: bytes) -> dict[str, str]:
    """Status code of each kind of bad request."""
    def png(size, mode="1"):
        buf = io.BytesIO()
        Image.new(mode, size).save(buf, format="PNG")
        return buf.getvalue()

    huge_header = png((64, 64))  # header edited to claim 20000x20000
    huge_header = huge_header[:16] + (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big") + huge_header[24:]
    cases = {
        "empty image": lambda: client.find_similar(b""),
        "truncated jpeg": lambda: client.find_similar(good[: len(good) // 3]),
        "not an image": lambda: client.find_similar(b"%PDF-1.4 not an image" * 50),
        "1-bit 8000x5000 png bomb": lambda: client.find_similar(png((8000, 5000))),
        "20000x20000 header": lambda: client.find_similar(huge_header),
        "k out of range": lambda: client.find_similar(good, 1000),
        "reversed year range": lambda: client.find_similar(good, 3, year_min=2012, year_max=2001),
        "unknown design in Dislike": lambda: client.dislike("a" * 64, "no-such-design"),
        "100,000-character design id": lambda: client.dislike("a" * 64, "x" * 100_000),
    }
    out = {}
    for name, fn in cases.items():
        try:
            fn()
            out[name] = "OK"
        except grpc.RpcError as err:
            out[name] = f"{err.code().name} ({len(err.details() or '')} chars)"
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary("/designsearch.v1.GatewayService/FindSimilar")(b"\xff\xff not protobuf", timeout=10)
            out["malformed protobuf"] = "OK"
        except grpc.RpcError as err:
            out["malformed protobuf"] = err.code().name
    return out


PHASES = ("bad", "kill9", "frozen", "load", "stream")


class BreakerLog:
    """Counts the gateway's ``cache_breaker_open`` log lines (``var/logs/gateway.log``) since :meth:`mark`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def _text(self) -> str:
        try:
            return self.path.read_text(errors="replace")
        except OSError:
            return ""

    def mark(self) -> None:
        """Start counting from now."""
        self.offset = len(self._text())

    def openings(self) -> int:
        """Breaker openings logged since the last :meth:`mark`."""
        return self._text()[self.offset:].count("cache_breaker_open")


def load_phase(address: str, payloads: list[bytes], clients: int, seconds: float, pids: dict[str, int],
               breaker: BreakerLog) -> dict:
    """``clients`` concurrent clients for ``seconds``, even ones cold (``no_cache``), odd ones cached."""
    rss_start = {name: round(rss_mb(pid), 1) for name, pid in pids.items()}
    cpu_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    peak = dict(rss_start)
    codes: Counter = Counter()
    lat: list[float] = []
    by_mode: dict[str, list[float]] = {"cold": [], "cached": []}
    calls_by_mode: Counter = Counter()
    cached_served_cold = 0
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client_loop(k: int):
        nonlocal cached_served_cold
        cold = k % 2 == 0
        with DesignSearchClient(address, timeout_s=30) as c:
            i = k
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                miss = False
                try:
                    r = c.find_similar(payloads[i % len(payloads)], 6, no_cache=cold)
                    code, miss = "OK", not cold and not r.cache_hit
                except grpc.RpcError as err:
                    code = err.code().name
                dt = time.perf_counter() - t0
                with lock:
                    codes[code] += 1
                    lat.append(dt)
                    by_mode["cold" if cold else "cached"].append(dt)
                    calls_by_mode["cold" if cold else "cached"] += 1
                    cached_served_cold += miss
                i += clients

    breaker.mark()
    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for name, pid in pids.items():
            peak[name] = max(peak[name], round(rss_mb(pid), 1))
        time.sleep(1)
    elapsed = time.monotonic() - t0
    return {"clients": clients, "seconds": round(elapsed, 1), "calls": sum(codes.values()),
            "calls_per_s": round(sum(codes.values()) / elapsed, 1), "codes": dict(codes),
            "latency_ms": pct(lat),
            "by_mode": {m: {"calls_per_s": round(calls_by_mode[m] / elapsed, 1), "latency_ms": pct(v)}
                        for m, v in by_mode.items() if v},
            "cached_served_cold": cached_served_cold, "breaker_openings": breaker.openings(),
            "cpu_s": {name: round(cpu_seconds(pid) - cpu_start[name], 1) for name, pid in pids.items()},
            "rss_mb_start": rss_start, "rss_mb_peak": peak,
            "rss_mb_end": {name: round(rss_mb(pid), 1) for name, pid in pids.items()}}


def stream_phase(address: str, items: int, limit: int, gateway_pid: int) -> dict:
    """One IndexDesigns stream of ``items`` items (at most ``limit``) with empty images (each fails its
    check at once), then one of ``limit + 1``: gateway CPU seconds and wall time of the first, time to
    the refusal of the second."""
    from designsearch.v1 import common_pb2, gateway_pb2

    items = min(items, limit)

    def requests(n: int):
        for i in range(n):
            yield gateway_pb2.IndexDesignsRequest(
                design=common_pb2.DesignRecord(design_id=f"stream-{i}", brand="B", model="M", year=2000),
                image=common_pb2.Image(content=b""))

    out: dict = {"items": items}
    with DesignSearchClient(address, timeout_s=3600) as c:
        cpu0, t0 = cpu_seconds(gateway_pid), time.monotonic()
        r = c.stub.IndexDesigns(requests(items), timeout=3600)
        out.update(wall_s=round(time.monotonic() - t0, 1), gateway_cpu_s=round(cpu_seconds(gateway_pid) - cpu0, 1),
                   failed=r.failed, ms_cpu_per_item=round((cpu_seconds(gateway_pid) - cpu0) / max(items, 1) * 1000, 3))
        t0 = time.monotonic()
        try:
            c.stub.IndexDesigns(requests(limit + 1), timeout=3600)
            out["over_limit"] = "OK (not refused)"
        except grpc.RpcError as err:
            out["over_limit"] = err.code().name
        out["over_limit_refused_after_s"] = round(time.monotonic() - t0, 1)
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=240, help="catalogue images ingested first")
    ap.add_argument("--clients", default="16", help="client counts of the load phase, comma-separated (16,32)")
    ap.add_argument("--load-s", type=float, default=600)
    ap.add_argument("--freeze-s", type=float, default=10)
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    ap.add_argument("--stream-items", type=int, default=100_000, help="items of the stream phase's stream")
    ap.add_argument("--stream-limit", type=int, default=100_000, help="the gateway's max_stream_items")
    ap.add_argument("--var", type=Path, default=REPO_ROOT / "var" / "faults")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "fault_load")
    args = ap.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        ap.error(f"unknown phases {unknown}; choose from {list(PHASES)}")
    client_counts = [int(c) for c in str(args.clients).split(",") if c.strip()]

    images = read_labels(default_data_dir() / "stanford-cars" / "labels.csv")
    catalogue, queries = demo_split(images, range(79, 99), 2)
    first, later = catalogue[: args.images], catalogue[args.images: args.images + 160]
    shutil.rmtree(args.var, ignore_errors=True)
    stack = Stack(args.var, env={"DESIGNSEARCH_GATEWAY_MAX_STREAM_ITEMS": str(args.stream_limit)})
    stack.start()
    breaker = BreakerLog(args.var / "logs" / "gateway.log")
    stop_supervisor = threading.Event()
    events: list[str] = []

    def supervise():
        while not stop_supervisor.is_set():
            stack.supervise(on_event=lambda e: events.append(f"{time.strftime('%H:%M:%S')} {e}"))
            time.sleep(0.2)

    threading.Thread(target=supervise, daemon=True).start()
    result: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "command": "python benchmarks/fault_load.py " + f"--load-s {args.load_s:g} --clients {args.clients} "
                               f"--phases {','.join(phases)}"}
    payloads = [q.path.read_bytes() for q in queries]
    try:
        with DesignSearchClient(stack.gateway_address, timeout_s=60) as client:
            client.index(first)
            if "bad" in phases:
                before = client.stats()
                result["bad_inputs"] = bad_inputs(client, stack.gateway_address, payloads[0])
                after = client.stats()
                result["bad_inputs_stored_unchanged"] = (before.images, before.points) == (after.images, after.points)
        if "kill9" in phases:
            result.update(kill9_phase(stack, later, payloads, args.var))
        if "frozen" in phases:
            result["redis_frozen"] = frozen_phase(stack, payloads, args.freeze_s, breaker)
        pids = {name: p.pid for name, p in stack.procs.items()}
        if "load" in phases:
            for n in client_counts:
                result[f"load_{n}"] = load_phase(stack.gateway_address, payloads, n, args.load_s, pids, breaker)
        if "stream" in phases:
            result["stream"] = stream_phase(stack.gateway_address, args.stream_items, args.stream_limit, pids["gateway"])
        result["supervisor_events"] = events
    finally:
        stop_supervisor.set()
        stack.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(args.out) + ".json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


def kill9_phase(stack: Stack, later: list, payloads: list[bytes], var: Path) -> dict:
    """kill -9 of each service mid-ingest: stream outcome, recovery, resent stream; then catalogue vs index."""
    kills = {}
    chunks = [later[i::4] for i in range(4)]
    for name, chunk in zip(["segmenter", "embedder", "search", "gateway"], chunks):
        outcome: dict = {}

        def ingest():
            try:
                with DesignSearchClient(stack.gateway_address, timeout_s=120) as c:
                    outcome["response"] = c.index(chunk)
            except grpc.RpcError as err:
                outcome["error"] = err.code().name

        t = threading.Thread(target=ingest)
        t.start()
        time.sleep(1.0)
        t_kill = time.monotonic()
        stack.procs[name].send_signal(signal.SIGKILL)
        t.join(180)
        recovered = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with DesignSearchClient(stack.gateway_address, timeout_s=5) as c:
                    c.find_similar(payloads[1], 3, no_cache=True)
                recovered = time.monotonic() - t_kill
                break
            except grpc.RpcError:
                time.sleep(0.2)
        with DesignSearchClient(stack.gateway_address, timeout_s=300) as c:
            redo = c.index(chunk)  # the client resends; already-indexed images are duplicates
            stats = c.stats()
        kills[name] = {"stream": outcome.get("error", "completed"), "recovery_s": round(recovered or -1, 1),
                       "resent": {"added": redo.added, "duplicates": redo.duplicates, "failed": redo.failed},
                       "images": stats.images, "points": stats.points}
    result = {"kill9": kills}
    # agreement: every catalogued image's points are in the index, and no more
    from designsearch.gateway.catalogue import Catalogue

    cat = Catalogue(f"sqlite:///{var / 'catalogue.db'}")
    expected_points = sum(n for _, _, n in cat.design_points([d["design_id"] for d in cat.list_designs(limit=10_000)]))
    cat.close()
    with DesignSearchClient(stack.gateway_address) as c:
        final = c.stats()
    result["agreement"] = {"catalogue_points": expected_points, "index_points": final.points,
                           "agree": expected_points == final.points}
    return result


def frozen_phase(stack: Stack, payloads: list[bytes], freeze_s: float, breaker: BreakerLog) -> dict:
    """Cached queries before / while / after Redis is frozen (SIGSTOP), against cold queries."""
    def timed(n, cache=True):
        lat = []
        with DesignSearchClient(stack.gateway_address) as c:
            for i in range(n):
                t0 = time.perf_counter()
                c.find_similar(payloads[i % len(payloads)], 6, no_cache=not cache)
                lat.append(time.perf_counter() - t0)
        return lat

    timed(len(payloads))  # fill the cache
    cold = timed(20, cache=False)
    normal = timed(40)
    breaker.mark()
    os.kill(stack.redis.proc.pid, signal.SIGSTOP)
    t_end = time.monotonic() + freeze_s
    frozen = []
    while time.monotonic() < t_end:
        frozen += timed(5)
    os.kill(stack.redis.proc.pid, signal.SIGCONT)
    openings = breaker.openings()
    time.sleep(2.5)
    thawed = timed(40)
    return {"cold_ms": pct(cold), "normal_ms": pct(normal), "frozen_ms": pct(frozen), "after_ms": pct(thawed),
            "breaker_openings_while_frozen": openings}


if __name__ == "__main__":
    main()
