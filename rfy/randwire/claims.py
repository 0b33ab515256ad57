"""What chapter 5 asserts about its metrics, each with its threshold and why."""
from __future__ import annotations

from rfy.claims import Claim, at_least, at_most


def claims(metrics: dict[str, float]) -> list[Claim]:
    """What the chapter asserts, computed from the metrics of ``run_experiment`` alone."""
    prefix = next(iter(metrics), "digits").split("_")[0]  # the dataset: "digits" or "cifar-10"
    m = lambda name: metrics.get(f"{prefix}_{name}", float("nan"))  # a missing measurement never holds
    found = [
        at_least("every-graph-trains",
                 "Every sampled network (ER, BA, WS, every graph seed) reaches this test accuracy",
                 m("generators_accuracy_min"), 80.0, unit="%", decimals=1,
                 why="the weakest of the nine sampled networks scored 84.7-91.3% on seeds 0-9; 80% leaves room for "
                     "an unlucky graph and still rules out a failed training run"),
        at_most("spread-small-against-gap",
                "Widest accuracy range among one generator's graphs, as a share of the generators' lead over the chain",
                m("range_over_gap"), 0.3, decimals=2,
                why="measured 0.06-0.17 on seeds 0-9: the instances of a generator agree to within a few points "
                    "while the chain trails by tens; 0.3 still means the spread is small against the gap"),
        at_least("node-damage-grows-with-out-degree",
                 "Spearman correlation of a removed node's output degree with the accuracy lost (mean of 3 networks)",
                 m("node_removal_spearman_out_degree"), 0.15, decimals=2,
                 why="measured 0.26-0.43 on seeds 0-9; 0.15 asks for a clear positive trend, not for its strength"),
        at_most("edge-damage-shrinks-with-target-in-degree",
                "Spearman correlation of an edge's target in-degree with the accuracy lost (mean of 3 networks)",
                m("edge_removal_spearman_target_in_degree"), -0.05, decimals=2,
                why="measured -0.34 to -0.10 on seeds 0-9; below -0.05 says a node with more inputs loses less "
                    "when one of them is cut, beyond rank noise"),
    ]
    # The spread claim compares with the chain (the weak baseline of reduced mode); full mode has a ResNet instead.
    return [claim for claim in found
            if claim.key != "spread-small-against-gap" or f"{prefix}_chain_accuracy_mean" in metrics]
