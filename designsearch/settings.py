"""Settings base shared by every service (pydantic-settings; one environment prefix per service)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

#: Repository root (the folder holding pyproject.toml) when running from a checkout. Installed copies
#: (the container image) locate their files through the variables below instead.
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Writable state (index, catalogue, Redis data, exported baseline model): ``$DESIGNSEARCH_VAR_DIR``,
#: default ``<repo>/var``.
VAR_DIR = Path(os.environ.get("DESIGNSEARCH_VAR_DIR", REPO_ROOT / "var"))


def repo_relative(path: str | os.PathLike) -> str:
    """``path`` as written in results files and records: relative to the repository when inside it,
    else as given."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(path)


def default_data_dir() -> Path:
    """The one resolution of the shared data folder: ``$DESIGNSEARCH_DATA``, else ``../shared/data``
    beside the checkout."""
    return Path(os.environ.get("DESIGNSEARCH_DATA", REPO_ROOT.parent / "shared" / "data"))


#: Committed model files (``$DESIGNSEARCH_MODEL_DIR``, default ``<repo>/models``): the defaults of the
#: services' ``model_path`` settings and of the training/evaluation commands.
MODEL_DIR = Path(os.environ.get("DESIGNSEARCH_MODEL_DIR", REPO_ROOT / "models"))
SEGMENTER_MODEL = MODEL_DIR / "segmenter" / "wheelseg-lite0.onnx"
EMBEDDER_MODEL = MODEL_DIR / "embedder" / "wheelembed-lite0-512.onnx"
#: INT8 (QDQ) quantisations of the two trained models, made from them by
#: ``python -m designsearch.training.quantize {segmenter,embedder}`` (issue 14; 1.4-1.7x faster on
#: CPU, validation metrics equal within noise, see the model cards). The services serve these when present.
SEGMENTER_MODEL_INT8 = MODEL_DIR / "segmenter" / "wheelseg-lite0-int8.onnx"
EMBEDDER_MODEL_INT8 = MODEL_DIR / "embedder" / "wheelembed-lite0-512-int8.onnx"


def served_model(int8: Path, fp32: Path) -> Path:
    """The model a service loads by default: the INT8 file when it exists, else the float32 one."""
    return int8 if int8.exists() else fp32


#: The ImageNet baseline embedder written by ``designsearch export-embedder`` (not committed).
IMAGENET_EMBEDDER_MODEL = VAR_DIR / "models" / "imagenet-lite0.onnx"


#: Fields of :class:`ServiceSettings` that can be set once for every service with the shared prefix
#: ``DESIGNSEARCH_`` (``DESIGNSEARCH_LOG_JSON=true``); a service's own prefix
#: (``DESIGNSEARCH_GATEWAY_LOG_JSON``) wins. ``port`` is per service only.
SHARED_FIELDS = ("host", "grace_s", "metrics_port", "max_connection_age_s", "max_connection_age_grace_s",
                 "log_level", "log_json", "tracing")


class _SharedEnvSource(EnvSettingsSource):
    """``DESIGNSEARCH_<FIELD>`` for the fields in :data:`SHARED_FIELDS` only."""

    def __call__(self) -> dict:
        return {k: v for k, v in super().__call__().items() if k in SHARED_FIELDS}


class ServiceSettings(BaseSettings):
    """Fields every gRPC service has. Subclasses set ``model_config`` with their own env prefix
    (``DESIGNSEARCH_<SERVICE>_``); the fields of :data:`SHARED_FIELDS` also read the shared prefix
    ``DESIGNSEARCH_``, at lower priority."""

    model_config = SettingsConfigDict(env_prefix="DESIGNSEARCH_", extra="ignore")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        """Sources by priority: arguments, the service's own prefix, the shared prefix, .env, secrets."""
        shared = _SharedEnvSource(settings_cls, env_prefix="DESIGNSEARCH_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(0, description="TCP port to listen on; 0 picks a free port.")
    grace_s: float = Field(5.0, description="Seconds in-flight RPCs get to finish on SIGTERM.")
    metrics_port: int | None = Field(
        None, description="Port of the Prometheus /metrics HTTP endpoint; unset = no endpoint."
    )
    max_connection_age_s: float = Field(
        30.0, description="Connections older than this get GOAWAY, so clients re-resolve DNS and spread to new pods.")
    max_connection_age_grace_s: float = Field(
        86_400.0, description="Time RPCs running on an aged connection (long ingestion streams) get to finish, seconds.")
    cpu_nice: int = Field(
        0, ge=0, le=19,
        description="Niceness added to the process at start (os.nice; Linux CFS weight ~1.25x per step). On one "
                    "machine the local stack runs the segmenter and embedder at 10 so the gateway's cached answers "
                    "do not queue behind their compute (benchmarks/fault_load.py: cached p99 136 -> ~60 ms at 16 "
                    "clients on 2 cores); 0 where each service has CPU of its own (Kubernetes requests).")
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    log_json: bool = Field(False, description="Log JSON lines (production) instead of coloured console lines.")
    tracing: bool = Field(
        False, description="Export OpenTelemetry traces (designsearch.tracing): one span per RPC and per pipeline "
                           "stage, sent where the standard OTEL_* variables say (OTLP/gRPC to "
                           "OTEL_EXPORTER_OTLP_ENDPOINT by default). Also on when OTEL_TRACES_EXPORTER is set "
                           "(not 'none'). Off = no exporter and a no-op tracer.")
    tls_cert_file: str = Field("", description="PEM certificate chain of this server; with tls_key_file the port "
                                                 "serves TLS only (empty = plaintext, for loopback).")
    tls_key_file: str = Field("", description="PEM private key of tls_cert_file.")
    tls_ca_file: str = Field("", description="PEM CA bundle this service trusts when it calls other services over TLS "
                                             "(the gateway's backends); empty = plaintext calls.")
    internal_token: str = Field(
        "", description="Service token of the internal API: the segmenter, embedder and search services require it "
                        "in metadata 'x-internal-token' and the gateway sends it; the same value everywhere (a "
                        "Kubernetes Secret); empty = internal calls are not authenticated (one machine, loopback).")
