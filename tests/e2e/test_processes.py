"""The stack as real processes (what `designsearch up` runs): all SERVING, then a clean SIGTERM shutdown."""

from __future__ import annotations

import pytest

from designsearch.client import DesignSearchClient
from designsearch.procs import Stack


@pytest.mark.slow
def test_stack_processes_start_serve_and_stop_cleanly(tmp_path, small_catalogue, embedder_model):
    catalogue, queries = small_catalogue
    stack = Stack(tmp_path / "var", env={"DESIGNSEARCH_SEARCH_ENGINE": "edge"}, web=True)
    stack.start(timeout_s=120)
    try:
        with DesignSearchClient(stack.gateway_address) as client:
            r = client.index(catalogue[:3])
            assert r.added == 3
            top = client.find_similar(catalogue[0].path.read_bytes(), 3)
            assert top.matches[0].design.design_id == catalogue[0].design_id
            assert top.matches[0].score >= 0.99
        # the compute services run below the gateway on shared cores (cpu_nice), every thread of them
        import os

        base = os.getpriority(os.PRIO_PROCESS, 0)
        for name, want in (("segmenter", Stack.COMPUTE_NICE), ("embedder", Stack.COMPUTE_NICE), ("search", 0),
                           ("gateway", 0)):
            pid = stack.procs[name].pid
            threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            assert len(threads) > 1
            assert {os.getpriority(os.PRIO_PROCESS, t) for t in threads} == {min(19, base + want)}, name
        # the web page runs beside them and reads the catalogue through the gateway
        import json
        import urllib.request

        with urllib.request.urlopen(stack.web_url + "api/stats", timeout=10) as r:
            assert json.load(r)["designs"] == len({i.design_id for i in catalogue[:3]})
        # supervision: kill -9 the embedder; `up`'s loop restarts it (reported) and queries work again
        import signal
        import time

        from designsearch.procs import wait_serving

        events: list[str] = []
        old_pid = stack.procs["embedder"].pid
        stack.procs["embedder"].send_signal(signal.SIGKILL)
        stack.procs["embedder"].wait(10)
        deadline = time.monotonic() + 10
        while stack.procs["embedder"].pid == old_pid and time.monotonic() < deadline:
            stack.supervise(on_event=events.append)
            time.sleep(0.2)
        assert any("embedder exited with code -9" in e for e in events) and any("embedder restarted" in e for e in events)
        wait_serving(f"127.0.0.1:{stack.ports['embedder']}", timeout_s=60)
        import grpc

        with DesignSearchClient(stack.gateway_address) as client:  # the gateway's channel reconnects within ~1 s
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert client.find_similar(catalogue[1].path.read_bytes(), 3, no_cache=True).matches
                    break
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
    finally:
        stack.stop()
    codes = {name: proc.returncode for name, proc in stack.procs.items()}
    assert codes == {name: 0 for name in [*Stack.MODULES, "web"]}, codes
    # the log says each service stopped after SIGTERM
    for name in Stack.MODULES:
        assert "stopped" in (tmp_path / "var" / "logs" / f"{name}.log").read_text(), name
