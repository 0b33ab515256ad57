"""Settings of the RandWire chapter: the reduced preset (field defaults) and the paper's ``full`` one."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rfy.config import RunConfig, check_choice, check_positive
from rfy.errors import ConfigError
from rfy.randwire.graphs import GraphSpec, parse_generator

DATASETS = ("digits", "cifar-10")
MAX_REPEATS = 9  # training repeats of one graph (their seeds must stay below torch's 2**63 / 100_003)
BASELINE_KINDS = ("resnet",)  # besides graphs (the chain, WS(K, 0)): a FLOP-matched ResNet


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """Every knob of the chapter. Defaults: 8×8 digits, two random stages of 12 nodes, 4 epochs, CPU, under a minute.

    ``full()`` is the small regime of Xie et al. (2019) adapted to CIFAR-10's 32×32 images: N = 32
    nodes, C = 78, three random stages (C, 2C, 4C) after a stride-1 stem, a 1×1 convolution to 1280,
    ER(0.2), BA(5) and WS(4, 0.75) with three graph seeds each, a FLOP-matched ResNet baseline, SGD
    with momentum 0.9, learning rate 0.1, cosine schedule, weight decay 5e-5, label smoothing 0.1,
    100 epochs of batch 128. ``generators`` are drawn ``graph_seeds`` times each; ``baselines`` are
    trained once (graphs such as ``chain`` or ``WS(4, 0)``, or ``resnet``). The removal study takes
    the first ``removal_instances`` instances of each random generator. ``training_repeats`` trains graph 0 of
    each random generator that many more times from other seeds: the spread of one fixed graph over training
    seeds, against which the spread over graphs is measured (0 in full mode, where it would cost GPU hours).
    """

    full_preset: ClassVar[dict[str, Any]] = {
        "dataset": "cifar-10", "nodes": 32, "channels": 78, "stages": 3, "width": 1280,
        "generators": ("ER(0.2)", "BA(5)", "WS(4, 0.75)"), "graph_seeds": 3, "baselines": ("resnet",),
        "epochs": 100, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-5, "label_smoothing": 0.1,
        "dropout": 0.2, "mixed_precision": True, "removal_instances": 1, "removal_eval_images": 2000,
        "eval_every": 5, "training_repeats": 0,
    }

    dataset: str = "digits"
    nodes: int = 12
    channels: int = 16
    stages: int = 2
    width: int = 64
    generators: tuple[str, ...] = ("ER(0.2)", "BA(5)", "WS(4, 0.75)")
    graph_seeds: int = 3
    training_repeats: int = 1
    baselines: tuple[str, ...] = ("WS(4, 0)", "chain")
    epochs: int = 4
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    dropout: float = 0.0
    mixed_precision: bool = False
    removal_instances: int = 1
    removal_eval_images: int = 0  # 0: the whole test set
    eval_every: int = 0  # epochs between test evaluations during training (0: only at the end)

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        for field in ("nodes", "channels", "stages", "width", "graph_seeds", "epochs", "batch_size"):
            check_positive(field, getattr(self, field), integer=True)
        for field in ("removal_instances", "removal_eval_images", "eval_every", "training_repeats"):
            check_positive(field, getattr(self, field), integer=True, allow_zero=True)
        if self.training_repeats > MAX_REPEATS:
            raise ConfigError(f"training_repeats must be an integer from 0 to {MAX_REPEATS}, got {self.training_repeats!r}")
        if self.nodes < 2:
            raise ConfigError(f"nodes must be an integer >= 2, got {self.nodes!r}")
        if self.channels % 2:
            raise ConfigError(f"channels must be even (the stem has channels / 2), got {self.channels!r}")
        check_positive("lr", self.lr)
        for field in ("momentum", "weight_decay", "label_smoothing", "dropout"):
            check_positive(field, getattr(self, field), allow_zero=True)
        for field in ("momentum", "label_smoothing", "dropout"):
            if getattr(self, field) >= 1:
                raise ConfigError(f"{field} must be a number in [0, 1), got {getattr(self, field)!r}")
        if not isinstance(self.generators, tuple) or not isinstance(self.baselines, tuple):
            raise ConfigError("generators and baselines must be tuples of generator names such as ('WS(4, 0.75)',)")
        if not self.generators and not self.baselines:
            raise ConfigError("generators and baselines are both empty: there is nothing to train")
        for text in self.generators:
            parse_generator(text, self.nodes, "generators")
        for text in self.baselines:
            if text not in BASELINE_KINDS:
                parse_generator(text, self.nodes, "baselines")
        if not isinstance(self.mixed_precision, bool):
            raise ConfigError(f"mixed_precision must be True or False, got {self.mixed_precision!r}")

    @property
    def graph_specs(self) -> list[GraphSpec]:
        return [parse_generator(text, self.nodes) for text in self.generators]
