"""Naming clusters and scoring them, with labels the model never trained on.

Each output $y$ of $q(y\\mid x)$ is a cluster. After training we give every cluster the majority
true label of the **validation** images assigned to it, then score the test images with that
map: overall, on the masked classes alone and on the labelled classes alone. An output that no
test image reaches is **dead** (``dead_outputs``): a masked class whose output died can only be
scored as some other class.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

UNMAPPED = -1


def cluster_to_label(clusters: torch.Tensor, labels: torch.Tensor, n_clusters: int, n_classes: int) -> torch.Tensor:
    """``[n_clusters]``: the most frequent label among the points of each cluster (``UNMAPPED`` if it has none)."""
    counts = torch.zeros(n_clusters, n_classes, dtype=torch.long, device=clusters.device)
    counts.index_put_((clusters, labels), torch.ones_like(labels), accumulate=True)
    mapping = counts.argmax(dim=1)
    mapping[counts.sum(dim=1) == 0] = UNMAPPED
    return mapping


def accuracies(predicted: torch.Tensor, labels: torch.Tensor, masked_classes: Sequence[int]) -> dict[str, float]:
    """Accuracy (%) overall, on points of masked classes and on points of labelled classes."""
    correct = (predicted == labels).float()
    masked = torch.isin(labels, torch.tensor(list(masked_classes), device=labels.device))
    return {"overall": 100 * float(correct.mean()),
            "masked": 100 * float(correct[masked].mean()) if masked.any() else float("nan"),
            "labelled": 100 * float(correct[~masked].mean()) if (~masked).any() else float("nan")}


def dead_outputs(clusters: torch.Tensor, n_clusters: int) -> int:
    """How many of the outputs ``0 … n_clusters − 1`` no point is assigned to: $K - |\\{\\hat y_i\\}|$."""
    if clusters.numel() and (int(clusters.min()) < 0 or int(clusters.max()) >= n_clusters):
        raise ValueError(f"clusters must lie in 0..{n_clusters - 1}, got values from {int(clusters.min())} "
                         f"to {int(clusters.max())}")
    return n_clusters - int(torch.unique(clusters).numel())
