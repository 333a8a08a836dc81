"""1:1 verification: is image A the same design as image B? Similarity, threshold calibration, error rates.

An image is embedded as its regions (the segmenter's crops and the whole picture, as a query is),
and the similarity of two images is the best cosine over comparable region pairs: crop with crop,
whole picture with whole picture (a wheel and a whole car are different things). A drawing is
embedded as drawn and compared with the other image's ``lines`` view (its Canny line drawing),
as a sketch query is. The decision threshold is calibrated per model version on validation pairs
at the equal-error rate (the threshold where the false-accept rate equals the false-reject rate;
e.g. Jain, Ross & Prabhakar, "An Introduction to Biometric Recognition", IEEE TCSVT 2004).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pair_similarity(a_crops: np.ndarray, a_whole: np.ndarray, b_crops: np.ndarray, b_whole: np.ndarray) -> float:
    """Best cosine similarity over comparable region pairs of two images.

    Args:
        a_crops, b_crops: float32 ``(m, D)`` / ``(n, D)`` unit vectors of the crops (``m`` or ``n`` may be 0).
        a_whole, b_whole: float32 ``(D,)`` unit vectors of the whole pictures.

    Returns:
        ``max(a_whole · b_whole, max_ij a_crops[i] · b_crops[j])`` in [-1, 1].
    """
    best = float(a_whole @ b_whole)
    if len(a_crops) and len(b_crops):
        best = max(best, float((a_crops @ b_crops.T).max()))
    return best


@dataclass(frozen=True)
class ErrorRates:
    """Error rates of a threshold on labelled pairs (``same`` = genuine pairs).

    Attributes:
        threshold: similarity at or above which a pair is called the same design.
        far: false-accept rate, share of different-design pairs called the same.
        frr: false-reject rate, share of same-design pairs called different.
        accuracy: share of all pairs decided right.
        pairs: number of pairs (genuine + impostor).
    """

    threshold: float
    far: float
    frr: float
    accuracy: float
    pairs: int


def error_rates(scores: np.ndarray, same: np.ndarray, threshold: float) -> ErrorRates:
    """FAR, FRR and accuracy of ``threshold`` on pairs with similarity ``scores`` (float ``(N,)``) and
    labels ``same`` (bool ``(N,)``).

    Raises:
        ValueError: no genuine or no impostor pair.
    """
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("need both same-design and different-design pairs")
    accept = scores >= threshold
    far = float(accept[~same].mean())
    frr = float((~accept[same]).mean())
    return ErrorRates(float(threshold), far, frr, float((accept == same).mean()), int(len(scores)))


def equal_error_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold where FAR and FRR cross, and the equal-error rate there.

    Scans every distinct score as a threshold and takes the one minimising ``|FAR - FRR|``
    (ties: the lower ``max(FAR, FRR)``); the EER is ``(FAR + FRR) / 2`` at it.

    Returns:
        ``(threshold, eer)``.

    Raises:
        ValueError: no genuine or no impostor pair.
    """
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("need both same-design and different-design pairs")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    # accepting the first k pairs (threshold = s[k-1]): FAR = impostors among them / impostors
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    far = fp / (~y).sum()
    frr = 1.0 - tp / y.sum()
    last = np.r_[s[1:] != s[:-1], True]  # only thresholds at the end of a run of equal scores
    gap = np.where(last, np.abs(far - frr), np.inf)
    k = int(np.argmin(gap + 1e-12 * np.maximum(far, frr)))
    return float(s[k]), float((far[k] + frr[k]) / 2)
