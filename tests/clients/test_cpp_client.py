"""The C++ client (clients/cpp/) against the in-process stack: builds it with CMake into var/build/cpp-client
(incremental), runs the find_similar example and checks that it prints the same designs and scores as the
Python client. Skipped when the C++ toolchain (cmake, a C++ compiler, protoc, grpc_cpp_plugin, grpc++) is
absent.

The servers run on the test loop, so the build and the example run as asyncio subprocesses."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_asyncio

from designsearch.v1 import common_pb2, gateway_pb2

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "clients" / "cpp"
BUILD = ROOT / "var" / "build" / "cpp-client"
#: One match line of find_similar: rank, design_id, brand, model, year, score (4 decimals).
MATCH_LINE = re.compile(r"(\d+)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(-?\d+)\t(-?\d+\.\d{4})")
BUILD_TIMEOUT_S = 1800  # a cold build on 2 cores takes well under a minute; generous for slow machines
RUN_TIMEOUT_S = 120


def _grpcxx_found() -> bool:
    """grpc++ is installed: its pkg-config file, or gRPC's CMake package in a usual prefix."""
    if shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "grpc++"]).returncode == 0:
        return True
    prefixes = [p for p in os.environ.get("CMAKE_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += ["/usr", "/usr/local", "/opt/homebrew"]
    patterns = ["lib/cmake/grpc/gRPCConfig.cmake", "lib/*/cmake/grpc/gRPCConfig.cmake",
                "lib64/cmake/grpc/gRPCConfig.cmake", "share/grpc/gRPCConfig.cmake"]
    return any(glob.glob(os.path.join(prefix, pattern)) for prefix in prefixes for pattern in patterns)


def missing_toolchain() -> str | None:
    """Why the C++ client cannot be built here (None when it can)."""
    install = ("apt-get install libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler "
               "cmake pkg-config")
    if not shutil.which("cmake"):
        return f"cmake not found ({install})"
    if not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        return "no C++ compiler found (apt-get install g++)"
    if not shutil.which("protoc"):
        return f"protoc not found ({install})"
    if not shutil.which("grpc_cpp_plugin"):
        return f"grpc_cpp_plugin not found ({install})"
    if not _grpcxx_found():
        return f"grpc++ not found: neither `pkg-config grpc++` nor gRPC's CMake package ({install})"
    return None


#: Checked before any fixture starts the stack (a fixture's skip would come after the session fixtures).
MISSING = missing_toolchain()
needs_toolchain = pytest.mark.skipif(MISSING is not None, reason=f"C++ client not buildable: {MISSING}")


async def _run(*args: str, env: dict | None = None, timeout: float = RUN_TIMEOUT_S) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a subprocess, without blocking the event loop."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(*args, stdout=pipe, stderr=pipe, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{args[0]} ran longer than {timeout} s") from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _client_env(**extra: str) -> dict:
    """The environment without the developer's DESIGNSEARCH_API_KEY / DESIGNSEARCH_TLS_CA, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DESIGNSEARCH_API_KEY", "DESIGNSEARCH_TLS_CA")}
    return {**env, **extra}


@pytest_asyncio.fixture(scope="module")
async def find_similar() -> Path:
    """The find_similar example, (re)built with CMake under var/build/cpp-client (at most 2 jobs)."""
    BUILD.parent.mkdir(parents=True, exist_ok=True)
    steps = [["cmake", "-S", str(SOURCE), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release"],
             ["cmake", "--build", str(BUILD), "-j2"]]
    for cmd in steps:
        code, out, err = await _run(*cmd, timeout=BUILD_TIMEOUT_S)
        assert code == 0, f"{' '.join(cmd)} failed ({code}):\n{out[-4000:]}\n{err[-4000:]}"
    binary = BUILD / "find_similar"
    assert binary.is_file()
    return binary


def parse_matches(stdout: str) -> list[tuple[int, str, str, str, int, str]]:
    """The match lines of find_similar's output; every other line must be a '#' comment."""
    rows = []
    for line in stdout.splitlines():
        if not line or line.startswith("#"):
            continue
        m = MATCH_LINE.fullmatch(line)
        assert m, f"neither a comment nor a match line: {line!r}"
        rank, design_id, brand, model, year, score = m.groups()
        rows.append((int(rank), design_id, brand, model, int(year), score))
    return rows


def assert_same_matches(rows: list, response: gateway_pb2.FindSimilarResponse) -> None:
    """find_similar's rows = the Python client's matches: ids, labels, scores to 4 decimals (± 0.0002)."""
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert [r[1] for r in rows] == [m.design.design_id for m in response.matches]
    labels = [(m.design.brand, m.design.model, m.design.year) for m in response.matches]
    assert [r[2:5] for r in rows] == labels
    for row, match in zip(rows, response.matches):
        assert abs(float(row[5]) - match.score) <= 2e-4, (row, match.score)


@needs_toolchain
async def test_find_similar_prints_what_the_python_client_gets(find_similar, indexed, stack, gateway_stub):
    catalogue, queries, _ = indexed
    address = stack["gateway"].address
    held_out = next(q for q in queries if q.design_id != catalogue[0].design_id)
    # (image, --k argument or None for the default, the k the Python client sends: 0 = the server's default 6)
    cases = [(catalogue[0], "3", 3), (held_out, None, 0), (held_out, "2", 2)]
    for img, k_arg, k in cases:
        request = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=img.path.read_bytes()), k=k)
        expected = await gateway_stub.FindSimilar(request, timeout=60)
        assert expected.matches
        args = [str(find_similar), "--gateway", address, *(["--k", k_arg] if k_arg else []), str(img.path)]
        code, out, err = await _run(*args, env=_client_env())
        assert code == 0, f"exit {code}: {err}"
        rows = parse_matches(out)
        assert 0 < len(rows) == len(expected.matches) <= int(k_arg or 6)  # fewer when the catalogue is small
        assert_same_matches(rows, expected)
        if img is catalogue[0]:  # an indexed image finds its own design first
            assert rows[0][1] == img.design_id and float(rows[0][5]) > 0.99


