"""Evaluation helpers: nearest-neighbour accuracy of learned features, batched encoding, PCA.

The BiGAN chapter asks whether an encoder trained only through an adversarial game
produces features in which digits of the same class lie close together. The
standard check (Donahue et al., 2017, Table 1) is 1-nearest-neighbour
classification: label every query image with the label of its nearest reference
image in feature space. Nothing is fitted, so the number measures the geometry of
the features and nothing else.

Distances are computed on torch in blocks of query rows, so 10,000 queries against
60,000 references never materialise a 600-million-entry matrix at once, and the
same code runs on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .config import check_choice, check_positive

METRICS: tuple[str, ...] = ("euclidean", "cosine")


def _as_2d(features: torch.Tensor, name: str) -> torch.Tensor:
    if features.dim() < 2:
        raise ValueError(f"{name} must have shape (N, ...) with at least 2 dimensions, got {tuple(features.shape)}")
    return features.flatten(1)


def _block_rows(n_reference: int, max_entries: int) -> int:
    """Query rows per block so that one block of distances has at most ``max_entries`` entries."""
    return max(1, max_entries // max(1, n_reference))


def _scores(queries: torch.Tensor, reference: torch.Tensor, ref_sq: torch.Tensor | None,
            metric: str) -> torch.Tensor:
    """A (q, r) matrix where SMALLER means nearer (squared distance, or minus cosine similarity)."""
    if metric == "cosine":
        return -(queries @ reference.T)  # both sides already normalised
    # ||q - r||^2 = ||q||^2 + ||r||^2 - 2 q.r ; clamp the round-off below zero
    assert ref_sq is not None
    d = queries.pow(2).sum(1, keepdim=True) + ref_sq.unsqueeze(0) - 2.0 * (queries @ reference.T)
    return d.clamp_min_(0.0)


def _prepare(queries: torch.Tensor, reference: torch.Tensor, metric: str, eps: float = 1e-12
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    check_choice("metric", metric, METRICS)
    q, r = _as_2d(queries, "queries"), _as_2d(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} features but the reference has {r.shape[1]}")
    if len(r) == 0:
        raise ValueError("the reference set is empty")
    q, r = q.float(), r.float().to(q.device)
    if metric == "cosine":
        q = q / q.norm(dim=1, keepdim=True).clamp_min(eps)
        r = r / r.norm(dim=1, keepdim=True).clamp_min(eps)
        return q, r, None
    return q, r, r.pow(2).sum(1)


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int = 1,
                       metric: str = "euclidean", max_entries: int = 2**24) -> torch.Tensor:
    """Indices (Q, k) of the ``k`` nearest reference rows of every query, nearest first.

    ``metric`` is ``euclidean`` or ``cosine`` (1 - cosine similarity). For ``k = 1``
    ties go to the earliest reference row (``argmin`` semantics), so results are
    reproducible. Inputs of any shape ``(N, ...)`` are flattened per row.
    """
    check_positive("k", k)
    q, r, r_sq = _prepare(queries, reference, metric)
    if k > len(r):
        raise ValueError(f"k={k} is larger than the reference set ({len(r)} rows); choose k between 1 and {len(r)}")
    rows = _block_rows(len(r), max_entries)
    out = []
    for start in range(0, len(q), rows):
        s = _scores(q[start:start + rows], r, r_sq, metric)
        out.append(s.argmin(1, keepdim=True) if k == 1 else s.topk(k, dim=1, largest=False).indices)
    if not out:
        return torch.empty(0, k, dtype=torch.long, device=q.device)
    return torch.cat(out)


def knn_predict(ref_features: torch.Tensor, ref_labels: torch.Tensor, query_features: torch.Tensor,
                k: int = 1, metric: str = "euclidean", max_entries: int = 2**24) -> torch.Tensor:
    """Majority vote of the ``k`` nearest reference labels; a tie goes to the class with nearer neighbours."""
    if len(ref_labels) != len(ref_features):
        raise ValueError(f"{len(ref_features)} reference features but {len(ref_labels)} labels")
    idx = nearest_neighbours(query_features, ref_features, k, metric, max_entries)
    labels = ref_labels.to(idx.device)[idx]  # (Q, k)
    if k == 1:
        return labels[:, 0]
    n_classes = int(ref_labels.max()) + 1
    # Every neighbour casts one vote plus a rank bonus (k - rank) / k^2; the bonuses of all k
    # neighbours sum to (k + 1) / (2k) < 1, so they only decide between classes with equal votes.
    rank = torch.arange(k, device=idx.device, dtype=torch.float32)
    weight = 1.0 + (k - rank) / (k * k)
    votes = torch.zeros(len(idx), n_classes, device=idx.device)
    votes.scatter_add_(1, labels, weight.expand_as(labels).contiguous())
    return votes.argmax(1)


def knn_accuracy(ref_features: torch.Tensor, ref_labels: torch.Tensor, query_features: torch.Tensor,
                 query_labels: torch.Tensor, k: int = 1, metric: str = "euclidean",
                 max_entries: int = 2**24) -> float:
    """Fraction of queries whose k-NN vote (see :func:`knn_predict`) equals their label."""
    if len(query_labels) != len(query_features):
        raise ValueError(f"{len(query_features)} query features but {len(query_labels)} labels")
    if len(query_labels) == 0:
        raise ValueError("the query set is empty")
    pred = knn_predict(ref_features, ref_labels, query_features, k, metric, max_entries)
    return float((pred == query_labels.to(pred.device)).float().mean())


def nearest_neighbour_accuracy(ref_features: torch.Tensor, ref_labels: torch.Tensor,
                               query_features: torch.Tensor, query_labels: torch.Tensor,
                               metric: str = "euclidean") -> float:
    """1-NN accuracy, the protocol of the BiGAN paper's Table 1."""
    return knn_accuracy(ref_features, ref_labels, query_features, query_labels, 1, metric)


