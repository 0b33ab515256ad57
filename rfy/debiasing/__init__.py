"""Chapter 3: Uncovering and mitigating algorithmic bias through learned latent structure
(Amini, Soleimany, Schwarting, Bhatia & Rus, AIES 2019).

A classifier trained on data where some kinds of positives are rare is worse on exactly those.
DB-VAE shares the classifier's encoder with a VAE trained on the positives, so its latent space
learns what the positives look like without any labels for the rare kinds; each epoch, positives
whose latent code is rare are sampled more often. The package has:

* ``make_dbvae`` and ``debiasing_loss``: the model and its objective;
* ``sampling_weights`` and ``resampled_order``: adaptive resampling from latent histograms;
* ``make_biased_digits``: a no-download dataset with a known rare subgroup and a balanced test set;
* ``alpha_sweep`` and ``run_experiment``: the baseline against DB-VAE for several α.
"""
from rfy.debiasing.config import Config
from rfy.debiasing.data import GROUP_NAMES, RARE_GROUPS, BiasedData, make_biased_digits
from rfy.debiasing.experiments import (NO_RESAMPLING, STANDARD, alpha_sweep, evaluate, load_data, method_name,
                                       positive_latent_means, run_experiment, sweep_metrics, train_model)
from rfy.debiasing.losses import classifier_loss, debiasing_loss, kl_to_standard_normal, reconstruction_error
from rfy.debiasing.model import DBVAE, make_dbvae
from rfy.debiasing.resampling import histogram_mass, resampled_order, sampling_weights
from rfy.results import PaperNumber

PAPER_NUMBERS = [
    PaperNumber("Standard classifier: accuracy variance across groups", "standard_variance", None,
                "amini2019uncovering", "paper: variance falls as α decreases; its table is not verified here"),
    PaperNumber("DB-VAE α = 0.1: accuracy variance across groups", "dbvae_alpha_0.1_variance", None,
                "amini2019uncovering"),
    PaperNumber("Standard classifier: rare-group accuracy (%)", "standard_rare_accuracy", None,
                "amini2019uncovering", "reduced: dark-ink digits; full: the two rarest CelebA groups"),
    PaperNumber("DB-VAE α = 0.1: rare-group accuracy (%)", "dbvae_alpha_0.1_rare_accuracy", None,
                "amini2019uncovering"),
]

__all__ = [
    "Config", "PAPER_NUMBERS", "run_experiment", "alpha_sweep", "train_model", "evaluate", "load_data",
    "method_name", "positive_latent_means", "sweep_metrics", "STANDARD", "NO_RESAMPLING", "DBVAE", "make_dbvae",
    "debiasing_loss", "classifier_loss", "kl_to_standard_normal", "reconstruction_error", "sampling_weights",
    "histogram_mass", "resampled_order", "make_biased_digits", "BiasedData", "GROUP_NAMES", "RARE_GROUPS",
]