@needs_toolchain
async def test_find_similar_bad_file_is_invalid_argument(find_similar, indexed, stack, tmp_path):
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"this is a text file, not an image\n" * 20)
    args = [str(find_similar), "--gateway", stack["gateway"].address, str(bad)]
    code, out, err = await _run(*args, env=_client_env())
    assert code == 1, (code, out, err)
    assert "INVALID_ARGUMENT" in err
    assert parse_matches(out) == []


@needs_toolchain
async def test_find_similar_sends_the_api_key(find_similar, indexed, stack, tmp_path, make_gateway_settings):
    """x-api-key from --api-key or $DESIGNSEARCH_API_KEY (the flag wins), to a gateway that requires one."""
    from designsearch.gateway.server import create_server

    catalogue, _, _ = indexed
    url = stack["gateway"].core.catalogue.engine.url.render_as_string(hide_password=False)
    settings = make_gateway_settings(stack, tmp_path, api_keys=["cpp-secret"], catalogue_url=url)
    gateway = await create_server(settings)
    try:
        args = [str(find_similar), "--gateway", gateway.address, "--k", "2", str(catalogue[0].path)]
        code, _, err = await _run(*args, env=_client_env())
        assert code == 1 and "UNAUTHENTICATED" in err, (code, err)
        code, out, err = await _run(*args, env=_client_env(DESIGNSEARCH_API_KEY="cpp-secret"))
        assert code == 0, err
        assert [r[1] for r in parse_matches(out)][:1] == [catalogue[0].design_id]
        code, out, err = await _run(*args, "--api-key", "cpp-secret", env=_client_env())
        assert code == 0, err
        env = _client_env(DESIGNSEARCH_API_KEY="cpp-secret")
        code, _, err = await _run(*args, "--api-key", "wrong", env=env)
        assert code == 1 and "UNAUTHENTICATED" in err, (code, err)
    finally:
        await gateway.stop(0)


def test_vendored_status_proto_matches_googleapis_common_protos():
    """The vendored google/rpc/status.proto (clients/cpp/third_party/googleapis/) = the one gen_protos.py
    compiles against (googleapis-common-protos in the virtualenv)."""
    import google.rpc

    venv_copy = Path(google.rpc.__path__[0]) / "status.proto"
    vendored = SOURCE / "third_party" / "googleapis" / "google" / "rpc" / "status.proto"

    def body(text: str) -> list[str]:  # ignore comments and blank lines (e.g. a licence header's year)
        lines = (line.strip() for line in text.splitlines())
        return [line for line in lines if line and not line.startswith("//")]

    assert body(vendored.read_text()) == body(venv_copy.read_text()), (
        "refresh the vendored copy: see clients/cpp/third_party/googleapis/README.md")
