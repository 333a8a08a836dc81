"""Embedder settings (environment prefix ``DESIGNSEARCH_EMBEDDER_``)."""

from __future__ import annotations


from pydantic import Field
from pydantic_settings import SettingsConfigDict

from designsearch.settings import EMBEDDER_MODEL, EMBEDDER_MODEL_INT8, ServiceSettings, served_model
from designsearch.settings import IMAGENET_EMBEDDER_MODEL as IMAGENET_MODEL

#: The trained model as served: its INT8 quantisation when present, else the float32 file.
TRAINED_MODEL = served_model(EMBEDDER_MODEL_INT8, EMBEDDER_MODEL)


def default_model_path() -> str:
    """The trained model (INT8 when present, see :func:`designsearch.settings.served_model`), else the
    exported ImageNet baseline. With a GPU, set ``model_path`` to the float32 file."""
    return str(TRAINED_MODEL if TRAINED_MODEL.exists() else IMAGENET_MODEL)


class EmbedderSettings(ServiceSettings):
    """Settings of the embedder service."""

    model_config = SettingsConfigDict(env_prefix="DESIGNSEARCH_EMBEDDER_", extra="ignore")

    port: int = Field(50052, description="gRPC port (0 = any free port).")
    model_path: str = Field(default_factory=default_model_path, description="ONNX embedding model file.")
    providers: list[str] = Field(
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="onnxruntime execution providers in order of preference; unavailable ones are skipped.",
    )
    threads: int = Field(2, description="onnxruntime intra-op threads (CPU), per model instance.")
    instances: int = Field(
        1, ge=1, le=16, description="Model instances (onnxruntime sessions of the model file) run side by side, each "
                                    "with `threads` threads; a request of several images is split across them.")
    ort_spinning: bool = Field(
        False, description="onnxruntime threads busy-wait between runs: on only when the service has its cores to "
                           "itself (off, the default, when services share cores; see designsearch.onnx.make_session).")
    max_batch_size: int = Field(32, description="Most images per model call.")
    max_batch_time_ms: float = Field(
        0.0, description="Longest wait for more images before running a partial batch, ms; 0 = continuous batching "
                         "(run at once; a batch is what queued during the previous model call), the CPU default.")
    max_images_per_request: int = Field(64, description="Most images one Embed request may carry.")
