"""Divide: k-means on the trunk's normalised features, learners kept across re-clusterings, batches per cluster."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from rfy.errors import ConfigError


def cluster_features(features: torch.Tensor, clusters: int, *, seed: int, restarts: int = 5,
                     iterations: int = 100) -> torch.Tensor:
    """Cluster ids ``[N]`` from k-means with ``clusters`` centres on $x / \\lVert x \\rVert$ (scikit-learn, not faiss).

    Minimises $\\sum_i \\min_k \\lVert \\hat x_i - \\mu_k \\rVert^2$ over centres $\\mu_k$, best of ``restarts`` runs.
    """
    if clusters == 1:
        return torch.zeros(len(features), dtype=torch.long)
    normalised = F.normalize(features.float(), dim=-1).cpu().numpy()
    kmeans = KMeans(clusters, n_init=restarts, max_iter=iterations, random_state=seed)
    return torch.from_numpy(kmeans.fit_predict(normalised).astype(np.int64))


def match_clusters(previous: torch.Tensor, current: torch.Tensor, clusters: int) -> torch.Tensor:
    """Relabel ``current`` cluster ids so each new cluster goes to the learner whose old cluster it overlaps most.

    With $O_{ij} = |\\{x : \\text{old}(x) = i, \\text{new}(x) = j\\}|$, the Hungarian algorithm finds the
    permutation $\\pi$ maximising $\\sum_j O_{\\pi(j) j}$; new cluster $j$ is then served by learner $\\pi(j)$.
    """
    overlap = torch.zeros(clusters, clusters, dtype=torch.long)
    overlap.index_put_((previous.long().cpu(), current.long().cpu()), torch.ones(len(current), dtype=torch.long),
                       accumulate=True)
    learner_of, cluster = linear_sum_assignment(overlap.numpy(), maximize=True)
    mapping = torch.empty(clusters, dtype=torch.long)
    mapping[torch.from_numpy(cluster)] = torch.from_numpy(learner_of).long()
    return mapping[current.long().cpu()].to(current.device)


class ClusterBatches:
    """Class-balanced batches drawn within one cluster: ``classes_per_batch`` classes × ``images_per_class`` images.

    Only classes with at least 2 images in the cluster are drawn (a class needs a positive pair).
    A class with fewer than ``images_per_class`` images there is drawn with replacement, the others
    without (the official sampler's ``replace=len(idx < n)`` is always true, and repeats images).
    All draws are tensor operations on index tables built once per clustering.
    """

    def __init__(self, labels: torch.Tensor, assignment: torch.Tensor, clusters: int, classes_per_batch: int,
                 images_per_class: int) -> None:
        self.classes_per_batch, self.images_per_class = classes_per_batch, images_per_class
        self.tables: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        labels, assignment = labels.cpu(), assignment.cpu()
        for cluster in range(clusters):
            members = torch.nonzero(assignment == cluster).flatten()
            classes, counts = labels[members].unique(return_counts=True)
            keep = counts >= 2
            if int(keep.sum()) < 2:  # no batch with a positive pair and a negative: this learner sits out
                self.tables.append(None)
                continue
            order = members[labels[members].argsort(stable=True)]
            starts = torch.cumsum(counts, 0) - counts
            width = int(counts[keep].max())
            position = torch.arange(width).unsqueeze(0)
            table = order[(starts[keep].unsqueeze(1) + position).clamp_max(len(order) - 1)]
            self.tables.append((table, counts[keep]))
        #: The clusters batches can be drawn from (at least 2 classes with at least 2 images each).
        self.usable = [cluster for cluster, table in enumerate(self.tables) if table is not None]
        if not self.usable:
            raise ConfigError("no cluster holds 2 classes with 2 or more images each; lower learners")

    def classes_in(self, cluster: int) -> int:
        table = self.tables[cluster]
        return 0 if table is None else len(table[1])

    def draw(self, cluster: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices of one batch from ``cluster`` (``[P·M]``, the M images of each class next to each other)."""
        if self.tables[cluster] is None:
            raise ValueError(f"cluster {cluster} has fewer than 2 classes with 2 or more images")
        table, counts = self.tables[cluster]
        count = min(self.classes_per_batch, len(counts))
        chosen = torch.randperm(len(counts), generator=generator)[:count]
        table, counts = table[chosen], counts[chosen]
        m = self.images_per_class
        keys = torch.rand(table.shape, generator=generator)
        keys = keys.masked_fill(torch.arange(table.shape[1]).unsqueeze(0) >= counts.unsqueeze(1), 2.0)
        without = keys.argsort(dim=1)[:, :m] if table.shape[1] >= m else torch.zeros(count, m, dtype=torch.long)
        with_replacement = (torch.rand(count, m, generator=generator) * counts.unsqueeze(1)).long()
        columns = torch.where((counts >= m).unsqueeze(1), without, with_replacement)
        return table.gather(1, columns).flatten()
