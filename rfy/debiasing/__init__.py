"""Chapter 3: Uncovering and mitigating algorithmic bias through learned latent structure
(Amini, Soleimany, Schwarting, Bhatia & Rus, AIES 2019).

A classifier trained on data where some kinds of positives are rare is worse on exactly those.
DB-VAE shares the classifier's encoder with a VAE trained on the positives, so its latent space
learns what the positives look like without any labels for the rare kinds; each epoch, positives
whose latent code is rare are sampled more often. The package has:

* ``make_dbvae`` and ``debiasing_loss``: the model and its objective;
* ``sampling_weights``, ``effective_sample_size`` and ``resampled_order``: adaptive resampling
  from latent histograms, and how many examples it effectively draws from;
* ``make_biased_digits``: a no-download dataset with a known rare subgroup and a balanced test set;
* ``alpha_sweep``, ``run_sweep`` and ``run_experiment``: the baseline against DB-VAE for several α;
* ``claims``: what the chapter asserts about the sweep's metrics.
"""
from rfy.contract import Chapter
from rfy.debiasing.claims import CLAIM_ALPHA, claims
from rfy.debiasing.config import Config
from rfy.debiasing.cost import cost_parts
from rfy.debiasing.data import GROUP_NAMES, RARE_GROUPS, BiasedData, make_biased_digits
from rfy.debiasing.experiments import (ESS_WARNING_FRACTION, NO_RESAMPLING, STANDARD, alpha_sweep, evaluate,
                                       load_data, method_name, metric_prefix, positive_latent_means,
                                       resampling_summary, run_experiment, run_sweep, sweep_metrics, train_model,
                                       warn_if_concentrated)
from rfy.debiasing.losses import classifier_loss, debiasing_loss, kl_to_standard_normal, reconstruction_error
from rfy.debiasing.model import DBVAE, make_dbvae
from rfy.debiasing.resampling import effective_sample_size, histogram_mass, resampled_order, sampling_weights
from rfy.tables import PaperNumber

CELEBA = "CelebA test split, balanced male/female × pale/not pale"
DIGITS = "8×8 digits, 1% dark ink"

PAPER_NUMBERS = [
    PaperNumber("Standard classifier: rare-group accuracy (%)", "standard_rare_accuracy", None,
                "amini2019uncovering", "full: the two rarest CelebA groups; the paper's PPB has no public copy",
                higher_is_better=True, data=CELEBA, mode="full", decimals=1),
    PaperNumber("DB-VAE α = 0.1: rare-group accuracy (%)", "dbvae_alpha_0.1_rare_accuracy", None,
                "amini2019uncovering", higher_is_better=True, data=CELEBA, mode="full", decimals=1),
    PaperNumber("Standard classifier: accuracy variance across groups (%²)", "standard_variance", None,
                "amini2019uncovering", data=CELEBA, mode="full", decimals=1),
    PaperNumber("DB-VAE α = 0.1: accuracy variance across groups (%²)", "dbvae_alpha_0.1_variance", None,
                "amini2019uncovering", data=CELEBA, mode="full", decimals=1),
    PaperNumber("Standard classifier: rare-group accuracy (%)", "standard_rare_accuracy", None,
                "amini2019uncovering", "the two dark-ink groups", higher_is_better=True, data=DIGITS,
                mode="reduced", decimals=1),
    PaperNumber("DB-VAE α = 0.1: rare-group accuracy (%)", "dbvae_alpha_0.1_rare_accuracy", None,
                "amini2019uncovering", higher_is_better=True, data=DIGITS, mode="reduced", decimals=1),
    PaperNumber("Standard classifier: accuracy variance across groups (%²)", "standard_variance", None,
                "amini2019uncovering", data=DIGITS, mode="reduced", decimals=1),
    PaperNumber("DB-VAE α = 0.1: accuracy variance across groups (%²)", "dbvae_alpha_0.1_variance", None,
                "amini2019uncovering", data=DIGITS, mode="reduced", decimals=1),
]

#: The paper's Table 1 on PPB (mean accuracy over the four groups, and their variance), for the
#: page to print as the paper's table: no run of ours is on PPB, so it pairs with none of them.
PAPER_TABLE_PPB = (
    ("no debiasing", 95.13, 28.84), ("α = 0.1", 95.84, 25.43), ("α = 0.05", 96.47, 18.08),
    ("α = 0.01", 97.13, 9.49), ("α = 0.001", 97.36, 9.43),
)

CHAPTER = Chapter(
    "debiasing", 3, "Debiasing with learned latent structure (DB-VAE)", "03_debiasing",
    Config, run_experiment, claims, PAPER_NUMBERS, citation="amini2019uncovering",
    summary="resampling by latent density lifts accuracy on rare groups", study=run_sweep, cost_parts=cost_parts)


__all__ = [
    "CHAPTER", "cost_parts",
    "Config", "PAPER_NUMBERS", "PAPER_TABLE_PPB", "claims", "CLAIM_ALPHA", "run_experiment", "run_sweep", "alpha_sweep",
    "train_model", "evaluate", "load_data", "method_name", "metric_prefix", "positive_latent_means",
    "resampling_summary", "warn_if_concentrated", "ESS_WARNING_FRACTION", "sweep_metrics", "STANDARD", "NO_RESAMPLING", "DBVAE", "make_dbvae",
    "debiasing_loss", "classifier_loss", "kl_to_standard_normal", "reconstruction_error", "sampling_weights",
    "effective_sample_size", "histogram_mass", "resampled_order", "make_biased_digits", "BiasedData",
    "GROUP_NAMES", "RARE_GROUPS",
]
