"""Chapter 8: Divide and conquer the embedding space for metric learning (Sanakoyeu, Tschernezki, Büchler &
Ommer, CVPR 2019).

Metric learning trains an embedding $f(x)$ in which images of one class lie close together, so that
images of classes never seen in training can be retrieved by their nearest neighbours. Real data are
heterogeneous (birds on water and on branches), and one metric for all of it is hard to learn. The
paper clusters the data into K groups, splits the d-dimensional embedding into K slices ("learners"),
and trains slice k only on batches from cluster k with its own margin loss; every few epochs it
re-clusters and hands each new cluster to the learner whose old cluster it overlaps most; at the end
the whole embedding is trained on all data. The package has:

* ``split_embedding``, ``full_embedding``, ``pairwise_distances``, ``margin_loss``, ``distance_weights``,
  ``sample_negatives``, ``batch_margin_loss``: the learners and the loss as pure tensor functions;
* ``cluster_features``, ``match_clusters``, ``ClusterBatches``: k-means (scikit-learn), Hungarian matching
  (scipy) and class-balanced batches drawn within one cluster;
* ``recall_at_k``, ``nmi``, ``clustering_nmi``: retrieval and clustering quality on unseen classes;
* ``domain_digits``, ``read_cub``, ``load_cub``: the reduced data (digits in four domains) and CUB-200-2011;
* ``Learner`` and ``train``: the training loop on the device (frozen batch norm, mixed precision, checkpoints);
* ``compare`` and ``run_experiment``: K learners against K = 1 trained by the same pipeline, over seeds;
* ``claims``: what the chapter asserts about those metrics;
* ``cost_parts``: what each preset costs, step by step at its true size (``python -m rfy estimate``).
"""
from rfy.contract import Chapter
from rfy.divide_conquer.claims import claims
from rfy.divide_conquer.clustering import ClusterBatches, cluster_features, match_clusters
from rfy.divide_conquer.config import DATASETS, MODELS, SAMPLERS, Config
from rfy.divide_conquer.cost import cost_parts
from rfy.divide_conquer.data import (DOMAINS, RetrievalData, domain_digits, domain_transform, load_cub, load_data,
                                     read_cub)
from rfy.divide_conquer.evaluation import clustering_nmi, nearest_neighbours, nmi, recall_at_k
from rfy.divide_conquer.experiments import (Comparison, arms, cluster_domains, compare, comparison_metrics,
                                            learner_domain_recall, run_experiment, run_metrics, specialisation,
                                            train_run)
from rfy.divide_conquer.losses import (batch_margin_loss, distance_weights, full_embedding, margin_loss,
                                       pairwise_distances, sample_negatives, split_embedding)
from rfy.divide_conquer.models import Embedder, cnn_embedder, make_embedder, mlp_embedder
from rfy.divide_conquer.train import Learner, TrainResult, train
from rfy.tables import PaperNumber

CUB = "CUB-200-2011 (classes 101–200 unseen)"
DIGITS = "8×8 digits in 4 domains (digits 5–9 unseen)"
_UNVERIFIED = "as quoted in roundups of the paper (its Table 1, margin loss, K = 4); check against the PDF"

PAPER_NUMBERS = [
    PaperNumber("CUB-200-2011: Recall@1 (%)", "k4_recall@1", 65.9, "sanakoyeu2019divide", _UNVERIFIED,
                higher_is_better=True, data=CUB, mode="full", decimals=1),
    PaperNumber("CUB-200-2011: Recall@2 (%)", "k4_recall@2", 76.6, "sanakoyeu2019divide", _UNVERIFIED,
                higher_is_better=True, data=CUB, mode="full", decimals=1),
    PaperNumber("CUB-200-2011: Recall@4 (%)", "k4_recall@4", 84.4, "sanakoyeu2019divide", _UNVERIFIED,
                higher_is_better=True, data=CUB, mode="full", decimals=1),
    PaperNumber("CUB-200-2011: Recall@8 (%)", "k4_recall@8", 90.6, "sanakoyeu2019divide", _UNVERIFIED,
                higher_is_better=True, data=CUB, mode="full", decimals=1),
    PaperNumber("CUB-200-2011: NMI (%)", "k4_nmi", 69.6, "sanakoyeu2019divide", _UNVERIFIED,
                higher_is_better=True, data=CUB, mode="full", decimals=1),
    PaperNumber("Digits in 4 domains: Recall@1 (%), K = 4", "k4_recall@1", None, "sanakoyeu2019divide",
                "reduced mode only: the paper has no digits experiment", higher_is_better=True, data=DIGITS,
                mode="reduced", decimals=1),
    PaperNumber("Digits in 4 domains: Recall@1 (%), K = 1", "k1_recall@1", None, "sanakoyeu2019divide",
                "reduced mode only; the baseline trained by the same pipeline", higher_is_better=True, data=DIGITS,
                mode="reduced", decimals=1),
]


def optional_packages(config: Config) -> list[tuple[str, str]]:
    """torchvision, for the pretrained ResNet-50 trunk of the full preset."""
    return [("torchvision", "the pretrained ResNet-50 comes from torchvision: pip install torchvision")] \
        if config.model == "resnet-50" else []


CHAPTER = Chapter(
    "divide-conquer", 8, "Divide and conquer the embedding space", "08_divide_conquer",
    Config, run_experiment, claims, PAPER_NUMBERS, citation="sanakoyeu2019divide",
    summary="splitting the embedding among data clusters improves retrieval", study=compare, cost_parts=cost_parts, optional_packages=optional_packages)


__all__ = [
    "CHAPTER",
    "Config", "PAPER_NUMBERS", "run_experiment", "claims", "DATASETS", "MODELS", "SAMPLERS", "DOMAINS",
    "split_embedding", "full_embedding", "pairwise_distances", "margin_loss", "distance_weights", "sample_negatives",
    "batch_margin_loss", "cluster_features", "match_clusters", "ClusterBatches", "recall_at_k", "nmi",
    "clustering_nmi", "nearest_neighbours", "RetrievalData", "domain_digits", "domain_transform", "read_cub",
    "load_cub", "load_data", "Embedder", "mlp_embedder", "cnn_embedder", "make_embedder", "Learner",
    "TrainResult", "train", "Comparison", "arms", "compare", "comparison_metrics", "run_metrics", "train_run",
    "learner_domain_recall", "cluster_domains", "specialisation", "cost_parts",
]
