"""What the MixMatch chapter asserts, computed from the metrics of ``run_experiment`` alone.

Every claim uses the paper's statistic, the median test error of the last 20 evaluations of a run,
averaged over the seeds of the experiment. Claims whose methods were not run are left out.
"""
from __future__ import annotations

from rfy.claims import Claim, at_least, at_most
from rfy.mixmatch.config import MIXMATCH, NO_SHARPENING, SUPERVISED
from rfy.mixmatch.experiments import PAPER_STATISTIC

#: The paper's CIFAR-10 result with 250 labels: 11.08 ± 0.87 % over 5 label splits (Table 1).
PAPER_CIFAR10_250 = (11.08, 0.87)
#: How many standard deviations over seeds MixMatch must beat the supervised baseline by.
SEPARATION_STDS = 1.5
#: How many points of test error MixMatch must lose without sharpening.
SHARPENING_GAIN = 2.0


def setting_prefix(metrics: dict[str, float]) -> str | None:
    """The ``<dataset>_<labels>`` prefix of the metrics (``digits_50``), from the MixMatch entry; None without one."""
    suffix = f"_{MIXMATCH}_{PAPER_STATISTIC}"
    prefixes = sorted(key[:-len(suffix)] for key in metrics if key.endswith(suffix))
    return prefixes[0] if prefixes else None


def claims(metrics: dict[str, float]) -> list[Claim]:
    """The chapter's claims on the metrics of one experiment (one entry per claim whose methods ran)."""
    prefix = setting_prefix(metrics)
    if prefix is None:
        return []

    def error(method: str) -> float | None:
        return metrics.get(f"{prefix}_{method}_{PAPER_STATISTIC}")

    def std(method: str) -> float:
        return metrics[f"{prefix}_{method}_{PAPER_STATISTIC}_std"]

    found, mixmatch = [], error(MIXMATCH)
    supervised = error(SUPERVISED)
    if supervised is not None:
        spread = max(std(SUPERVISED), std(MIXMATCH))
        found.append(at_least(
            "mixmatch-beats-supervised",
            "Supervised minus MixMatch error, in seed standard deviations",
            (supervised - mixmatch) / spread if spread > 0 else float("inf"), SEPARATION_STDS, unit=" std",
            decimals=1,
            why="A gap of one and a half standard deviations over seeds (the larger of the two methods') "
                "is unlikely to come from a lucky draw of the labelled examples; it is a sharper test than "
                "'MixMatch is lower', which a tie fails only by chance."))
    unsharpened = error(NO_SHARPENING)
    if unsharpened is not None:
        found.append(at_least(
            "sharpening-helps", "MixMatch without sharpening (T = 1) minus MixMatch error",
            unsharpened - mixmatch, SHARPENING_GAIN, unit=" points", decimals=1,
            why="Two points is several times the spread of MixMatch's error over seeds (the robustness page "
                "shows it), so a rise that large is not seed noise."))
    if prefix == "cifar-10_250":
        value, spread = PAPER_CIFAR10_250
        found.append(at_most(
            "cifar-10-250-error", "MixMatch test error on CIFAR-10 with 250 labels", mixmatch,
            value + 3 * spread, unit="%", decimals=2,
            why="The paper's 11.08% plus three of its standard deviations over label splits (0.87)."))
    return found
