"""What the chapter asserts, computed from the metrics of one reduced run (three simulated seeds).

Every claim must single out voter modelling: a head that merely matches the voter model (a tie) fails them.
The thresholds are the module constants below, so that they can be set from a sweep over seeds without
touching the claims.
"""
from __future__ import annotations

from rfy.claims import Claim, at_least, at_most

#: Largest advantage in r of the voter model over the best other head (mean over the run's seeds) that still
#: counts as seed noise: the tolerance of the control, where identical voters leave nothing to model.
CONTROL_NOISE = 0.005
#: Smallest advantage in r over the best other head (mean over the run's seeds) the voter model must show with
#: biased voters: it must clear the control's noise band, so a tie fails.
MIN_ADVANTAGE = CONTROL_NOISE
#: Smallest number of raw votes the voter model must be worth beyond the best other head (k* margin, mean over
#: the run's seeds of the per-seed margin).
MIN_VOTE_MARGIN = 1.0


def claims(metrics: dict[str, float]) -> list[Claim]:
    """The chapter's claims; empty for a run without the simulation's voter model (e.g. full mode)."""
    found = []
    if "voter_advantage" in metrics:
        found.append(at_least(
            "voter-model-best", "Voter model's r minus the best other head's r (mean over seeds)",
            metrics["voter_advantage"], MIN_ADVANTAGE, decimals=3,
            why="The paper's ranking: the voter model correlates best with the truth. It must win by more "
                "than the control's tolerance, the advantage we still put down to seed noise when every "
                "voter is identical, so a head that only ties with it fails."))
    if "voter_k_star_advantage" in metrics:
        found.append(at_least(
            "voter-model-vote-margin", "Raw votes the voter model is worth beyond the best other head "
                                 "(k* margin, mean over seeds)",
            metrics["voter_k_star_advantage"], MIN_VOTE_MARGIN, unit=" votes", decimals=1,
            why="The paper's yardstick, turned into a comparison: other heads trained on the same votes are "
                "also worth many raw votes, so what voter modelling adds is the margin. A whole vote is far "
                "beyond the margin in the control, which stays within a fraction of a vote."))
    if "control_voter_advantage" in metrics:
        found.append(at_most(
            "control-no-advantage", "Voter model's advantage when every voter is identical and unbiased",
            metrics["control_voter_advantage"], CONTROL_NOISE, decimals=3,
            why="With identical voters there is nothing to model, so any advantage is seed noise; the "
                "tolerance is a few standard deviations of that noise for a mean over three seeds, and the "
                "same number the biased voters must clear."))
    return found
