"""Retrieval on unseen classes: Recall@K with the query itself excluded, and NMI of a k-means clustering."""
from __future__ import annotations

import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score


@torch.no_grad()
def nearest_neighbours(embeddings: torch.Tensor, k: int, batch_size: int = 1024) -> torch.Tensor:
    """Indices ``[N, k]`` of each point's ``k`` nearest other points (Euclidean), in row blocks on the device."""
    neighbours = []
    for start in range(0, len(embeddings), batch_size):
        block = embeddings[start:start + batch_size]
        distances = torch.cdist(block.float(), embeddings.float())
        rows = torch.arange(len(block), device=embeddings.device)
        distances[rows, rows + start] = float("inf")  # a query never retrieves itself
        neighbours.append(distances.topk(k, dim=1, largest=False).indices)
    return torch.cat(neighbours)


@torch.no_grad()
def recall_at_k(embeddings: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 2, 4, 8),
                batch_size: int = 1024) -> dict[int, float]:
    """Recall@K (%) for each K: the share of queries with at least one same-class point among their K neighbours.

    $R@K = \\frac{100}{N} \\sum_q \\mathbb 1\\left[\\exists\\, j \\in \\mathrm{NN}_K(q),\\ y_j = y_q\\right]$,
    the query itself excluded.
    """
    neighbours = nearest_neighbours(embeddings, max(ks), batch_size)
    hits = labels.to(neighbours.device)[neighbours] == labels.to(neighbours.device).unsqueeze(1)
    first_hit = hits.cumsum(dim=1) > 0
    return {k: 100.0 * first_hit[:, k - 1].float().mean().item() for k in ks}


def nmi(assignment, labels) -> float:
    """Normalised mutual information $\\mathrm{NMI}(\\Omega, C) = \\frac{2 I(\\Omega; C)}{H(\\Omega) + H(C)}$ (%)."""
    as_numpy = lambda x: x.cpu().numpy() if isinstance(x, torch.Tensor) else x
    return 100.0 * normalized_mutual_info_score(as_numpy(labels), as_numpy(assignment), average_method="arithmetic")


def clustering_nmi(embeddings: torch.Tensor, labels: torch.Tensor, *, seed: int, restarts: int = 1) -> float:
    """NMI (%) between the classes and k-means on the embeddings with as many centres as classes."""
    classes = int(labels.unique().numel())
    kmeans = KMeans(classes, n_init=restarts, random_state=seed)
    return nmi(kmeans.fit_predict(embeddings.float().cpu().numpy()), labels)
