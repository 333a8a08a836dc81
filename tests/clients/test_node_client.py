"""The TypeScript/Node client (clients/node) against the in-process stack: its find_similar example prints
the same designs and scores as the Python client, bad input and a missing API key fail with the gRPC
status, and the committed generated TypeScript matches what ts-proto makes of protos/ now.

Skipped when ``node`` or ``npm`` is not installed. ``npm ci`` and ``npm run build`` are run here when
clients/node/node_modules or dist/ are missing or older than their inputs (seconds; nothing when built).
Subprocesses run through asyncio: the servers share the test event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "clients" / "node"
GENERATED = NODE_DIR / "src" / "generated"
EXAMPLE = NODE_DIR / "dist" / "find_similar.js"
NODE, NPM = shutil.which("node"), shutil.which("npm")
#: One match line of the example: rank, design id, brand, model, year, score (4 decimals), tab-separated.
MATCH_LINE = re.compile(r"^(\d+)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(-?\d+)\t(-?\d+\.\d{4})$")

pytestmark = pytest.mark.skipif(not (NODE and NPM), reason="node and npm not found on PATH: the Node client "
                                "(clients/node) needs Node.js >= 18 with npm")


async def _run(*args: str, cwd: Path = NODE_DIR, env: dict | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run a command without blocking the event loop; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(*args, cwd=cwd, env={**os.environ, **(env or {})},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def _needs_ci() -> bool:
    """node_modules missing, or older than package.json / package-lock.json (npm ci writes .package-lock.json)."""
    installed = _mtime(NODE_DIR / "node_modules" / ".package-lock.json")
    return installed < max(_mtime(NODE_DIR / "package-lock.json"), _mtime(NODE_DIR / "package.json"))


def _needs_build() -> bool:
    """dist/find_similar.js missing or older than a source, the tsconfig or the installed packages."""
    inputs = [*NODE_DIR.joinpath("src").rglob("*.ts"), NODE_DIR / "tsconfig.json",
              NODE_DIR / "node_modules" / ".package-lock.json"]
    return _mtime(EXAMPLE) < max(_mtime(p) for p in inputs)


@pytest_asyncio.fixture(scope="module")
async def node_client() -> Path:
    """clients/node installed (npm ci) and built (tsc); returns the example's path."""
    if _needs_ci():
        code, out, err = await _run(NPM, "ci", "--no-audit", "--no-fund", timeout=600)
        assert code == 0, f"npm ci failed in {NODE_DIR}:\n{out}\n{err}"
    if _needs_build():
        code, out, err = await _run(NPM, "run", "build", timeout=300)
        assert code == 0, f"npm run build failed in {NODE_DIR}:\n{out}\n{err}"
    assert EXAMPLE.exists()
    return EXAMPLE


async def _python_matches(address: str, image: bytes, k: int) -> list[tuple[str, str, str, int, float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await gateway_pb2_grpc.GatewayServiceStub(channel).FindSimilar(
            gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=image), k=k), timeout=60)
    return [(m.design.design_id, m.design.brand, m.design.model, m.design.year, m.score) for m in response.matches]


def _parse(stdout: str) -> list[tuple[str, str, str, int, float]]:
    """The match lines of the example's output, checking that ranks run 1, 2, ..."""
    rows = [MATCH_LINE.match(line) for line in stdout.splitlines()]
    rows = [r for r in rows if r]
    assert [int(r.group(1)) for r in rows] == list(range(1, len(rows) + 1)), stdout
    return [(r.group(2), r.group(3), r.group(4), int(r.group(5)), float(r.group(6))) for r in rows]


@pytest.mark.parametrize("which", ["catalogue image", "held-out query"])
async def test_find_similar_example_matches_python_client(which, node_client, indexed, stack):
    catalogue, queries, _ = indexed
    img = catalogue[0] if which == "catalogue image" else queries[2]
    address, k = stack["gateway"].address, 4
    code, out, err = await _run(NODE, str(node_client), "--gateway", address, "--k", str(k), str(img.path))
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}"
    node_rows = _parse(out)
    python_rows = await _python_matches(address, img.path.read_bytes(), k)
    assert len(python_rows) == k
    assert [r[:4] for r in node_rows] == [r[:4] for r in python_rows], out
    for (*_, node_score), (*_, py_score) in zip(node_rows, python_rows):
        assert abs(node_score - py_score) <= 0.0002, (node_score, py_score)
    if which == "catalogue image":  # the image itself is in the catalogue: its design comes first
        assert node_rows[0][0] == img.design_id


async def test_find_similar_example_bad_image_is_invalid_argument(node_client, indexed, stack, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not an image\n" * 20)
    code, out, err = await _run(NODE, str(node_client), "--gateway", stack["gateway"].address, str(bad))
    assert code == 1, f"stdout:\n{out}\nstderr:\n{err}"
    assert "INVALID_ARGUMENT" in err and "not a decodable image" in err, err
    assert not _parse(out)


async def test_find_similar_example_sends_the_api_key(node_client, indexed, stack, tmp_path, make_gateway_settings):
    """A gateway that requires a key: --api-key and $DESIGNSEARCH_API_KEY are sent as x-api-key."""
    from designsearch.gateway.server import create_server

    catalogue, _, _ = indexed
    url = stack["gateway"].core.catalogue.engine.url.render_as_string(hide_password=False)
    gateway = await create_server(make_gateway_settings(stack, tmp_path, api_keys=["node-key"], catalogue_url=url))
    try:
        args = [NODE, str(node_client), "--gateway", gateway.address, "--k", "2", str(catalogue[0].path)]
        code, _, err = await _run(*args, env={"DESIGNSEARCH_API_KEY": ""})
        assert code == 1 and "UNAUTHENTICATED" in err, err
        code, _, err = await _run(*args, "--api-key", "wrong-key", env={"DESIGNSEARCH_API_KEY": ""})
        assert code == 1 and "UNAUTHENTICATED" in err, err
        code, out, err = await _run(*args, "--api-key", "node-key")
        assert code == 0 and len(_parse(out)) == 2, err
        code, out, err = await _run(*args, env={"DESIGNSEARCH_API_KEY": "node-key"})
        assert code == 0 and _parse(out)[0][0] == catalogue[0].design_id, err
    finally:
        await gateway.stop(0)


async def test_generated_typescript_is_up_to_date(node_client, tmp_path):
    """ts-proto run on protos/ now gives exactly the committed clients/node/src/generated
    (after changing a .proto: `make clients`, or clients/node/generate.sh, and commit the result)."""
    out = tmp_path / "generated"
    code, stdout, stderr = await _run("bash", str(NODE_DIR / "generate.sh"), str(out), env={"PYTHON": sys.executable})
    assert code == 0, f"generate.sh failed:\n{stdout}\n{stderr}"
    fresh = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    committed = {p.relative_to(GENERATED): p.read_bytes() for p in sorted(GENERATED.rglob("*")) if p.is_file()}
    assert {"designsearch/v1/gateway.ts", "designsearch/v1/common.ts", "google/rpc/status.ts"} <= {
        str(p) for p in fresh}
    assert sorted(fresh) == sorted(committed), "generated file set differs: run clients/node/generate.sh"
    stale = [str(p) for p in fresh if fresh[p] != committed[p]]
    assert not stale, f"clients/node/src/generated is stale ({stale}): run clients/node/generate.sh and commit"
