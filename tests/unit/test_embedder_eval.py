"""Evaluation rows of issue 9: same-photo partner R@1 and rotation robustness, on real crops.

The metric is checked on a hand-built gallery whose answer is known, and the rotation path on
real Stanford Cars crops (classes 79-98): rotating by 0/360 degrees is the identity, 90 degrees
matches ``np.rot90``, a rotation-invariant descriptor scores the same on the rotated row, and a
pixel descriptor (not invariant) loses its exact duplicates once queries are rotated.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("albumentations")

from designsearch.images import read_image  # noqa: E402
from designsearch.training.embedder.augment import rotate_about_centre, wheel_design_view  # noqa: E402
from designsearch.training.embedder.evaluate import partner_recall, rotation_angles  # noqa: E402

SIDE = 96


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _real_crops(data_dir, n_photos: int) -> tuple[list[np.ndarray], list[str]]:
    """Two square crops (lower-left / lower-right, where the wheels are) of the first validation photos."""
    import csv

    import cv2

    with open(data_dir / "stanford-cars" / "labels.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["class_id"]) >= 79][:n_photos]
    crops, groups = [], []
    for r in rows:
        rgb = read_image(data_dir / "stanford-cars" / r["file"])
        h, w = rgb.shape[:2]
        s = min(h, w // 2)
        for x in (0, w - s):
            crops.append(cv2.resize(rgb[h - s : h, x : x + s], (SIDE, SIDE), interpolation=cv2.INTER_AREA))
            groups.append(r["file"])
    return crops, groups


def _pixels(img: np.ndarray) -> np.ndarray:
    g = img.astype(np.float64).mean(axis=2).ravel()
    return g - g.mean()


def _radial(img: np.ndarray, rings: int = 24) -> np.ndarray:
    """Mean grey level and grey std per ring about the centre: invariant to rotation about the centre."""
    g = img.astype(np.float64).mean(axis=2)
    yy, xx = np.mgrid[: g.shape[0], : g.shape[1]]
    c = (g.shape[0] - 1) / 2
    r = np.hypot(yy - c, xx - c)
    bins = np.minimum((r / (c * 0.9) * rings).astype(int), rings)
    feats = [g[bins == k].mean() for k in range(rings)] + [g[bins == k].std() for k in range(rings)]
    f = np.array(feats)
    return f - f.mean()


def test_partner_recall_hand_built_gallery():
    e1, e2, e3, e4 = np.eye(4)
    e = _unit([
        e1,               # 0 photo A, class 1: nearest 4 (photo C, class 1) -> class hit, photo miss
        e2,               # 1 photo A, class 1: nearest 5 (photo D, class 3) -> miss
        e3,               # 2 photo B, class 2: nearest 3 -> photo hit
        e3 + 0.1 * e4,    # 3 photo B, class 2: nearest 2 -> photo hit
        e1 + 0.1 * e4,    # 4 photo C, class 1 (single crop: gallery only)
        e2 + 0.5 * e3,    # 5 photo D, class 3 (single crop: gallery only)
    ])
    labels = np.array([1, 1, 2, 2, 1, 3])
    groups = np.array(["A", "A", "B", "B", "C", "D"])
    got = partner_recall(e, e, labels, groups)
    assert got == {"R@1": 0.75, "R@1_photo": 0.5, "queries": 4}
    # A query view that differs from its gallery view (e.g. rotated): item 2 now looks like e1,
    # so its nearest is item 0 (other photo, other class); it is never its own answer.
    q = e.copy()
    q[2] = e1
    assert partner_recall(q, e, labels, groups) == {"R@1": 0.5, "R@1_photo": 0.25, "queries": 4}
    # Several views per query (T, N, D): a gallery item scores its best cosine over the views, so the
    # view that looks like e1 still wins for item 2 (cosine 1 with item 0), and two equal views change nothing.
    assert partner_recall(np.stack([e, e]), e, labels, groups) == got
    assert partner_recall(np.stack([e, q]), e, labels, groups) == {"R@1": 0.5, "R@1_photo": 0.25, "queries": 4}
    with pytest.raises(ValueError):
        partner_recall(e[:3], e, labels, groups)


def test_rotate_about_centre_on_real_crop(data_dir):
    crops, _ = _real_crops(data_dir, 1)
    img = crops[0]
    for angle in (0.0, 360.0):
        assert np.abs(rotate_about_centre(img, angle).astype(int) - img).max() <= 1
    rot = rotate_about_centre(img, 90.0)
    assert rot.shape == img.shape and rot.dtype == np.uint8
    assert np.abs(rot.astype(int) - np.rot90(img, 1)).mean() < 1.0
    grey = rotate_about_centre(img, 45.0, border="grey")
    assert tuple(grey[0, 0]) == (128, 128, 128)
    with pytest.raises(ValueError):
        rotate_about_centre(img, 10.0, border="wrap")


def test_rotation_row_on_real_crops(data_dir):
    crops, groups = _real_crops(data_dir, 8)
    # Gallery: every real crop and an exact duplicate of it from the same photo.
    imgs = [c for c in crops for _ in range(2)]
    grp = np.array([g for g in groups for _ in range(2)])
    labels = np.arange(len(imgs)) // 2  # each crop its own class
    angles = rotation_angles(len(imgs))
    assert angles.min() >= 0 and angles.max() < 360 and np.array_equal(angles, rotation_angles(len(imgs)))
    rotated = [rotate_about_centre(im, float(a)) for im, a in zip(imgs, angles)]
    # Pixel descriptor: duplicates are found unrotated, mostly lost once the query is rotated.
    pix = np.stack([_pixels(i) for i in imgs])
    pix_rot = np.stack([_pixels(i) for i in rotated])
    assert partner_recall(pix, pix, labels, grp)["R@1_photo"] == 1.0
    assert partner_recall(pix_rot, pix, labels, grp)["R@1_photo"] < 0.5
    # Rotation-invariant descriptor: the rotated row matches the unrotated one.
    rad = np.stack([_radial(i) for i in imgs])
    rad_rot = np.stack([_radial(i) for i in rotated])
    assert partner_recall(rad, rad, labels, grp)["R@1_photo"] == 1.0
    assert partner_recall(rad_rot, rad, labels, grp)["R@1_photo"] >= 0.9


def test_wheel_design_view_is_seeded(data_dir):
    crops, _ = _real_crops(data_dir, 1)
    a = [wheel_design_view(crops[0], 64, np.random.default_rng(3)) for _ in range(2)]
    assert a[0].shape == (64, 64, 3) and a[0].dtype == np.uint8
    assert np.array_equal(a[0], a[1])


def test_supcon_loss_matches_formula():
    torch = pytest.importorskip("torch")
    from designsearch.training.embedder.contrastive import supcon_loss

    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.9, 0.1], [-1.0, 0.3], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1, 2])  # anchors 0 and 1 have one positive; 2 and 3 none
    t = 0.5
    s = (z @ z.T / t).numpy()
    expected = []
    for i, p in ((0, 1), (1, 0)):
        others = [j for j in range(4) if j != i]
        expected.append(-(s[i, p] - np.log(np.exp(s[i, others]).sum())))
    assert float(supcon_loss(z, labels, t)) == pytest.approx(np.mean(expected), rel=1e-5)


def test_wheel_rotation_of_the_ce_views(data_dir):
    """``--wheel-rotation``: the wheel pipeline rotates by up to that many degrees (default ±45°),
    the car pipeline keeps ±8°, and a seeded pipeline gives the same view of a real crop twice."""
    from designsearch.training.embedder.augment import photo_augment

    def rotate_limits(pipe):
        return [t.rotate for t in pipe.transforms if type(t).__name__ == "Affine"]

    assert rotate_limits(photo_augment("wheel", 0, 180.0)) == [(-180.0, 180.0)]
    assert rotate_limits(photo_augment("wheel", 0)) == [(-45.0, 45.0)]
    assert rotate_limits(photo_augment("car", 0, 180.0)) == [(-8.0, 8.0)]
    crops, _ = _real_crops(data_dir, 1)
    a = photo_augment("wheel", 3, 180.0)(image=crops[0])["image"]
    b = photo_augment("wheel", 3, 180.0)(image=crops[0])["image"]
    assert a.shape == crops[0].shape and np.array_equal(a, b)


def test_mirror_average_gives_a_picture_and_its_mirror_image_one_vector(data_dir, tmp_path):
    """``eval-embedder --mirror-average`` (flip test-time averaging) on real pictures with the served model:
    a picture and its mirror image get the same photo vector and (up to Canny's tie-breaks) line-drawing vector,
    which they do not without it."""
    import cv2

    from designsearch.onnx import make_session
    from designsearch.settings import EMBEDDER_MODEL_INT8
    from designsearch.training.embedder import data as D
    from designsearch.training.embedder.evaluate import embed_items

    _, val_rows = D.split_rows(D.load_rows(data_dir))
    items = []
    for i, it in enumerate(D.car_items(val_rows)[:3]):
        rgb = read_image(it.path)
        for tag, img in (("a", rgb), ("b", np.ascontiguousarray(rgb[:, ::-1]))):  # PNG: lossless, so "b" is exactly the mirror of "a"
            path = tmp_path / f"{i}{tag}.png"
            cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            items.append(D.Item(str(path), it.class_id, f"{i}{tag}", "car"))
    sessions = {"m": make_session(EMBEDDER_MODEL_INT8, 2)}
    plain = embed_items(sessions, items)["m"]
    averaged = embed_items(sessions, items, mirror_average=True)["m"]
    for view in ("photo", "edge"):
        a, b = averaged[view][0::2], averaged[view][1::2]
        np.testing.assert_allclose(np.linalg.norm(averaged[view], axis=1), 1.0, atol=1e-5)
        if view == "photo":  # the model input is flipped: exactly the mirror image's input
            assert np.abs(a - b).max() < 1e-4, view
        else:  # the line drawing of a mirror image differs from the mirrored drawing by Canny's tie-breaks
            assert (a * b).sum(axis=1).min() > 0.995, view
        pa, pb = plain[view][0::2], plain[view][1::2]
        assert (pa * pb).sum(axis=1).max() < 0.999, view  # a picture and its mirror image differ otherwise


def test_rotation_distillation_loss_matches_formula():
    """``train_distill.distillation_loss``: mean of 1 - cosine per row (scale-free), 0 on target, 2 opposite."""
    torch = pytest.importorskip("torch")
    from designsearch.training.embedder.train_distill import distillation_loss

    s = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    loss, cos = distillation_loss(s, t)
    assert cos.tolist() == pytest.approx([1.0, -1.0, 2 ** -0.5], abs=1e-6)
    assert float(loss) == pytest.approx((0.0 + 2.0 + (1 - 2 ** -0.5)) / 3, abs=1e-6)
    with pytest.raises(ValueError):
        distillation_loss(s, t[:2])


def test_orbit_targets_are_the_same_for_a_wheel_and_its_quarter_turn(data_dir, tmp_path):
    """``train_distill.orbit_targets`` (K = 4): a real crop and the same crop turned 90 degrees get one
    target (their rotation orbits are the same set of pictures), which differs from the upright
    embedding; a whole car keeps its upright target; the result is cached and re-read; K < 2 is refused."""
    torch = pytest.importorskip("torch")
    import cv2

    from designsearch.training.embedder import data as D
    from designsearch.training.embedder.model import EmbeddingNet
    from designsearch.training.embedder.train_distill import orbit_targets

    crops, _ = _real_crops(data_dir, 2)
    crop = cv2.resize(crops[0], (224, 224), interpolation=cv2.INTER_AREA)  # at the model input: no resize
    paths = []
    for name, img in (("wheel", crop), ("wheel_rot90", np.ascontiguousarray(np.rot90(crop))), ("car", crops[1])):
        paths.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    items = [D.Item(str(paths[0]), 80, "a", D.DOMAIN_WHEEL), D.Item(str(paths[1]), 80, "b", D.DOMAIN_WHEEL),
             D.Item(str(paths[2]), 80, "c", D.DOMAIN_CAR)]
    torch.manual_seed(0)
    teacher = EmbeddingNet("lite0", dim=32).eval()  # ImageNet backbone: a random one maps every picture alike
    upright = torch.nn.functional.normalize(torch.randn(3, 32), dim=1)
    out = tmp_path / "orbit_targets_4.npy"
    targets, stats = orbit_targets(teacher, items, upright, 4, 224, 1, out)

    assert targets.shape == (3, 32)
    assert torch.allclose(targets.norm(dim=1), torch.ones(3), atol=1e-5)
    assert float(targets[0] @ targets[1]) > 0.9999  # one orbit, one target
    with torch.no_grad():
        single = teacher(torch.from_numpy(np.stack([crop.transpose(2, 0, 1).astype(np.float32)])))[0]
    assert float(targets[0] @ torch.nn.functional.normalize(single, dim=0)) < 0.99  # not the upright embedding
    assert torch.equal(targets[2], upright[2])  # whole cars keep the upright target
    assert stats["wheels"] == 2 and 0 < stats["mean_norm"] <= 1.0 + 1e-6
    again, _ = orbit_targets(teacher, items, upright, 4, 224, 1, out)  # read from the cache file
    assert torch.allclose(again, targets)
    with pytest.raises(ValueError):
        orbit_targets(teacher, items, upright, 1, 224, 1, out)


def test_designer_views_of_real_training_wheels(data_dir, tmp_path):
    """``designer_views.cache_designer_views``: a training-class wheel whose photo gives a cut-out gets its
    designer-style pictures (close-up, rendering, line drawing — three different pictures), a wheel-less crop
    falls back to its own rotated picture, cars get no rows; rows go through the frozen prefix and are cached.
    ``train_distill._fetch`` picks regular and designer rows by view index."""
    torch = pytest.importorskip("torch")
    import csv

    import cv2

    from designsearch.services.segmenter.learned import LearnedWheelDetector
    from designsearch.settings import REPO_ROOT
    from designsearch.training.designer_pictures import wheel_cutout
    from designsearch.training.embedder import data as D
    from designsearch.training.embedder.designer_views import cache_designer_views, designer_pictures_of
    from designsearch.training.embedder.feature_cache import _export_prefix, _ort_session
    from designsearch.training.embedder.model import EmbeddingNet
    from designsearch.training.embedder.train_distill import _fetch

    detector = LearnedWheelDetector(REPO_ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx", threads=1,
                                    input_size=480)
    with open(data_dir / "stanford-cars" / "labels.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["class_id"]) <= 78][:12]
    photo = cut = None
    for r in rows:  # the first training photo whose best wheel gives a cut-out
        path = str(data_dir / "stanford-cars" / r["file"])
        cut = wheel_cutout(read_image(path), detector, path)
        if cut is not None:
            photo = path
            break
    assert cut is not None, "no usable wheel in the first training photos"
    pictures, drawn = designer_pictures_of(read_image(photo)[:64, :64], detector, 3, np.random.default_rng(0), cut=cut)
    assert drawn and [p.shape for p in pictures] == [(512, 512, 3)] * 3
    assert min(float(np.abs(a.astype(int) - b).mean()) for a, b in ((pictures[0], pictures[1]), (pictures[1], pictures[2]))) > 5

    blank = np.full((160, 160, 3), 128, np.uint8)
    paths = {"photo": photo, "blank": tmp_path / "blank.png"}
    cv2.imwrite(str(paths["blank"]), blank)
    items = [D.Item(photo, 1, "p", D.DOMAIN_WHEEL), D.Item(photo, 1, "p", D.DOMAIN_CAR),
             D.Item(str(paths["blank"]), 1, "b", D.DOMAIN_WHEEL)]
    torch.manual_seed(0)
    prefix = tmp_path / "prefix.onnx"
    _export_prefix(EmbeddingNet("lite0", dim=32).eval(), 2, prefix, 224)
    session = _ort_session(prefix, 1)
    out = tmp_path / "designer.npy"
    fmaps, stats = cache_designer_views(items, 3, detector, session, 224, 0, out, photo_of={"p": photo})
    assert fmaps.shape[0] == 2 * 3 and stats["fallback_wheels"] == 1 and np.isfinite(fmaps.astype(np.float32)).all()
    assert float(np.abs(fmaps[0].astype(np.float32) - fmaps[1]).mean()) > 0  # different pictures
    again, stats2 = cache_designer_views(items, 3, detector, session, 224, 0, out, photo_of={"p": photo})
    assert np.array_equal(np.asarray(again), np.asarray(fmaps)) and stats2["fallback_wheels"] == 1
    with pytest.raises(ValueError, match="per_item"):
        cache_designer_views(items, 0, detector, session, 224, 0, tmp_path / "x.npy")

    regular = np.arange(3 * 2, dtype=np.float32).reshape(6, 1)  # 3 items x 2 kinds
    designer = 100 + np.arange(2 * 3, dtype=np.float32).reshape(6, 1)  # 2 wheels x 3 pictures
    wheel_pos = np.array([0, 0, 1])
    got = _fetch(regular, designer, wheel_pos, np.array([0, 1, 2, 2]), np.array([1, 0, 3, 4]), 2, 3)
    assert got[:, 0].tolist() == [1, 2, 104, 105]
