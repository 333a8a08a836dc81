"""Web page settings (environment prefix ``DESIGNSEARCH_WEB_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from designsearch.settings import ServiceSettings


class WebSettings(ServiceSettings):
    """Settings of the web page server (HTTP; the page's only data path is the gateway's gRPC API).

    ``tls_cert_file`` / ``tls_key_file`` serve HTTPS; ``tls_ca_file`` verifies a TLS gateway.
    """

    model_config = SettingsConfigDict(env_prefix="DESIGNSEARCH_WEB_", extra="ignore")

    port: int = Field(8080, description="HTTP port of the page.")
    gateway_address: str = Field("127.0.0.1:50050", description="Gateway target (host:port or gRPC URI).")
    api_key: str = Field("", description="API key sent to the gateway when the browser sends none (header "
                                          "X-API-Key); empty = none. Each designer should use their own key: "
                                          "feedback (dislikes) is kept per key.")
    max_upload_mb: float = Field(20.0, description="Largest accepted image upload, MiB (HTTP 413 above).")
    timeout_s: float = Field(30.0, description="Deadline of each gateway call, seconds.")
