"""Gateway settings (environment prefix ``DESIGNSEARCH_GATEWAY_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from designsearch.gateway.plan import DEFAULT_POLICY as _P
from designsearch.settings import MODEL_DIR, VAR_DIR, ServiceSettings


class GatewaySettings(ServiceSettings):
    """Settings of the gateway (the public API). The query rules' defaults are those of
    :class:`designsearch.gateway.plan.QueryPolicy` (written there only), which is built from these fields."""

    model_config = SettingsConfigDict(env_prefix="DESIGNSEARCH_GATEWAY_", extra="ignore")

    port: int = Field(50050, description="gRPC port (0 = any free port).")
    segmenter_address: str = Field("127.0.0.1:50051", description="Segmenter target (dns:///svc:port in Kubernetes).")
    embedder_address: str = Field("127.0.0.1:50052", description="Embedder target.")
    upgrade_embedder_addresses: list[str] = Field(
        [], description="Embedders of models being rolled out; the gateway uses whichever serves the live collection."
    )
    alias_refresh_s: float = Field(1.0, description="How often the live-collection alias is re-resolved, seconds.")
    search_address: str = Field("127.0.0.1:50053", description="Search service target.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis server for the query-vector cache.")
    cache_ttl_s: int = Field(7 * 24 * 3600, description="Lifetime of a cached query vector set, seconds.")
    cache_timeout_s: float = Field(
        0.05, description="Timeout of each Redis call, seconds (a slow cache is a miss); measured on the cache's own "
                          "threads, so it times Redis, not the gateway's event loop.")
    cache_breaker_failures: int = Field(
        3, ge=1, description="Consecutive failed Redis calls (timeouts, refused connections) that open the cache's "
                             "circuit breaker.")
    cache_breaker_open_s: float = Field(
        2.0, description="Once the breaker is open the cache is skipped this long, then probed again, seconds.")
    cache_threads: int = Field(4, ge=1, description="Threads (and most connections) calling Redis.")
    health_interval_s: float = Field(
        1.0, description="How often the backends are probed for readiness (NOT_SERVING while one is down), seconds.")
    require_cache: bool = Field(
        False, description="Refuse to start (stay NOT_SERVING) while Redis is down; by default the gateway serves without it.")
    catalogue_url: str = Field(
        f"sqlite:///{VAR_DIR / 'catalogue.db'}", description="SQLAlchemy URL of the catalogue database."
    )
    collection_prefix: str = Field("designs", description="Collections are named <prefix>_<embedder version>.")
    api_keys: list[str] = Field(
        [], description="Accepted API keys (metadata 'x-api-key'), plain or as 'sha256:<hex>' hashes (only hashes are "
                        "kept in memory); empty = no authentication.")
    page_token_secret: str = Field(
        "", description="Key that signs ListDesigns page tokens (a token the API did not issue is INVALID_ARGUMENT); the "
                        "same on every replica. Empty: derived from internal_token, or random per process without one.")
    rate_limit_per_s: float = Field(0.0, description="Requests per second per API key (or per peer without one); 0 = no limit.")
    rate_burst: float = Field(20.0, description="Burst size of the per-key rate limit, requests.")
    rate_limit_shared: bool = Field(
        True, description="Count the per-key rate limit in Redis (redis_url), so that all gateway replicas together "
                          "allow rate_limit_per_s (GCRA, designsearch.ratelimit); while Redis is down, and when "
                          "false, each replica counts alone (the limit is then per replica).")
    default_k: int = Field(_P.default_k, description="Designs returned when a request leaves k at 0.")
    max_k: int = Field(_P.max_k, description="Largest accepted k.")
    max_crops: int = Field(_P.max_crops, description="Most query crops searched per image (and the whole picture).")
    fusion_bonus: float = Field(
        _P.fusion_bonus, ge=0.0, le=0.2,
        description="Query fusion: cosine bonus for a design found by every query vector (crops and whole "
                    "picture); a design found by m of n vectors gets bonus * (m - 1) / (n - 1) on top of its "
                    "best cosine (gateway/fusion.py). 0 = plain max over query vectors.")
    fusion_depth: int = Field(
        _P.fusion_depth, ge=1, le=100,
        description="Query fusion: a query vector votes for a design when the design is among its first "
                    "fusion_depth designs; each vector is searched for max(k, fusion_depth) designs.")
    query_closeup_rotations: int = Field(
        _P.closeup_rotations, ge=0, le=3,
        description="Rotated copies (90, 180, 270 degrees) embedded of the close-up crop and the whole picture of a "
                    "query the segmenter calls a close-up; each region's hits are its best over the copies (a wheel "
                    "filling the frame may be turned any way). 0 = off; other queries are never rotated.")
    sketch_search: Literal["photo", "lines", "both"] = Field(
        _P.sketch_search, description="Catalogue vectors a sketch query is searched against: photo (the embedder puts a drawing "
                             "near the photos of its design; designers' drawings are not Canny edge maps), lines (the "
                             "catalogue's Canny line drawings, the reference system's rule) or both (best hit of the two); "
                             "lines and both need a collection created with ingest_lines_view (otherwise: photo).")
    closeup_cutouts: Literal["off", "crops", "crops_whole"] = Field(
        _P.closeup_cutouts, description="Catalogue cut-outs (each catalogue wheel alone on white, the cutout vector) searched "
                             "besides the photo vectors by the close-up crops (crops) or also the whole picture "
                             "(crops_whole) of a query the segmenter calls a close-up, and by a sketch's wheel crops; "
                             "each design's best hit counts.")
    design_top_m: int = Field(
        _P.design_top_m, ge=1, le=100,
        description="For a query the segmenter calls a close-up, or a sketch, a design's score for one query region is the mean "
                    "cosine of its design_top_m best catalogue points (1 = its best point only, as for other "
                    "queries): several close pictures of a design outweigh one look-alike picture of another "
                    "(designer pictures: close-ups first 35 -> 44 %, renderings 48 -> 56 %). Each of those searches "
                    "returns that many points per design. A design whose best point reaches cosine 0.9 (a "
                    "near-copy of one of its pictures) scores that cosine.")
    segment_timeout_s: float = Field(5.0, description="Deadline of Segment calls, seconds.")
    embed_timeout_s: float = Field(10.0, description="Deadline of Embed calls, seconds.")
    search_timeout_s: float = Field(3.0, description="Deadline of Search calls, seconds.")
    ingest_concurrency: int = Field(4, description="Catalogue images processed at once during IndexDesigns.")
    ingest_mirror_whole_picture: bool = Field(
        True, description="Index each catalogue image's whole-picture vectors as the mean of the picture's and its "
                          "mirror image's (catalogue-side flip augmentation: a car photographed facing the other way "
                          "still matches; whole-car R@1 0.844 -> 0.857 on the validation classes); costs two more "
                          "embeddings per ingested image, none per query.")
    ingest_cutouts: bool = Field(
        True, description="Give each catalogue crop a cutout vector: its wheel alone on white (segmentation mask), "
                          "embedded as a photo; one more embedding per crop at ingestion.")
    ingest_lines_view: bool = Field(
        False, description="Collections created from now on also hold a lines vector (Canny line drawing) per catalogue "
                           "point, which only sketch_search lines/both search: one more embedding per region at "
                           "ingestion. Off: designers' drawings match the photo vectors better (README).")
    answer_ttl_s: int = Field(
        _P.answer_ttl_s, ge=0, description="Lifetime of a cached whole FindSimilar answer, seconds (any catalogue "
                                           "change invalidates them all at once); 0 = answers are not cached.")
    thumbnail_px: int = Field(128, description="Longest side of stored thumbnails, pixels.")
    max_stream_items: int = Field(100_000, description="Most items one IndexDesigns stream may carry.")
    max_message_mb: int = Field(
        40, description="Largest request message, MiB (an image is at most 32 MiB): bigger ones are refused by gRPC.")
    feedback_weight: float = Field(
        _P.feedback_weight, description="Rocchio weight γ: a caller's later queries move by γ × the mean of their disliked designs' vectors.")
    verify_calibration: str = Field(
        str(MODEL_DIR / "embedder" / "verify-calibration.json"),
        description="Verify thresholds per model version (python -m designsearch.training.verify_calibration).")
