"""GroupCLIP: a group-level contrastive loss for weakly paired modalities.

The loss is a pure function of two batches of embeddings and their labels; it knows nothing
about encoders, AnnData or training. See :func:`group_clip_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

GroupClipVariant = Literal["in", "out"]


def _directional_loss(
    logits: torch.Tensor, positives: torch.Tensor, variant: GroupClipVariant
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor loss of each row of ``logits`` against the columns marked in ``positives``.

    Returns the per-anchor losses (zero where the anchor has no positive) and a boolean mask of
    the anchors that have at least one positive.
    """
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_pos = positives.sum(dim=1)
    valid = n_pos > 0
    neg_inf = torch.finfo(log_prob.dtype).min
    if variant == "in":
        # -log( sum_p exp(s_ip) / sum_j exp(s_ij) ) = -logsumexp_p(log_prob_ip)
        masked = torch.where(positives, log_prob, torch.full_like(log_prob, neg_inf))
        per_anchor = -torch.logsumexp(masked, dim=1)
    elif variant == "out":
        # -(1/|P|) sum_p log( exp(s_ip) / sum_j exp(s_ij) )
        summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
        per_anchor = -summed / n_pos.clamp(min=1)
    else:
        raise ValueError(f"`variant` must be 'in' or 'out', got {variant!r}.")
    per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
    return per_anchor, valid


def group_clip_loss(
    z_a: torch.Tensor,
    labels_a: torch.Tensor,
    z_b: torch.Tensor | None = None,
    labels_b: torch.Tensor | None = None,
    *,
    tau: float = 0.5,
    variant: GroupClipVariant = "in",
    normalize: bool = True,
) -> torch.Tensor:
    r"""GroupCLIP loss between two modalities (or SupCon within one).

    Embeddings are L2-normalised and compared by cosine similarity
    :math:`s_{ij} = \langle z^A_i, z^B_j \rangle / \tau`. For an anchor :math:`i` of A, the
    positives :math:`P(i)` are the cells of B in the batch with the same label, and the
    denominator runs over all cells of B in the batch (the CLIP normalisation):

    - ``"in"``: :math:`\ell_i = -\log \frac{\sum_{p \in P(i)} e^{s_{ip}}}{\sum_{j} e^{s_{ij}}}`
    - ``"out"``: :math:`\ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
      \log \frac{e^{s_{ip}}}{\sum_{j} e^{s_{ij}}}`

    The loss averages :math:`\ell_i` over the anchors that have at least one positive (anchors
    without positives are skipped, never NaN) and symmetrises A->B and B->A. With one cell per
    label in each modality it equals the CLIP loss. When ``z_b`` is ``None`` the loss is
    computed within ``z_a`` with the anchor itself removed from positives and denominator,
    which is the supervised contrastive (SupCon) loss of Khosla et al. 2020 (``"out"`` is their
    :math:`L^{sup}_{out}`, ``"in"`` their :math:`L^{sup}_{in}`).

    Parameters
    ----------
    z_a
        Embeddings of modality A, shape ``(n_a, d)``.
    labels_a
        Integer labels of the cells of A, shape ``(n_a,)``.
    z_b
        Embeddings of modality B, shape ``(n_b, d)``, or ``None`` for the one-modality limit.
    labels_b
        Integer labels of the cells of B, shape ``(n_b,)``.
    tau
        Temperature (> 0); the default is that of :class:`~groove_sc.model.GROOVE`.
    variant
        ``"in"`` (sum over positives inside the log) or ``"out"`` (mean of logs).
    normalize
        L2-normalise the embeddings first (cosine similarity).

    Returns
    -------
    A scalar tensor. Zero (still attached to the graph) when no anchor has a positive.
    """
    if tau <= 0:
        raise ValueError(f"`tau` must be > 0, got {tau}.")
    if variant not in ("in", "out"):
        raise ValueError(f"`variant` must be 'in' or 'out', got {variant!r}.")
    labels_a = labels_a.reshape(-1)
    if normalize:
        z_a = F.normalize(z_a, dim=-1)
    if z_b is None:
        logits = z_a @ z_a.T / tau
        eye = torch.eye(len(z_a), dtype=torch.bool, device=z_a.device)
        # the anchor itself is neither a positive nor in the denominator
        logits = logits.masked_fill(eye, torch.finfo(logits.dtype).min)
        positives = (labels_a[:, None] == labels_a[None, :]) & ~eye
        per_anchor, valid = _directional_loss(logits, positives, variant)
        if not bool(valid.any()):
            return z_a.sum() * 0.0
        return per_anchor[valid].mean()

    if labels_b is None:
        raise ValueError("`labels_b` is required when `z_b` is given.")
    labels_b = labels_b.reshape(-1)
    if normalize:
        z_b = F.normalize(z_b, dim=-1)
    logits = z_a @ z_b.T / tau
    positives = labels_a[:, None] == labels_b[None, :]
    loss_ab, valid_ab = _directional_loss(logits, positives, variant)
    loss_ba, valid_ba = _directional_loss(logits.T, positives.T, variant)
    terms = []
    if bool(valid_ab.any()):
        terms.append(loss_ab[valid_ab].mean())
    if bool(valid_ba.any()):
        terms.append(loss_ba[valid_ba].mean())
    if not terms:
        return (z_a.sum() + z_b.sum()) * 0.0
    return torch.stack(terms).mean()


