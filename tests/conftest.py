"""Shared fixtures: real data, a real redis-server, and the four services in-process on free ports."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from designsearch.catalogue_data import demo_split, read_labels
from designsearch.procs import PostgresProcess, RedisProcess
from designsearch.settings import default_data_dir

DATA = default_data_dir()
#: The internal service token of the test stack.
INTERNAL_TOKEN = "test-internal-token"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (or ``$DESIGNSEARCH_DATA``)."""
    if not (DATA / "stanford-cars" / "labels.csv").exists():
        pytest.fail(f"real data not found at {DATA}; set DESIGNSEARCH_DATA")
    return DATA


@pytest.fixture(scope="session")
def small_catalogue(data_dir):
    """Stanford Cars classes 79-83: 5 designs, 5 catalogue images and 1 held-out query each."""
    images = read_labels(data_dir / "stanford-cars" / "labels.csv")
    catalogue, queries = demo_split(images, range(79, 84), queries_per_class=1)
    by_class: dict[int, list] = {}
    for img in catalogue:
        by_class.setdefault(img.class_id, []).append(img)
    catalogue = [img for cls in sorted(by_class) for img in by_class[cls][:5]]
    return catalogue, queries


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on a free loopback port (Debian's ``postgresql``, started for the tests)."""
    server = PostgresProcess()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalogue_url(request, tmp_path) -> str:
    """A fresh, empty catalogue database: SQLite in ``tmp_path``, or a new database on the test PostgreSQL
    server (the catalogue tests run on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalogue.db'}"
    import uuid

    return request.getfixturevalue("postgres_server").create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def embedder_model() -> str:
    """The ONNX model the embedder serves (trained if committed, else the exported ImageNet one)."""
    from designsearch.services.embedder.config import IMAGENET_MODEL, default_model_path

    path = Path(default_model_path())
    if not path.exists() and path == IMAGENET_MODEL:
        from designsearch.training.embedder.export import export_imagenet

        export_imagenet(IMAGENET_MODEL)
    return str(path)


def gateway_settings(backends: dict | None, redis_url: str, var: Path, **overrides):
    """The one way tests build ``GatewaySettings``: free port, the given backends (services from
    :func:`stack`, or None for in-memory backends), real Redis, a SQLite catalogue under ``var``."""
    from designsearch.gateway.config import GatewaySettings

    addresses = {} if backends is None else {
        "segmenter_address": backends["segmenter"].address, "embedder_address": backends["embedder"].address,
        "search_address": backends["search"].address}
    return GatewaySettings(**{"port": 0, **addresses, "redis_url": redis_url, "internal_token": INTERNAL_TOKEN,
                              "catalogue_url": f"sqlite:///{var / 'catalogue.db'}", "api_keys": [], **overrides})


@pytest.fixture(scope="session")
def make_gateway_settings(redis_server):
    """Factory fixture: ``make_gateway_settings(stack_or_None, var_dir, **overrides)``."""
    return lambda backends, var, **o: gateway_settings(backends, o.pop("redis_url", redis_server.url), var, **o)


@pytest_asyncio.fixture(scope="session")
async def stack(tmp_path_factory, redis_server, postgres_server, embedder_model):
    """Segmenter, embedder, search (embedded engine on disk; DESIGNSEARCH_TEST_ENGINE=local for qdrant-client
    local mode) and gateway (catalogue on the test PostgreSQL server, the production database), in-process."""
    from designsearch.gateway.server import create_server as create_gateway
    from designsearch.services.embedder.config import EmbedderSettings
    from designsearch.services.embedder.server import create_server as create_embedder
    from designsearch.services.search.config import SearchSettings
    from designsearch.services.search.server import create_server as create_search
    from designsearch.services.segmenter.config import SegmenterSettings
    from designsearch.services.segmenter.server import create_server as create_segmenter

    var = tmp_path_factory.mktemp("var")
    token = INTERNAL_TOKEN  # internal calls authenticated, as in production
    segmenter = await create_segmenter(SegmenterSettings(port=0, internal_token=token))
    embedder = await create_embedder(EmbedderSettings(port=0, model_path=embedder_model, internal_token=token))
    search = await create_search(SearchSettings(port=0, engine=os.environ.get("DESIGNSEARCH_TEST_ENGINE", "edge"),
                                                path=str(var / "index"), snapshot_dir=str(var / "snapshots"),
                                                internal_token=token))
    backends = {"segmenter": segmenter, "embedder": embedder, "search": search}
    gateway = await create_gateway(gateway_settings(backends, redis_server.url, var,
                                                    catalogue_url=postgres_server.create_database("stack")))
    services = {**backends, "gateway": gateway}
    yield services
    for s in [gateway, segmenter, embedder, search]:
        await s.stop(0)


@pytest_asyncio.fixture(scope="session")
async def gateway_stub(stack):
    """A real GatewayService stub on a channel to the in-process gateway."""
    from designsearch.v1 import gateway_pb2_grpc

    channel = grpc.aio.insecure_channel(stack["gateway"].address)
    yield gateway_pb2_grpc.GatewayServiceStub(channel)
    await channel.close()


@pytest_asyncio.fixture(scope="session")
async def indexed(gateway_stub, small_catalogue):
    """The small catalogue ingested through IndexDesigns; returns (catalogue, queries, response)."""
    from designsearch.client import index_requests

    catalogue, queries = small_catalogue
    response = await gateway_stub.IndexDesigns(index_requests(catalogue), timeout=300)
    return catalogue, queries, response