@torch.no_grad()
def encode_dataset(encoder: nn.Module | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                   batch_size: int = 1000, device: str | torch.device | None = None) -> torch.Tensor:
    """Features of ``images`` in batches, in eval mode and without gradients; returned on the CPU.

    Eval mode matters: BatchNorm then uses its running statistics, so a sample's
    features do not depend on which other images share its batch. The module's
    previous train/eval mode is restored afterwards, so this can be called in the
    middle of training (e.g. from a snapshot callback) without side effects.
    """
    check_positive("batch_size", batch_size)
    module = encoder if isinstance(encoder, nn.Module) else None
    if device is None:
        params = list(module.parameters()) if module is not None else []
        device = params[0].device if params else images.device
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        out = [encoder(images[i:i + batch_size].to(device)).float().flatten(1).cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        if module is not None:
            module.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def fixed_split(n: int, n_query: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint (reference, query) index sets of sizes ``n - n_query`` and ``n_query``.

    The permutation comes from its own ``torch.Generator``, so the split depends on
    ``seed`` only -- not on how much random number generation happened before.
    """
    check_positive("n_query", n_query)
    if n_query >= n:
        raise ValueError(f"n_query={n_query} leaves no reference points out of n={n}; choose 1 <= n_query < n")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_query:].sort().values, perm[:n_query].sort().values


def pca(features: torch.Tensor, n_components: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Project centred rows on their top principal axes; return (projections, explained-variance ratios).

    An exact SVD (features here have at most a few hundred columns), with each
    axis's sign fixed so that its largest-magnitude loading is positive: the
    picture does not flip between runs or library versions.
    """
    x = _as_2d(features, "features").double()
    check_positive("n_components", n_components)
    if n_components > min(x.shape):
        raise ValueError(f"n_components={n_components} exceeds min(N, D) = {min(x.shape)}")
    x = x - x.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    axes = vh[:n_components]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    axes = axes * signs
    var = s.pow(2)
    ratio = var[:n_components] / var.sum().clamp_min(1e-300)
    return (x @ axes.T).float(), ratio.float()
