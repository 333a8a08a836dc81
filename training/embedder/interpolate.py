"""Weight-space interpolation of two embedders fine-tuned from one another (issue 9).

``θ(α) = (1 − α)·θ_a + α·θ_b`` for every floating-point tensor of two ``EmbeddingNet`` state dicts with the
same keys and shapes — WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022) and
model soups (Wortsman et al., ICML 2022): when ``b`` was fine-tuned starting from ``a`` the two lie in one
basin of the loss, and the straight line between them trades what each learned (here: ``a`` the served
network's design discrimination, ``b`` the rotation-distilled network's rotation invariance) without
training. Integer tensors (BatchNorm's ``num_batches_tracked``) are taken from ``a``; BatchNorm running
statistics are interpolated like the weights (the distilled student kept the teacher's, frozen).

    python -m designsearch.training.embedder.interpolate --a runs/embedder/ce-b12/weights.pt \\
        --b runs/embedder/rotd-orbit8-ce/weights.pt --alpha 0.5 --out runs/embedder/wise/a0.5/model.onnx

writes ``weights.pt`` beside ``--out`` and the ONNX file exported with GeM pooling ``--gem-p`` (2, as
served); whitening and quantisation follow as for any trained network
(``python -m designsearch.training.embedder.whitening``, ``python -m designsearch.training.quantize embedder``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def interpolate_state_dicts(a: dict, b: dict, alpha: float) -> dict:
    """Return ``(1 − alpha)·a + alpha·b`` tensor by tensor.

    Args:
        a, b: ``torch`` state dicts with the same keys and tensor shapes.
        alpha: weight of ``b`` in [0, 1] (0 gives ``a``, 1 gives ``b``).

    Returns:
        A new state dict; floating-point tensors interpolated (in their own dtype), others copied from ``a``.

    Raises:
        ValueError: ``alpha`` outside [0, 1], different keys, or a shape mismatch.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if set(a) != set(b):
        raise ValueError(f"state dicts differ in keys: {sorted(set(a) ^ set(b))[:5]}")
    out = {}
    for key, ta in a.items():
        tb = b[key]
        if ta.shape != tb.shape:
            raise ValueError(f"{key}: shape {tuple(ta.shape)} vs {tuple(tb.shape)}")
        out[key] = ((1.0 - alpha) * ta + alpha * tb).to(ta.dtype) if ta.is_floating_point() else ta.clone()
    return out


def interpolate(a: str | Path, b: str | Path, alpha: float, out: str | Path, pooling_p: float = 2.0,
                variant: str = "lite0", dim: int = 512) -> str:
    """Interpolate two weight files, save ``weights.pt`` beside ``out`` and export ``out`` (ONNX).

    Args:
        a, b: ``EmbeddingNet`` state-dict files (``.pt``) of the same ``variant`` and ``dim``.
        alpha: weight of ``b`` in [0, 1].
        out: ONNX file to write (input ``pixels`` float32 (N, 3, S, S) RGB 0..255, output ``embedding``
            float32 (N, dim), unit L2 norm).
        pooling_p: GeM exponent of the export (1 = average pooling).
        variant, dim: the networks' EfficientNet-Lite variant and projection size.

    Returns:
        The model version id of ``out`` (``sha256:`` + 16 hex digits).

    Raises:
        FileNotFoundError: a weights file is missing.
        ValueError: see :func:`interpolate_state_dicts`.
    """
    import torch

    from .model import INPUT_SIZE, EmbeddingNet, export_onnx

    for path in (a, b):
        if not Path(path).is_file():
            raise FileNotFoundError(f"weights {path} not found")
    state = interpolate_state_dicts(torch.load(a, map_location="cpu"), torch.load(b, map_location="cpu"), alpha)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out.parent / "weights.pt")
    net = EmbeddingNet(variant, dim=dim, pretrained=False, pooling_p=pooling_p)
    net.load_state_dict(state)
    return export_onnx(net.eval(), out, INPUT_SIZE[variant])


def main(argv: list[str] | None = None) -> str:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--a", required=True, help="weights at alpha = 0 (the network fine-tuned from)")
    p.add_argument("--b", required=True, help="weights at alpha = 1")
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--out", required=True, help="ONNX file to write (weights.pt goes beside it)")
    p.add_argument("--gem-p", type=float, default=2.0, help="GeM pooling exponent of the export (served: 2)")
    p.add_argument("--variant", default="lite0")
    p.add_argument("--dim", type=int, default=512)
    args = p.parse_args(argv)
    version = interpolate(args.a, args.b, args.alpha, args.out, args.gem_p, args.variant, args.dim)
    print(args.out, version)
    return version


def wise(cfg, checkpoint: str | Path, alpha: float, out: str | Path) -> dict:
    """``cfg``: the :class:`.train_design.DesignConfig` of the run. WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022) of a finished run: the
    network ``(1 - alpha) * served + alpha * run`` (:func:`.interpolate.interpolate_state_dicts`), the served
    whitening appended, float32 to ``out`` and INT8 beside it.

    Returns:
        ``{"model": {...}, "int8": {...}}`` with paths and sha256.

    Raises:
        FileNotFoundError: no checkpoint.
    """
    import hashlib

    import torch

    from designsearch.training import quantize as Q
    from designsearch.versioning import file_version

    from .train_design import build_model, export

    served, _ = build_model(cfg)
    run, _ = build_model(cfg)
    state = {k: v for k, v in torch.load(checkpoint, weights_only=False)["model"].items() if not k.startswith("head.")}
    run.load_state_dict(state, strict=False)
    a = {k: v for k, v in served.net.state_dict().items()}
    served.net.load_state_dict(interpolate_state_dicts(a, run.net.state_dict(), alpha))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    version = export(served, out, {"method": f"WiSE-FT alpha {alpha} between the served network and {checkpoint}, "
                                             "served learned whitening kept", "source_model": file_version(cfg.base)})
    int8 = Q.quantize_embedder(out)
    return {"model": {"path": str(out), "version": version, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()},
            "int8": {"path": str(int8), "sha256": hashlib.sha256(int8.read_bytes()).hexdigest()}}


if __name__ == "__main__":
    main()
