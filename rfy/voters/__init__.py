"""Chapter 6: Photofeeler-D3, a neural network with voter modelling for dating-photo impression
prediction (Kalra & Peterson, 2019).

People rate a dating photo for how smart, trustworthy and attractive it looks, each photo gets only a
few votes, and voters differ: some are harsh, some lenient, some use the whole scale, some click at
random. Averaging a photo's few votes and regressing on that average teaches the network the luck of
who voted. Photofeeler-D3 instead learns an embedding per voter and predicts *that voter's* vote
distribution from the photo; a photo's score is the mean expected vote over a fixed panel of
standard voters. The paper reports a network as accurate as 10 raw votes. No code, data or weights
of the paper are public; the package has:

* ``simulate``: photos with correlated latent traits, voters with leniency, scale, noise, Zipf
  activity and random clickers, votes on a 0-3 scale, and the exact expected-vote ground truth;
* ``VoteModel``: one trunk and the paper's four heads (regression on the mean vote, classification of
  the binned mean, vote distribution, voter model), ``train_head`` to train them on votes;
* ``pearson``, ``raw_vote_curve``, ``votes_equivalent``: correlation with the truth and the
  vote-equivalence k* (how many held-out raw votes match the model);
* ``run_experiment`` and ``claims``: the four heads over seeds, and the control with identical voters;
* ``rfy.voters.scut``: full mode on SCUT-FBP5500's per-rater ratings with a pretrained trunk;
* ``cost_parts``: what each preset costs, step by step at its true size (``python -m rfy estimate``).
"""
from rfy.contract import Chapter
from rfy.tables import PaperNumber
from rfy.voters.claims import claims
from rfy.voters.config import (CLASSIFICATION, DISTRIBUTION, HEADS, REGRESSION, SCUT, SIMULATION, TRAIT_NAMES, VOTER,
                               Config)
from rfy.voters.cost import cost_parts
from rfy.voters.evaluate import pearson, raw_vote_curve, votes_equivalent
from rfy.voters.experiments import BIASED, CONTROL, run_experiment, run_simulation
from rfy.voters.heads import VoteModel, bin_centres, bin_index, expected_value
from rfy.voters.runs import condition_runs, curve_metrics, curve_of, summarise
from rfy.voters.simulate import (VoteData, Voters, cast_votes, choose_voters, cutpoints, draw_voters, expected_votes,
                                 ground_truth, identical_voters, latent_mean, render_photos, simulate,
                                 trait_covariance, vote_probabilities, zipf_activity)
from rfy.voters.train import (TrainedHead, head_metrics, make_model, make_optimiser, score_test_photos, train_head,
                              train_step, training_units)

SIMULATED = "simulated votes (2,000 training photos, 3-5 votes each)"

PAPER_NUMBERS = [
    PaperNumber("Photofeeler-D3: raw votes the network is worth (k*)", "photofeeler_voter_k_star", 10.0,
                "kalra2019photofeeler", "the paper's private data: no run of ours can pair with it; our "
                "simulated k* is in the reduced row below", higher_is_better=True, data="Photofeeler (private)",
                mode="full", decimals=1),
    PaperNumber("SCUT-FBP5500, 5 folds: voter model Pearson r", "scut_voter_r", None, "kalra2019photofeeler",
                "the paper reports no SCUT-FBP5500 number", higher_is_better=True, data="SCUT-FBP5500",
                mode="full", decimals=3),
    PaperNumber("SCUT-FBP5500, 5 folds: regression head Pearson r", "scut_regression_r", None,
                "kalra2019photofeeler", "the usual mean-score regression, same trunk", higher_is_better=True,
                data="SCUT-FBP5500", mode="full", decimals=3),
    PaperNumber("Simulation: voter model Pearson r with the truth", "voter_r", None, "kalra2019photofeeler",
                "reduced mode only; mean over 3 seeds", higher_is_better=True, data=SIMULATED, mode="reduced",
                decimals=3),
    PaperNumber("Simulation: regression head Pearson r with the truth", "regression_r", None,
                "kalra2019photofeeler", "reduced mode only; mean over 3 seeds", higher_is_better=True,
                data=SIMULATED, mode="reduced", decimals=3),
    PaperNumber("Simulation: raw votes the voter model is worth (k*)", "voter_k_star", None, "kalra2019photofeeler",
                "reduced mode only; mean over 3 seeds", higher_is_better=True, data=SIMULATED, mode="reduced",
                decimals=1),
]

def optional_packages(config: Config) -> list[tuple[str, str]]:
    """torchvision, for the pretrained trunk that extracts SCUT-FBP5500's features."""
    return [("torchvision", "the pretrained trunk comes from torchvision: pip install torchvision")] \
        if config.dataset == SCUT else []


CHAPTER = Chapter(
    "voters", 6, "Photofeeler-D3: modelling the voters", "06_voter_model",
    Config, run_experiment, claims, PAPER_NUMBERS, citation="kalra2019photofeeler",
    summary="modelling each voter beats regressing on noisy mean votes", cost_parts=cost_parts, optional_packages=optional_packages)


__all__ = [
    "CHAPTER",
    "Config", "PAPER_NUMBERS", "run_experiment", "claims", "HEADS", "REGRESSION", "CLASSIFICATION", "DISTRIBUTION",
    "VOTER", "SIMULATION", "SCUT", "TRAIT_NAMES", "BIASED", "CONTROL", "simulate", "VoteData", "Voters",
    "draw_voters", "identical_voters", "zipf_activity", "trait_covariance", "render_photos", "latent_mean",
    "cutpoints", "vote_probabilities", "expected_votes", "ground_truth", "cast_votes", "choose_voters",
    "VoteModel", "bin_index", "bin_centres", "expected_value", "train_head", "make_model", "training_units",
    "head_metrics", "TrainedHead", "pearson", "raw_vote_curve", "votes_equivalent", "curve_metrics", "curve_of",
    "condition_runs", "summarise", "run_simulation", "cost_parts", "make_optimiser", "train_step",
    "score_test_photos",
]
