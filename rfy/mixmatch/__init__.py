"""Chapter 7: MixMatch, a holistic approach to semi-supervised learning (Berthelot, Carlini, Goodfellow,
Papernot, Oliver & Raffel, NeurIPS 2019).

With a few labelled images and many unlabelled ones, MixMatch guesses a label for each unlabelled
image (the mean prediction over K augmentations), sharpens the guess, MixUps labelled and unlabelled
examples together, and trains on cross-entropy plus a squared-error consistency term. The package has:

* ``sharpen``, ``guess_labels``, ``mixup``, ``mixmatch_batch``, ``mixmatch_loss``, ``linear_rampup``,
  ``interleave_offsets``, ``interleave_order``: the algorithm as pure functions on tensors;
* ``small_cnn`` and ``wide_resnet`` (WRN-28-2, 1.47M parameters): the classifiers;
* ``load_split``: labelled / unlabelled / test splits of digits, CIFAR-10 or SVHN, drawn by seed;
* ``Trainer`` and ``train``: the training loop on the device (EMA, decoupled weight decay, the official
  batch-norm handling, mixed precision, DistributedDataParallel under torchrun, checkpoints);
* ``compare_methods`` and ``run_experiment``: supervised against MixMatch and its ablations, each run
  reported by the paper's statistic (``median_of_last``: the median error of the last 20 evaluations);
* ``claims``: what the chapter asserts about those metrics;
* ``benchmark``: steps/s and images/s of the paper's setting, with the precision and memory format used
  (``python -m rfy bench mixmatch``); ``bf16_is_fast``: where mixed precision applies;
* ``cost_parts``: what each preset costs, step by step at its true size (``python -m rfy estimate``).
"""
from rfy.contract import Chapter
from rfy.mixmatch.algorithm import (MixedBatch, guess_labels, interleave_offsets, interleave_order, linear_rampup,
                                    mixmatch_batch, mixmatch_loss, mixup, sharpen)
from rfy.mixmatch.bench import benchmark, benchmark_trainer, random_cifar_like
from rfy.mixmatch.claims import claims
from rfy.mixmatch.config import METHODS, MIXMATCH, NO_MIXUP, NO_SHARPENING, SUPERVISED, Config
from rfy.mixmatch.cost import cost_parts
from rfy.mixmatch.data import SemiSupervisedData, labelled_indices, load_split, make_split
from rfy.mixmatch.experiments import (LAST_EVALUATIONS, PAPER_STATISTIC, Comparison, compare_methods,
                                      comparison_metrics, median_of_last, metric_prefix, run_experiment, run_metrics,
                                      train_run)
from rfy.mixmatch.models import make_classifier, small_cnn, wide_resnet
from rfy.mixmatch.train import (InterleavedForward, Trainer, TrainResult, WeightAverage, bf16_is_fast,
                                frozen_running_stats, train)
from rfy.tables import PaperNumber

PAPER_NUMBERS = [
    PaperNumber("MixMatch test error (%), 250 labels", "cifar-10_250_mixmatch_error_median_last", 11.08,
                "berthelot2019mixmatch", "WRN-28-2; median of the last 20 of 1024 epochs; the paper's ± 0.87 is "
                "over 5 label splits", data="CIFAR-10", mode="full", decimals=2),
    PaperNumber("MixMatch test error (%), 4000 labels", "cifar-10_4000_mixmatch_error_median_last", 6.24,
                "berthelot2019mixmatch", "WRN-28-2; median of the last 20 of 1024 epochs; ± 0.06 over 5 splits",
                data="CIFAR-10", mode="full", decimals=2),
    PaperNumber("Supervised test error (%), 50 labels", "digits_50_supervised_error_median_last", None,
                "berthelot2019mixmatch", "our reduced setting (the paper has no digits experiment); median of the "
                "last 20 evaluations, mean over 3 seeds", data="8×8 digits", mode="reduced", decimals=1),
    PaperNumber("MixMatch test error (%), 50 labels", "digits_50_mixmatch_error_median_last", None,
                "berthelot2019mixmatch", "our reduced setting (the paper has no digits experiment); median of the "
                "last 20 evaluations, mean over 3 seeds", data="8×8 digits", mode="reduced", decimals=1),
]

CHAPTER = Chapter(
    "mixmatch", 7, "MixMatch", "07_mixmatch",
    Config, run_experiment, claims, PAPER_NUMBERS, citation="berthelot2019mixmatch",
    summary="guessing, sharpening and mixing labels makes few labels go far", study=compare_methods,
    benchmark=benchmark, cost_parts=cost_parts)


__all__ = [
    "CHAPTER",
    "Config", "PAPER_NUMBERS", "run_experiment", "claims", "median_of_last", "LAST_EVALUATIONS", "PAPER_STATISTIC",
    "interleave_offsets", "METHODS", "SUPERVISED", "MIXMATCH", "NO_SHARPENING", "NO_MIXUP",
    "sharpen", "guess_labels", "mixup", "mixmatch_batch", "mixmatch_loss", "linear_rampup", "interleave_order",
    "MixedBatch", "small_cnn", "wide_resnet", "make_classifier", "SemiSupervisedData", "labelled_indices",
    "make_split", "load_split", "Trainer", "TrainResult", "WeightAverage", "InterleavedForward",
    "frozen_running_stats", "train", "Comparison", "compare_methods", "comparison_metrics", "metric_prefix",
    "run_metrics", "train_run", "benchmark", "benchmark_trainer", "random_cifar_like", "bf16_is_fast", "cost_parts",
]
