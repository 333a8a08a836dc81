"""Fixtures of the gateway core's unit tests: a core over in-memory backends, a real Redis and a real
catalogue (SQLite and PostgreSQL), and real images from ../shared/data."""

from __future__ import annotations

import pytest

from designsearch.gateway.cache import QueryCache
from designsearch.gateway.catalogue import Catalogue
from designsearch.gateway.core import GatewayCore
from tests.unit.memory_backends import MemoryBackends


@pytest.fixture
async def core(tmp_path, make_gateway_settings, catalogue_url):
    backends = MemoryBackends()
    settings = make_gateway_settings(None, tmp_path, alias_refresh_s=0.0, catalogue_url=catalogue_url)
    core = GatewayCore(backends, QueryCache(settings.redis_url, 60), Catalogue(settings.catalogue_url), settings)
    await core.start()
    yield core
    await core.close()


@pytest.fixture(scope="module")
def images(small_catalogue):
    catalogue, queries = small_catalogue
    return catalogue, queries
