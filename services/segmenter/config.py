"""Segmenter settings (environment prefix ``DESIGNSEARCH_SEGMENTER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from designsearch.settings import SEGMENTER_MODEL, SEGMENTER_MODEL_INT8, ServiceSettings, served_model


class SegmenterSettings(ServiceSettings):
    """Settings of the segmenter service."""

    model_config = SettingsConfigDict(env_prefix="DESIGNSEARCH_SEGMENTER_", extra="ignore")

    port: int = Field(50051, description="gRPC port (0 = any free port).")
    detector: str = Field(
        "auto", description="'learned' (ONNX model), 'classical' (Hough circles), or 'auto': learned if the model file exists."
    )
    model_path: str = Field(
        str(served_model(SEGMENTER_MODEL_INT8, SEGMENTER_MODEL)),
        description="ONNX wheel segmenter file (default: the INT8 quantisation when present, else the float32 model).",
    )
    threads: int = Field(2, description="onnxruntime intra-op threads.")
    providers: list[str] = Field(
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="onnxruntime execution providers in order of preference; unavailable ones are skipped (the CPU "
                    "image has only CPUExecutionProvider; the gpu image, deploy/Dockerfile target gpu, adds CUDA).",
    )
    ort_spinning: bool = Field(
        False, description="onnxruntime threads busy-wait between runs: on only when the service has its cores to "
                           "itself (off, the default, when services share cores; see designsearch.onnx.make_session).")
    max_crops: int = Field(4, description="Most crops returned per image when the request does not say.")
    crop_margin: float = Field(0.08, description="Margin around a wheel box in the square crop, as a fraction of its side.")
    crop_size: int = Field(256, description="Side of the returned square crop JPEGs, pixels.")
