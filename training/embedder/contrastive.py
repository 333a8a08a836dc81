"""Contrastive objectives for the wheel-design embedder (issue 9).

* :func:`supcon_loss`: supervised-contrastive loss (Khosla et al., "Supervised Contrastive
  Learning", NeurIPS 2020, eq. 2, the "L_out" form). With one label per *source crop* it is the
  NT-Xent / InfoNCE loss of SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of
  Visual Representations", ICML 2020): two augmented views of a crop are positives, every other
  view of the batch a negative. With one label per *source photo* the other wheel crops of the
  same car photo become positives too (same-photo pairs: the wheels of one car are nearly always
  one design seen from two positions).
* The car-model term is the normalised-softmax cross-entropy of :mod:`.train`
  (:class:`.feature_cache.CosineClassifier`; Zhai & Wu, BMVC 2019).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised-contrastive loss over a batch of L2-normalised embeddings.

    For anchor ``i`` with positives ``P(i) = {p != i : labels[p] == labels[i]}``:
    ``L_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T) )``;
    the loss is the mean of ``L_i`` over anchors with ``|P(i)| >= 1`` (Khosla et al., NeurIPS 2020,
    ``L_out``). Anchors without a positive still act as negatives for the others.

    Args:
        z: float ``(N, D)`` embeddings, unit L2 norm.
        labels: int64 ``(N,)``; equal labels are positives (e.g. source-crop or source-photo id).
        temperature: ``T`` (SimCLR uses 0.1-0.5; SupCon 0.1).

    Returns:
        Scalar tensor (0 with grad when no anchor has a positive).

    Raises:
        ValueError: ``z`` and ``labels`` lengths differ.
    """
    if z.shape[0] != labels.shape[0]:
        raise ValueError(f"z has {z.shape[0]} rows but labels has {labels.shape[0]}")
    n = z.shape[0]
    logits = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    pos_log_prob = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -(pos_log_prob[has] / n_pos[has]).mean()


def normalized_softmax_ce(
    z: torch.Tensor, proxies: torch.Tensor, targets: torch.Tensor, temperature: float = 0.05,
    label_smoothing: float = 0.1,
) -> torch.Tensor:
    """Normalised-softmax cross-entropy (Zhai & Wu, BMVC 2019) over rows with a target ``>= 0``.

    Args:
        z: float ``(N, D)`` unit embeddings.
        proxies: float ``(C, D)`` class proxies (normalised here).
        targets: int64 ``(N,)`` class index, ``-1`` = no label (ignored).
        temperature: logit scale ``1 / T``.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.

    Returns:
        Scalar tensor (0 with grad when no row is labelled).
    """
    keep = targets >= 0
    if not bool(keep.any()):
        return z.sum() * 0.0
    logits = z[keep] @ F.normalize(proxies, dim=1).T / temperature
    return F.cross_entropy(logits, targets[keep], label_smoothing=label_smoothing)
