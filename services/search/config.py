"""Search settings (environment prefix ``DESIGNSEARCH_SEARCH_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from designsearch.settings import VAR_DIR, ServiceSettings
from designsearch.services.search.index import HnswConfig


class SearchSettings(ServiceSettings):
    """Settings of the search service."""

    model_config = SettingsConfigDict(env_prefix="DESIGNSEARCH_SEARCH_", extra="ignore")

    port: int = Field(50053, description="gRPC port (0 = any free port).")
    engine: str = Field(
        "edge",
        description="'qdrant' (a Qdrant server or cluster at `url`), 'edge' (qdrant-edge-py, embedded, one "
        "machine) or 'local' (qdrant-client local mode: brute force, for small data and tests).",
    )
    url: str | None = Field(None, description="Qdrant server URL, e.g. http://qdrant:6333; setting it selects engine 'qdrant'.")
    api_key: str | None = Field(None, description="Qdrant server API key.")
    path: str = Field(str(VAR_DIR / "index"), description="Storage folder of the embedded engines.")
    timeout_s: float = Field(10.0, description="Deadline of calls to a Qdrant server, seconds.")
    hnsw_m: int = Field(16, description="HNSW edges per node.")
    hnsw_ef_construct: int = Field(128, description="HNSW candidate list size while building.")
    hnsw_ef: int = Field(256, description="HNSW candidate list size while searching (1M benchmark: ef 256 → recall@10 0.994, p50 0.8 ms).")
    hnsw_full_scan_threshold: int = Field(
        32_000, description="Below this many kilobytes of vectors matching a filter, search is exact (filtered queries).")
    quantization: str | None = Field(None, description="None or 'int8' (scalar quantisation with rescoring).")
    snapshot_dir: str = Field(str(VAR_DIR / "snapshots"), description="The snapshot folder: CreateSnapshot writes here, RestoreSnapshot reads names from here.")
    max_limit: int = Field(1000, description="Largest accepted search limit.")

    def hnsw(self) -> HnswConfig:
        """The HNSW/quantisation config of new collections."""
        return HnswConfig(m=self.hnsw_m, ef_construct=self.hnsw_ef_construct, ef=self.hnsw_ef, quantization=self.quantization,
                          full_scan_threshold=self.hnsw_full_scan_threshold)
