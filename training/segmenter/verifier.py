"""The segmenter's region verifier: a second stage that tells a whole wheel from a look-alike (issue 30).

The served network finds round, metallic things well; what it gets wrong on real pictures is *which* of them is
a wheel: on the car-parts-50 validation look-alikes (brake rotors, clutch plates, torque converters, lights)
it fires on 7 %, and at a lower score threshold — which would find the black-on-black rims it misses — on
30-50 %. Two-stage detectors separate "where" from "what": the first stage proposes regions, the second
classifies each from features pooled inside it (Faster R-CNN, Ren et al., NeurIPS 2015; Mask R-CNN, He et al.,
ICCV 2017). Here the proposals are the instances of the probability map
(:meth:`~designsearch.services.segmenter.learned.LearnedWheelDetector.candidate_regions`) and the second stage is
an L2-regularised logistic regression on the encoder features averaged inside each instance's mask: stride-16
features (112 channels) and stride-32 features (320 channels, upsampled ×2 by nearest neighbour), weighted by
the share of each stride-16 cell the mask covers. Because the classifier is linear, it is exported as 1x1
convolutions on those feature maps (``verify`` output, ``float32 (N, 1, S/16, S/16)`` logits), and the mask-weighted
mean of that map is exactly the classifier's logit (:func:`~designsearch.services.segmenter.regions.verifier_probability`).
The network's weights do not change; only the head is fitted, on TRAINING pictures only:

* real car-parts-50 TRAIN rims (as served, and under the close-up augmentation of the training mix) and TRAIN
  look-alikes (as served and augmented: every instance found on them is a negative);
* the training mix of the served model (:class:`~.synthetic.engine_mix.RealWorldMixDataset`: Car-Parts
  training photos, pasted close-ups, wheel-free pictures, and the wheel-design engine's TRAIN renders, line
  drawings and on-car composites when a set is given).

An instance is a positive when its box has IoU ≥ :data:`POSITIVE_IOU` with a true wheel's box, a negative when
its best IoU is under :data:`NEGATIVE_IOU` (a look-alike, a hub cap, a spoke gap, a light), ignored between.
Features are read from the INT8 file the head is served in (the head itself stays float32), so the fit sees
the served numbers.

    python -m designsearch.training.segmenter.verifier --model models/segmenter/wheelseg-lite0.onnx \\
        --out runs/seg-verify [--engine-set var/wheelgen/set-v1] [--items 3000]

writes ``wheelseg-lite0.onnx`` (float, with the head), ``wheelseg-lite0-int8.onnx``, ``features.npz`` and
``verifier.json`` (the fit, its cross-validated AUC and the chosen regularisation) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import helper, numpy_helper

#: Encoder tensors the head reads (EfficientNet-Lite0 blocks 10 and 15 of the exported WheelSegNet): stride 16, 112
#: channels; stride 32, 320 channels (the inputs of ``/laterals.2`` and ``/laterals.3``).
FEATURE_INPUTS = {16: "/laterals.2/Conv", 32: "/laterals.3/Conv"}
#: Box IoU with a true wheel for an instance to be a positive / under which it is a negative.
POSITIVE_IOU, NEGATIVE_IOU = 0.5, 0.3
#: Score threshold of the proposals the head is fitted on (under the served ``min_score``, so that a lower
#: serving threshold meets instances the fit has seen).
PROPOSAL_MIN_SCORE = 0.5


def _feature_tensors(model: onnx.ModelProto) -> dict[int, str]:
    """Names of the stride-16 and stride-32 feature tensors (the first inputs of the lateral convolutions)."""
    by_name = {n.name: n for n in model.graph.node}
    missing = [v for v in FEATURE_INPUTS.values() if v not in by_name]
    if missing:
        raise ValueError(f"not a WheelSegNet graph: no node(s) {missing}")
    return {k: by_name[v].input[0] for k, v in FEATURE_INPUTS.items()}


def add_verify_head(src: str | Path, dst: str | Path, w16: np.ndarray, w32: np.ndarray, bias: float) -> str:
    """Append the region verifier to a float32 segmenter ONNX file (output ``verify``).

    ``verify = conv1x1(f16; w16, bias) + upsample2x_nearest(conv1x1(f32; w32))`` (the upsampling as ``DepthToSpace``
    of four copies of the stride-32 logit, which onnxruntime's quantisation tools infer shapes through), ``float32 (N, 1, S/16, S/16)``
    logits; nodes named ``/verify/...`` (kept float32 by :func:`designsearch.training.quantize.segmenter_float_nodes`).
    An existing head is replaced.

    Args:
        src, dst: ONNX files (``dst`` may be ``src``).
        w16: float32 ``(112,)`` weights on the stride-16 features; w32: float32 ``(320,)`` on the stride-32 ones.
        bias: the logit's bias.

    Returns:
        ``dst`` as a string.

    Raises:
        ValueError: ``src`` is not a WheelSegNet export or the weights do not fit its channels.
    """
    model = onnx.load(str(src))
    graph = model.graph
    for node in [n for n in graph.node if n.name.startswith("/verify/")]:
        graph.node.remove(node)
    for init in [t for t in graph.initializer if t.name.startswith("verify.")]:
        graph.initializer.remove(init)
    for out in [o for o in graph.output if o.name == "verify"]:
        graph.output.remove(out)
    feats = _feature_tensors(model)
    w16 = np.asarray(w16, np.float32).reshape(1, -1, 1, 1)
    w32 = np.asarray(w32, np.float32).reshape(1, -1, 1, 1)
    if w16.shape[1] != 112 or w32.shape[1] != 320:
        raise ValueError(f"weights {w16.shape[1]}/{w32.shape[1]} do not fit the 112/320 feature channels")
    graph.initializer.extend([
        numpy_helper.from_array(w16, "verify.w16"), numpy_helper.from_array(np.array([bias], np.float32), "verify.bias"),
        numpy_helper.from_array(np.repeat(w32, 4, axis=0), "verify.w32"),
    ])
    graph.node.extend([
        helper.make_node("Conv", [feats[16], "verify.w16", "verify.bias"], ["/verify/conv16"], name="/verify/Conv16"),
        helper.make_node("Conv", [feats[32], "verify.w32"], ["/verify/conv32"], name="/verify/Conv32"),
        # four equal channels, one per position of a 2x2 block: DepthToSpace is then the nearest-neighbour x2
        helper.make_node("DepthToSpace", ["/verify/conv32"], ["/verify/up32"], name="/verify/DepthToSpace", blocksize=2),
        helper.make_node("Add", ["/verify/conv16", "/verify/up32"], ["verify"], name="/verify/Add"),
    ])
    size = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    graph.output.append(helper.make_tensor_value_info("verify", onnx.TensorProto.FLOAT, ["batch", 1, size // 16, size // 16]))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return str(dst)


class FeatureReader:
    """Runs a segmenter ONNX file (float or INT8, with a ``verify`` head) and returns its probability map and the
    two feature maps the head reads — the tensors that feed ``/verify/Conv16`` and ``/verify/Conv32``, i.e. in an
    INT8 file the dequantised values the served head sees.

    Args:
        model_path: segmenter ONNX file holding a verify head (any weights).
        threads: onnxruntime threads.
    """

    def __init__(self, model_path: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        model = onnx.load(str(model_path))
        by_name = {n.name: n for n in model.graph.node}
        if "/verify/Conv16" not in by_name:
            raise ValueError(f"{model_path} has no verify head (run add_verify_head first)")
        self.names = [by_name["/verify/Conv16"].input[0], by_name["/verify/Conv32"].input[0]]
        for name in self.names:
            model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.size = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``rgb`` uint8 ``(S, S, 3)`` → probability ``(S, S)``, stride-16 ``(112, S/16, S/16)``, stride-32 features
        upsampled to ``(320, S/16, S/16)``, all float32."""
        from designsearch.services.segmenter.learned import network_input

        prob, f16, f32 = self.session.run(["prob", *self.names], {"pixels": network_input(rgb, self.size)})
        return prob[0, 0], f16[0], np.repeat(np.repeat(f32[0], 2, axis=1), 2, axis=2)


def pooled_features(mask: np.ndarray, f16: np.ndarray, f32: np.ndarray) -> np.ndarray:
    """The head's input for one instance: float32 ``(432,)`` = mask-weighted means of the 112 + 320 channels."""
    from designsearch.services.segmenter.regions import mask_weights

    w = mask_weights(mask, f16.shape[1])
    return np.concatenate([(f16 * w).sum((1, 2)), (f32 * w).sum((1, 2))]).astype(np.float32)


def _true_boxes(mask: np.ndarray, min_px: int) -> list[tuple[int, int, int, int]]:
    """Boxes of the true wheels of a 0/1 mask: 8-connected components of at least ``min_px`` pixels."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, a in stats[1:] if a >= min_px]


def instance_rows(reader: FeatureReader, detector, rgb: np.ndarray, mask: np.ndarray | None,
                  source: str) -> list[tuple[np.ndarray, int, float, str]]:
    """``(features (432,), label 1/0, proposal score, source)`` for every proposal of one picture.

    Args:
        reader: the feature reader.
        detector: a :class:`~designsearch.services.segmenter.learned.LearnedWheelDetector` whose proposal
            settings (``min_score``) are used.
        rgb: uint8 ``(S, S, 3)`` at the network size; mask: its 0/1 ``(S, S)`` wheel mask, ``None`` = no wheel.
        source: name of the picture's source (kept with the rows).
    """
    from designsearch.services.segmenter.detection import box_iou

    prob, f16, f32 = reader(rgb)
    s = prob.shape[0]
    truth = _true_boxes(mask, int(detector.min_area * s * s)) if mask is not None else []
    rows = []
    for region in detector.candidate_regions(prob):
        iou = max((box_iou(region.box(), t) for t in truth), default=0.0)
        if NEGATIVE_IOU <= iou < POSITIVE_IOU:
            continue
        rows.append((pooled_features(region.full_mask(s), f16, f32), int(iou >= POSITIVE_IOU),
                     region.score(prob, detector.threshold), source))
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, sample_weight: np.ndarray | None = None,
                 iters: int = 200) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by L-BFGS (torch): minimises mean weighted BCE + ``l2``·|w|².

    Args:
        x: float32 ``(n, d)`` standardised features; y: ``(n,)`` 0/1 labels; l2: penalty.
        sample_weight: ``(n,)`` weights (default 1).

    Returns:
        ``(w (d,), b)``.
    """
    import torch

    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    wt = torch.ones_like(yt) if sample_weight is None else torch.from_numpy(sample_weight.astype(np.float32))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt, reduction="none") * wt).sum() / wt.sum()
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n⁺ n⁻), ties counted half)."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / max(1, n1 * n0))


