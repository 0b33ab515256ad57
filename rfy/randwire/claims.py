"""What chapter 5 asserts about its metrics, each with its threshold and why."""
from __future__ import annotations

from rfy.claims import Claim, at_least, at_most

#: Lowest test accuracy (%) any sampled network may reach.
ACCURACY_MIN = 80.0
#: Largest ratio of the spread over graphs to the spread over training seeds (pooled standard deviations).
SPREAD_RATIO_MAX = 6.0  # set on seeds 0-9 of the reduced preset, then frozen
#: Smallest mean Spearman correlation of a removed node's output degree with the damage.
NODE_DAMAGE_SPEARMAN_MIN = 0.15
#: Largest mean Spearman correlation of an edge's target in-degree with the damage.
EDGE_DAMAGE_SPEARMAN_MAX = -0.05


def claims(metrics: dict[str, float]) -> list[Claim]:
    """What the chapter asserts, computed from the metrics of ``run_experiment`` alone."""
    prefix = next(iter(metrics), "digits").split("_")[0]  # the dataset: "digits" or "cifar-10"
    m = lambda name: metrics.get(f"{prefix}_{name}", float("nan"))  # a missing measurement never holds
    edge_networks = int(metrics.get(f"{prefix}_edge_removal_spearman_target_in_degree_networks", 0))
    found = [
        at_least("every-graph-trains",
                 "Every sampled network (ER, BA, WS, every graph seed) reaches this test accuracy",
                 m("generators_accuracy_min"), ACCURACY_MIN, unit="%", decimals=1,
                 why="a failed or diverged run on ten digits stays far below this; the margin under the generators' "
                     "usual accuracy leaves room for an unlucky graph"),
        at_most("graph-spread-few-times-training-noise",
                "Standard deviation of accuracy over a generator's graphs, as a multiple of that of one fixed graph "
                "over training seeds (both pooled over ER, BA and WS)",
                m("graph_over_training_spread"), SPREAD_RATIO_MAX, decimals=2,
                why="a ratio near 1 would mean a new graph moves the accuracy no more than retraining does; the "
                    "ratio of two pooled standard deviations with 6 and 3 degrees of freedom is noisy (even with no "
                    "graph effect its square follows an F distribution and exceeds 6² about 0.7% of the time), so the "
                    "bound asks only that the graphs of a generator differ by a small multiple of training noise, "
                    "not by the tens of points that separate a chain from a random graph"),
        at_least("node-damage-grows-with-out-degree",
                 "Spearman correlation of a removed node's output degree with the accuracy lost (mean of 3 networks)",
                 m("node_removal_spearman_out_degree"), NODE_DAMAGE_SPEARMAN_MIN, decimals=2,
                 why="asks for a positive trend, not for its strength; rank noise over a few dozen nodes, averaged "
                     "over three networks, is about ±0.1"),
        at_most("edge-damage-shrinks-with-target-in-degree",
                "Spearman correlation of an edge's target in-degree with the accuracy lost (mean over the networks "
                f"where it is defined, here {edge_networks}; BA's edges all enter nodes of in-degree M)",
                m("edge_removal_spearman_target_in_degree"), EDGE_DAMAGE_SPEARMAN_MAX, decimals=2,
                why="below zero by a margin says a node with more inputs loses less when one of them is cut, beyond "
                    "rank noise; a network whose targets all have one in-degree has no correlation and is left out"),
    ]
    # The spread claim needs the retrained graphs (reduced mode only: full mode skips them to save GPU hours).
    return [claim for claim in found
            if claim.key != "graph-spread-few-times-training-noise"
            or f"{prefix}_graph_over_training_spread" in metrics]
