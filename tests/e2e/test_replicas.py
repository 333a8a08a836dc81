"""Load spread over replicas, shown on this machine (issue 33): two segmenters, two embedders and two gateways as
real processes (`designsearch up --replicas ...`), each group given to its clients as one target
(``ipv4:127.0.0.1:P1,127.0.0.1:P2``, round-robin, the headless Services' policy in Kubernetes), the web page in
front. Every replica takes requests; kill -9 of an embedder under load loses no request (the channels retry
UNAVAILABLE on the next replica); restarted, it takes requests again. Counts come from each process's own
Prometheus /metrics."""

from __future__ import annotations

import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from designsearch.client import DesignSearchClient
from designsearch.images import encode_png, read_image
from designsearch.procs import Stack

METHODS = {"segmenter": "/designsearch.internal.v1.SegmenterService/Segment",
           "embedder": "/designsearch.internal.v1.EmbedderService/Embed",
           "gateway": "/designsearch.v1.GatewayService/FindSimilar"}


def handled(stack: Stack, name: str) -> int:
    """RPCs of its service's main method that process ``name`` answered OK (its /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics", timeout=10) as r:
        text = r.read().decode()
    method = METHODS[name.split(".")[0]]
    return int(sum(s.value for family in text_string_to_metric_families(text) if family.name == "designsearch_rpc"
                   for s in family.samples if s.name == "designsearch_rpc_total"
                   and s.labels.get("method") == method and s.labels.get("code") == "OK"))


def pictures(queries, n: int) -> list[bytes]:
    """``n`` query pictures no cache has seen: the held-out queries with one pixel changed each time."""
    out = []
    for i in range(n):
        rgb = read_image(str(queries[i % len(queries)].path)).copy()
        rgb[0, 0] = (i % 256, (i // 256) % 256, 7)
        out.append(encode_png(rgb))
    return out


@pytest.mark.slow
def test_replicas_share_the_load_survive_a_kill_and_rejoin(tmp_path, small_catalogue, embedder_model):
    catalogue, queries = small_catalogue
    stack = Stack(tmp_path / "var", env={"DESIGNSEARCH_SEARCH_ENGINE": "edge"}, web=True,
                  replicas={"segmenter": 2, "embedder": 2, "gateway": 2})
    assert stack.target("embedder").startswith("ipv4:127.0.0.1:") and stack.target("embedder").count(",") == 1
    stack.start(timeout_s=300)
    try:
        with DesignSearchClient(stack.gateway_address) as client:
            assert client.index(catalogue[:3]).added == 3
        drafts = pictures(queries, 60)

        def search(picture: bytes) -> list[str]:  # a designer's search through the web page
            r = httpx.post(stack.web_url + "api/search", files={"image": ("draft.png", picture, "image/png")},
                           data={"k": "3"}, timeout=60)
            assert r.status_code == 200, r.text
            return [m["design_id"] for m in r.json()["matches"]]

        names = [n for n in stack.modules if n.split(".")[0] in METHODS]
        before = {n: handled(stack, n) for n in names}
        for p in drafts[:12]:
            assert search(p)
        spread = {n: handled(stack, n) - before[n] for n in names}
        assert all(v > 0 for v in spread.values()), spread  # every replica took requests

        # kill -9 one embedder while searches run: none fails
        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(search, p) for p in drafts[12:36]]
            while sum(f.done() for f in running) < 4:
                time.sleep(0.02)
            stack.kill("embedder.2")
            pending = sum(not f.done() for f in running)
            results = [f.result() for f in running]
        assert pending >= 10 and all(results), pending  # most searches ran after the kill, every one answered
        survivor = handled(stack, "embedder")

        # restarted (same port), it takes requests again
        stack.restart("embedder.2")
        deadline = time.monotonic() + 30
        rejoined = 0
        for p in drafts[36:]:
            assert search(p)
            rejoined = handled(stack, "embedder.2")
            if rejoined or time.monotonic() > deadline:
                break
        assert rejoined > 0, "the restarted embedder got no request"
        assert handled(stack, "embedder") >= survivor
    finally:
        stack.stop()
