"""What the semi-unsupervised chapter asserts, computed from the metrics of ``run_experiment`` alone.

The reduced experiment (digits and the prototypes stand-in, means over ``repeats`` seeds) asserts what
held on at least 9 of seeds 0–9: both models discover the masked digits and keep the labelled ones, and
on the stand-in GM-DGM is far ahead of M2 on the masked classes. That GM-DGM is ahead on *digits* is
not asserted: it does not hold reliably at this scale (the chapter shows the per-seed gaps). A run
without the stand-in (full mode, Fashion-MNIST) is checked against the paper's result instead.
"""
from __future__ import annotations

from rfy.claims import Claim, at_least
from rfy.semi_unsupervised.experiments import NAMES, STAND_IN

#: The paper's semi-unsupervised Fashion-MNIST accuracy of GM-DGM: 77.2 ± 1.3 % (abstract, v1).
PAPER_FASHION_MNIST = (77.2, 1.3)
MASKED_FLOOR = 35.0
LABELLED_FLOOR = 85.0
STAND_IN_MEAN_GAP = 15.0
STAND_IN_MIN_GAP = 5.0


def claims(metrics: dict[str, float]) -> list[Claim]:
    """The chapter's claims on the metrics of one experiment (only those whose runs are in ``metrics``)."""
    found: list[Claim] = []
    if f"{STAND_IN}masked_gap" not in metrics:
        return paper_claims(metrics)
    for kind, name in NAMES.items():
        if f"{kind}_masked_accuracy" not in metrics:
            continue
        found.append(at_least(
            f"{kind}-discovers-masked-digits", f"{name}: accuracy on the masked digits (mean over seeds)",
            metrics[f"{kind}_masked_accuracy"], MASKED_FLOOR, unit="%", decimals=1,
            why="A model that filed every masked digit under a labelled class would score 0%; 35% means "
                "several masked classes got clusters of their own, with room below it for the spread "
                "between seeds (the robustness page shows it)."))
        found.append(at_least(
            f"{kind}-keeps-labelled-digits", f"{name}: accuracy on the labelled digits (mean over seeds)",
            metrics[f"{kind}_labelled_accuracy"], LABELLED_FLOOR, unit="%", decimals=1,
            why="About ten labels per class give about 90%; 85% leaves room for the spread between seeds "
                "and for other machines' arithmetic, and a model whose unlabelled term hurt the labelled "
                "classes would fall below it."))
    found.append(at_least(
        "stand-in-gmdgm-ahead", "Stand-in: GM-DGM minus M2 on the masked classes (mean over seeds)",
        metrics[f"{STAND_IN}masked_gap"], STAND_IN_MEAN_GAP, unit=" points", decimals=1,
        why="Well above the few points either way that separate the models on digits, so a difference "
            "of the size seen there does not pass it."))
    found.append(at_least(
        "stand-in-gmdgm-ahead-every-seed", "Stand-in: smallest per-seed gap, GM-DGM minus M2 (masked classes)",
        metrics[f"{STAND_IN}masked_gap_min"], STAND_IN_MIN_GAP, unit=" points", decimals=1,
        why="No single seed may reverse the effect; 5 points is about a dozen of the 224 masked test "
            "images."))
    return found


def paper_claims(metrics: dict[str, float]) -> list[Claim]:
    """Full mode: GM-DGM's overall accuracy within three of the paper's standard deviations of 77.2%."""
    if "gmdgm_overall_accuracy" not in metrics:
        return []
    value, spread = PAPER_FASHION_MNIST
    return [at_least(
        "gmdgm-fashion-mnist", "GM-DGM semi-unsupervised Fashion-MNIST accuracy",
        metrics["gmdgm_overall_accuracy"], value - 3 * spread, unit="%", decimals=1,
        why="The paper's 77.2% less three of its standard deviations (1.3) over runs.")]