def random_pair_labels(
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace labels by ids of random 1:1 pseudo-pairs drawn within each label.

    Within each label, the cells of A and the cells of B are shuffled and the ``k``-th cell of A
    is paired with the ``k``-th cell of B; the pseudo-pair id is ``label * K + k`` with ``K``
    larger than any rank. A label with ``n_a`` cells in A and ``n_b`` in B gives
    ``min(n_a, n_b)`` pairs; the remaining cells get ids that occur in one modality only (no
    positive). Fed to :func:`group_clip_loss`, these ids make every anchor have at most one
    positive, i.e. the CLIP loss on random within-label pairs (the ``clip_random_pairs``
    baseline). Vectorised, no loop over cells or labels.

    Parameters
    ----------
    labels_a, labels_b
        Non-negative integer labels of the cells of A and of B.
    generator
        Torch random generator (``None``: the global one).

    Returns
    -------
    ``(ids_a, ids_b)``, integer tensors of the shapes of the inputs.
    """
    labels_a = labels_a.reshape(-1).long()
    labels_b = labels_b.reshape(-1).long()
    big = max(labels_a.numel(), labels_b.numel()) + 1
    return (
        labels_a * big + _random_rank(labels_a, generator),
        labels_b * big + _random_rank(labels_b, generator),
    )


def _random_rank(labels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Rank of each cell within its label, in a random order."""
    n = labels.numel()
    if n == 0:
        return labels.clone()
    perm = torch.randperm(n, generator=generator, device="cpu").to(labels.device)
    sorted_labels, order = torch.sort(labels[perm], stable=True)
    cells = perm[order]  # grouped by label, random within a label
    counts = torch.bincount(sorted_labels)
    starts = torch.cumsum(counts, 0) - counts
    rank_sorted = torch.arange(n, device=labels.device) - starts[sorted_labels]
    rank = torch.empty_like(rank_sorted)
    rank[cells] = rank_sorted
    return rank


def multimodal_group_clip_loss(
    zs: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    *,
    tau: float = 0.5,
    variant: GroupClipVariant = "in",
    normalize: bool = True,
    random_pairs: bool = False,
) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
    r"""GroupCLIP over every pair of two or more modalities.

    For modalities :math:`1, \dots, M` with embeddings :math:`z^a` and labels, the loss is the
    mean of the two-modality :func:`group_clip_loss` (symmetrised, anchors without positives
    skipped) over the pairs :math:`a < b` that have a positive at all:

    .. math::

        \mathcal{L} = \frac{1}{|Q|} \sum_{(a, b) \in Q} \mathcal{L}_{\mathrm{GroupCLIP}}(z^a, z^b),
        \qquad Q = \{(a, b) : a < b,\ \exists\, i \in a,\ j \in b,\ y_i = y_j\}

    so the positives of an anchor of modality :math:`a` are, in the term of each other
    modality :math:`b`, the cells of :math:`b` with its label, normalised over all cells of
    :math:`b` in the batch. A label present in only some modalities contributes to the pairs
    of those modalities. With two modalities :math:`\mathcal{L}` *is*
    :func:`group_clip_loss` of the pair (the same tensor, not a mean of one), and it is zero
    (attached to the graph) when no pair has a positive. Averaging over pairs keeps the scale
    of ``beta`` independent of the number of modalities.

    Parameters
    ----------
    zs
        Embeddings of each modality, shapes ``(n_m, d)``.
    labels
        Integer labels of each modality's cells, shapes ``(n_m,)`` (one vocabulary).
    tau
        Temperature (> 0).
    variant
        ``"in"`` or ``"out"`` (see :func:`group_clip_loss`).
    normalize
        L2-normalise the embeddings first.
    random_pairs
        Replace the labels of each pair by random within-label 1:1 pseudo-pair ids
        (:func:`random_pair_labels`, drawn per pair from the global torch generator) before
        the pair's loss: the ``clip_random_pairs`` baseline.

    Returns
    -------
    ``(loss, pair_losses)``: the scalar loss and ``{(a, b): loss of the pair}`` for every pair
    ``a < b`` (zero for pairs without positives, which the mean skips).
    """
    zs, labels = list(zs), [lab.reshape(-1) for lab in labels]
    if len(zs) < 2 or len(zs) != len(labels):
        raise ValueError(
            f"`zs` and `labels` must hold the same number (>= 2) of modalities, got "
            f"{len(zs)} and {len(labels)}."
        )
    pairs: dict[tuple[int, int], torch.Tensor] = {}
    valid: list[torch.Tensor] = []
    for a in range(len(zs)):
        for b in range(a + 1, len(zs)):
            la, lb = labels[a], labels[b]
            if random_pairs:
                la, lb = random_pair_labels(la, lb)
            term = group_clip_loss(
                zs[a], la, zs[b], lb, tau=tau, variant=variant, normalize=normalize
            )
            pairs[(a, b)] = term
            if bool(torch.isin(la, lb).any()):
                valid.append(term)
    if len(zs) == 2:
        return pairs[(0, 1)], pairs
    if not valid:
        return sum(z.sum() for z in zs) * 0.0, pairs
    return torch.stack(valid).mean(), pairs
