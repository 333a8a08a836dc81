"""Settings: one shared prefix for the fields every service has, the service's own prefix first;
one data folder and one model folder resolution."""

from __future__ import annotations

from designsearch.services.embedder.config import EmbedderSettings
from designsearch.services.search.config import SearchSettings
from designsearch.services.segmenter.config import SegmenterSettings
from designsearch.gateway.config import GatewaySettings

ALL = (GatewaySettings, SegmenterSettings, EmbedderSettings, SearchSettings)


def test_shared_prefix_sets_every_service_and_own_prefix_wins(monkeypatch):
    monkeypatch.setenv("DESIGNSEARCH_LOG_JSON", "true")
    monkeypatch.setenv("DESIGNSEARCH_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("DESIGNSEARCH_GATEWAY_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("DESIGNSEARCH_PORT", "1234")  # port is per service: not shared
    for cls in ALL:
        s = cls()
        assert s.log_json is True
        assert s.log_level == ("WARNING" if cls is GatewaySettings else "DEBUG")
        assert s.port != 1234
    assert GatewaySettings(log_level="ERROR").log_level == "ERROR"  # arguments first


def test_data_and_model_folders_come_from_the_environment(tmp_path):
    """Read once at import, so checked in a fresh interpreter (an installed copy has no source tree)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "DESIGNSEARCH_DATA": str(tmp_path / "data"), "DESIGNSEARCH_MODEL_DIR": str(tmp_path / "models"),
           "DESIGNSEARCH_VAR_DIR": str(tmp_path / "var")}
    code = ("import json, designsearch.settings as s\n"
            "from designsearch.services.embedder.config import EmbedderSettings\n"
            "from designsearch.services.segmenter.config import SegmenterSettings\n"
            "from designsearch.gateway.config import GatewaySettings\n"
            "print(json.dumps([str(s.default_data_dir()), SegmenterSettings().model_path, EmbedderSettings().model_path,"
            " GatewaySettings().catalogue_url]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    data, segmenter, embedder, catalogue = json.loads(out)
    assert data == str(tmp_path / "data")
    assert segmenter == str(tmp_path / "models" / "segmenter" / "wheelseg-lite0.onnx")
    # no trained model in the empty model folder: the exported baseline under the var folder
    assert embedder == str(tmp_path / "var" / "models" / "imagenet-lite0.onnx")
    assert catalogue == f"sqlite:///{tmp_path / 'var' / 'catalogue.db'}"