def class_weights(y: np.ndarray) -> np.ndarray:
    """Per-row weights that give both classes the same total weight."""
    pos = max(1, int(y.sum()))
    neg = max(1, len(y) - pos)
    return np.where(y == 1, len(y) / (2 * pos), len(y) / (2 * neg))


def training_pictures(data: Path, set_dir: Path | None, size: int, n_mix: int, n_aug: int, seed: int = 0):
    """Training pictures of the head: yields ``(rgb uint8 (S, S, 3), mask 0/1 (S, S) or None, source, group)``.

    Real car-parts-50 TRAIN rims and look-alikes as served (resized to ``S``) and ``n_aug`` close-up augmentations
    of each kind; ``n_mix`` items of the served model's training mix (Car-Parts TRAIN photos, split seed 0, pasted
    close-ups, wheel-free pictures; with ``set_dir`` also the engine's TRAIN renders, drawings and on-car
    composites). ``group`` names the underlying picture (for grouped cross-validation).
    """
    from designsearch.training.segmenter import real_sets
    from designsearch.training.segmenter import synthetic as syn
    from designsearch.training.segmenter.dataset import WheelSegDataset, load_samples, split_samples
    from designsearch.training.segmenter.synthetic.engine_mix import RealWorldMixDataset

    rims = [it for it in real_sets.carparts50_items(data, "train", "rim") if it.boxes]
    looks = real_sets.carparts50_items(data, "train", "not_wheel")
    for it in rims:
        yield (cv2.resize(it.rgb, (size, size), interpolation=cv2.INTER_LINEAR),
               cv2.resize(it.mask, (size, size), interpolation=cv2.INTER_NEAREST), "rim", it.name)
    for it in looks:
        yield cv2.resize(it.rgb, (size, size), interpolation=cv2.INTER_LINEAR), None, "lookalike", it.name
    train_s, _ = split_samples(load_samples(data), 0.2, 0)
    base = WheelSegDataset(train_s, size, train=True, negative_p=0.25, seed=seed)
    cutouts = [c for s in train_s for c in syn.cutouts_from_sample(s)]
    base = syn.DesignerMixDataset(base, cutouts, syn.PhotoBackgrounds(train_s), train_s, size, epoch_items=n_mix,
                                  photo_p=0.7, closeup_p=0.15, car_negative_p=0.5, seed=seed)
    probs = {"rim": 0.1, "lookalike": 0.1} | ({"render": 0.1, "drawing": 0.05, "oncar": 0.1} if set_dir else {})
    mix = RealWorldMixDataset(base, set_dir, [(it.rgb, it.mask) for it in rims], [it.rgb for it in looks], size, probs,
                              epoch_items=n_mix, seed=seed)
    rng = np.random.default_rng(seed)
    for source, count in (("rim", n_aug), ("lookalike", n_aug)):
        for i in range(count):
            rgb, mask = mix.item(source)
            yield mix.photometric(image=rgb)["image"], (mask if source == "rim" else None), f"{source}-aug", f"{source}-aug-{i}"
    engine = [k for k in ("render", "drawing", "oncar") if set_dir]
    for i in range(n_mix):
        if engine and rng.random() < 0.4:
            source = engine[int(rng.integers(len(engine)))]
            rgb, mask = mix.item(source)
            if source != "oncar":
                rgb = mix.photometric(image=rgb)["image"]
        else:
            source = "mix"
            pixels, target = base[int(rng.integers(len(base)))]
            rgb = pixels.numpy().transpose(1, 2, 0).clip(0, 255).astype(np.uint8)
            mask = target.numpy()[0].astype(np.uint8)
        yield rgb, (mask if mask.any() else None), source, f"{source}-{i}"


