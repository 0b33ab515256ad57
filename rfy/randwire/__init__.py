"""Chapter 5: Exploring randomly wired neural networks for image recognition (Xie, Kirillov, Girshick & He,
ICCV 2019).

Hand-designed networks (ResNet, DenseNet) and neural architecture search both fix how layers are
wired: by hand, or by a controller that picks from a hand-designed menu. The paper instead defines a
*network generator*: a classical random-graph model (Erdős–Rényi, Barabási–Albert, Watts–Strogatz)
plus one fixed rule that turns any sampled graph into a network (orient edges by node index, every
node a weighted sum → ReLU → separable convolution → batch norm). Then it studies the *distribution*
of networks a generator produces: random instances are all competitive with hand-designed ones and
differ little among themselves. The package has:

* ``erdos_renyi``, ``barabasi_albert``, ``watts_strogatz``, ``chain``, ``to_dag``, ``DAG``, ``GraphSpec``,
  ``parse_generator``, ``stage_graphs``: the generators with the paper's node order, and the DAG mapping;
* ``aggregation_weights``, ``RandomStage``, ``RandWireNet``, ``removed``: the node operation, one stage
  computed level by level (a level of the DAG is one grouped convolution), the small regime, and
  node/edge removal without retraining;
* ``resnet``, ``flop_matched_resnet``, ``count_flops``: the hand-designed baseline at equal FLOPs;
* ``load_data``, ``train_network``, ``evaluate_accuracy``: data on the device and the training loop
  (SGD, cosine schedule, bf16 on CUDA, DDP under torchrun, checkpoints);
* ``run_study``, ``run_experiment``, ``claims``: generators × graph seeds, graph 0 retrained from other seeds,
  the baselines, the removal study.
"""
from __future__ import annotations

from rfy.contract import Chapter
from rfy.randwire.claims import claims
from rfy.randwire.config import DATASETS, Config
from rfy.randwire.cost import cost_parts
from rfy.randwire.experiments import (RESNET, Study, build_network, build_randwire, generator_slug, graph_seed,
                                      instances, network_key, network_list, removal_study, repeat_list,
                                      run_experiment, run_study, spearman, train_one, training_seed)
from rfy.randwire.graphs import (DAG, GraphSpec, barabasi_albert, chain, erdos_renyi, parse_generator, stage_graphs,
                                 to_dag, watts_strogatz)
from rfy.randwire.network import (RandomStage, RandWireNet, aggregation_weights, count_flops, flop_matched_resnet,
                                  removed, resnet, stage_widths, triplet)
from rfy.randwire.train import (DATASET_LOADERS, ImageData, TrainResult, cosine_lr, load_data, evaluate_accuracy,
                                train_network)
from rfy.tables import PaperNumber

PAPER_NUMBERS = [
    PaperNumber("ImageNet, small regime: RandWire-WS(4, 0.75) top-1 accuracy (%)", "imagenet_ws-4-0.75_accuracy_mean",
                74.7, "xie2019exploring", "mean of 5 random instances (± 0.25); 583M FLOPs, 5.6M parameters; our "
                "full mode trains on CIFAR-10 instead, so no run of ours pairs with this row",
                higher_is_better=True, data="ImageNet", mode="full", decimals=1),
    PaperNumber("CIFAR-10: RandWire-WS(4, 0.75) test accuracy (%), mean of 3 graphs",
                "cifar-10_ws-4-0.75_accuracy_mean", None, "xie2019exploring",
                "full mode; the paper has no CIFAR-10 number (re-implementations report 93.6-94.2%)",
                higher_is_better=True, data="CIFAR-10", mode="full", decimals=1),
    PaperNumber("CIFAR-10: FLOP-matched ResNet test accuracy (%)", "cifar-10_resnet_accuracy_mean", None,
                "xie2019exploring", "full mode; our hand-designed baseline", higher_is_better=True,
                data="CIFAR-10", mode="full", decimals=1),
    PaperNumber("Digits: RandWire-WS(4, 0.75) test accuracy (%), mean of 3 graphs", "digits_ws-4-0.75_accuracy_mean",
                None, "xie2019exploring", "reduced mode only", higher_is_better=True, data="8×8 digits",
                mode="reduced", decimals=1),
    PaperNumber("Digits: chain baseline test accuracy (%)", "digits_chain_accuracy_mean", None, "xie2019exploring",
                "reduced mode only", higher_is_better=True, data="8×8 digits", mode="reduced", decimals=1),
]


CHAPTER = Chapter(
    "randwire", 5, "Randomly wired neural networks", "05_randwire",
    Config, run_experiment, claims, PAPER_NUMBERS, citation="xie2019exploring",
    summary="random graph generators compete with hand-designed wiring", study=run_study, cost_parts=cost_parts)


__all__ = [
    "CHAPTER", "cost_parts",
    "Config", "DATASETS", "PAPER_NUMBERS", "claims", "run_experiment", "run_study", "Study", "train_one",
    "removal_study", "build_network", "build_randwire", "network_list", "network_key", "generator_slug",
    "graph_seed", "training_seed", "repeat_list", "instances", "spearman", "RESNET",
    "DAG", "GraphSpec", "erdos_renyi", "barabasi_albert", "watts_strogatz", "chain", "to_dag", "parse_generator",
    "stage_graphs", "aggregation_weights", "RandomStage", "RandWireNet", "removed", "triplet", "stage_widths",
    "resnet", "flop_matched_resnet", "count_flops", "ImageData", "DATASET_LOADERS", "load_data", "TrainResult",
    "train_network", "evaluate_accuracy", "cosine_lr",
]
