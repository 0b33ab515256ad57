"""What the chapter asserts about its α sweep, computed from the metrics of ``run_experiment``.

Every claim compares DB-VAE with ``α = 0.1`` (the paper's mildest setting) against the standard
classifier, both averaged over the run's seeds. Claims whose metrics are missing (a sweep without
``α = 0.1``) are left out, so an empty list means nothing was measured.
"""
from __future__ import annotations

from rfy.claims import Claim, at_least, at_most

#: The α the claims are about.
CLAIM_ALPHA = 0.1
#: Smallest gain of accuracy on the rare groups over the standard classifier (percentage points).
MIN_RARE_GAIN = 5.0
#: Largest variance of accuracy across the groups, as a fraction of the standard classifier's.
MAX_VARIANCE_RATIO = 0.5
#: Smallest change of accuracy on the common groups (percentage points; negative: a loss we accept).
MIN_COMMON_CHANGE = -2.0
#: Smallest accuracy on negatives (%).
MIN_NEGATIVES_ACCURACY = 95.0


def claims(metrics: dict[str, float], alpha: float = CLAIM_ALPHA) -> list[Claim]:
    """The chapter's claims for DB-VAE with sampling parameter ``alpha`` against the standard classifier."""
    ours, base = f"dbvae_alpha_{alpha:g}", "standard"
    needed = [f"{prefix}_{name}" for prefix in (ours, base)
              for name in ("rare_accuracy", "common_accuracy", "variance", "negatives_accuracy")]
    if any(key not in metrics for key in needed):
        return []
    m = metrics
    return [
        at_least("rare_gain", f"α = {alpha:g}: accuracy on the rare groups gains (points)",
                 m[f"{ours}_rare_accuracy"] - m[f"{base}_rare_accuracy"], MIN_RARE_GAIN, unit="", decimals=1,
                 why="Each rare test group has 450 images, so 5 points is over 20 more faces found per group "
                     "and seed, far beyond the spread between seeds of the DB-VAE itself."),
        at_most("variance_ratio", f"α = {alpha:g}: variance of accuracy across the groups, relative to the "
                                   "standard classifier's",
                m[f"{ours}_variance"] / max(m[f"{base}_variance"], 1e-9), MAX_VARIANCE_RATIO, decimals=3,
                why="The paper's headline is a fairer detector; we ask for at least half of the standard "
                    "classifier's spread between groups to go."),
        at_least("common_change", f"α = {alpha:g}: change of accuracy on the common groups (points)",
                 m[f"{ours}_common_accuracy"] - m[f"{base}_common_accuracy"], MIN_COMMON_CHANGE, decimals=1,
                 why="Resampling draws fewer common faces; a loss of up to 2 points (9 images of 450) is "
                     "the price we accept, a collapse is not."),
        at_least("negatives", f"α = {alpha:g}: accuracy on negatives (%)", m[f"{ours}_negatives_accuracy"],
                 MIN_NEGATIVES_ACCURACY, decimals=1, why="A detector that called everything a face would gain on every group; 95% "
                                 "keeps false alarms at most one in twenty."),
    ]