def cross_validate(x: np.ndarray, y: np.ndarray, groups: np.ndarray, l2: float, folds: int = 5) -> np.ndarray:
    """Out-of-fold logits of :func:`fit_logistic` (folds by ``groups``, standardised on each training fold)."""
    keys = np.unique(groups)
    fold_of = {g: i % folds for i, g in enumerate(np.random.default_rng(0).permutation(keys))}
    fold = np.array([fold_of[g] for g in groups])
    out = np.zeros(len(y), np.float32)
    for f in range(folds):
        tr, te = fold != f, fold == f
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        w, b = fit_logistic((x[tr] - mu) / sd, y[tr], l2, class_weights(y[tr]))
        out[te] = ((x[te] - mu) / sd) @ w + b
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see the module docstring."""
    from designsearch.services.segmenter.learned import LearnedWheelDetector
    from designsearch.training.quantize import quantize, segmenter_calibration, segmenter_float_nodes
    from designsearch.training.segmenter.dataset import default_data_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/segmenter/wheelseg-lite0.onnx", help="float32 segmenter ONNX file")
    p.add_argument("--out", default="runs/seg-verify")
    p.add_argument("--engine-set", default=None, help="engine set whose TRAIN designs join the fit")
    p.add_argument("--data", default=None)
    p.add_argument("--items", type=int, default=2500, help="pictures of the training mix")
    p.add_argument("--aug", type=int, default=600, help="augmented real rims and look-alikes, each")
    p.add_argument("--l2", default="1e-4,1e-3,1e-2", help="penalties tried by grouped 5-fold cross-validation")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.data) if a.data else default_data_dir()
    float_path, int8 = out / "wheelseg-lite0.onnx", out / "wheelseg-lite0-int8.onnx"
    feats_path = out / "features.npz"
    if not feats_path.is_file():
        add_verify_head(a.model, float_path, np.zeros(112), np.zeros(320), 0.0)
        size = onnx.load(str(float_path)).graph.input[0].type.tensor_type.shape.dim[2].dim_value
        quantize(float_path, int8, segmenter_calibration(size, data, seed=0), float_nodes=segmenter_float_nodes(onnx.load(str(float_path))))
        reader = FeatureReader(int8)
        detector = LearnedWheelDetector(int8, min_score=PROPOSAL_MIN_SCORE, use_verify=False)
        rows, groups, pictures, t0 = [], [], 0, time.time()
        for rgb, mask, source, group in training_pictures(data, Path(a.engine_set) if a.engine_set else None, size,
                                                          a.items, a.aug, a.seed):
            got = instance_rows(reader, detector, rgb, mask, source)
            rows += got
            groups += [group] * len(got)
            pictures += 1
            if pictures % 500 == 0:
                print(f"{pictures} pictures, {len(rows)} instances, {time.time() - t0:.0f} s", flush=True)
        np.savez(feats_path, x=np.stack([r[0] for r in rows]), y=np.array([r[1] for r in rows]),
                 score=np.array([r[2] for r in rows]), source=np.array([r[3] for r in rows]), group=np.array(groups))
    z = np.load(feats_path)
    x, y, source, groups = z["x"], z["y"], z["source"], z["group"]
    report = {"instances": int(len(y)), "positives": int(y.sum()),
              "by_source": {s: [int((source == s).sum()), int(y[source == s].sum())] for s in np.unique(source)}, "cv": {}}
    for l2 in [float(v) for v in a.l2.split(",")]:
        oof = cross_validate(x, y, groups, l2)
        report["cv"][str(l2)] = {"auc": auc(oof, y), "acc@0.5": float(((oof > 0) == y).mean())}
        print(f"l2 {l2}: out-of-fold AUC {report['cv'][str(l2)]['auc']:.4f}", flush=True)
    best = max(report["cv"], key=lambda k: report["cv"][k]["auc"])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w, b = fit_logistic((x - mu) / sd, y, float(best), class_weights(y))
    w_raw = (w / sd).astype(np.float32)  # undo the standardisation: the head reads raw features
    bias = float(b - (w * mu / sd).sum())
    report.update(l2=float(best), bias=bias)
    add_verify_head(a.model, float_path, w_raw[:112], w_raw[112:], bias)
    size = onnx.load(str(float_path)).graph.input[0].type.tensor_type.shape.dim[2].dim_value
    quantize(float_path, int8, segmenter_calibration(size, data, seed=0), float_nodes=segmenter_float_nodes(onnx.load(str(float_path))))
    (out / "verifier.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
