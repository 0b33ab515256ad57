"""Settings of the Neural ODE chapter: the reduced preset (field defaults) and the paper's ``full`` one."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rfy.config import RunConfig, check_choice, check_positive
from rfy.errors import ConfigError
from rfy.neural_ode.odeblock import SOLVERS

DATASETS = ("digits", "mnist")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "step")
SPIRAL_TIMES, SPIRAL_WINDOW = 75, 50  # spirals are observed among the first 50 of 75 grid times
#: The paper's Table 2 (§5.1): observed among 100 equally spaced times, predicted at the next 100.
TABLE2_WINDOW, TABLE2_TIMES = 100, 200
#: The fields of the Table 2 part. They were added after the reduced records were made and are written to a
#: record only when the part runs (``table2_observed`` not empty): a config without it reads as before.
TABLE2_FIELDS = ("table2_observed", "table2_only", "table2_spirals", "table2_iters", "table2_noise")


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """Every knob of the chapter. Defaults are the reduced mode (CPU, sklearn digits, ~1 minute)."""

    full_preset: ClassVar[dict[str, Any]] = {
        "dataset": "mnist", "channels": 64, "solver": "dopri5", "tol": 1e-3, "adjoint": True,
        "epochs": 160, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "lr_schedule": "step",
        "lr_milestones": (60, 100, 140),
        "augment": True, "cnf_width": 64, "cnf_iters": 2000, "cnf_batch": 512, "cnf_solver": "dopri5",
        "cnf_lr": 1e-3, "n_spirals": 1000, "latent_iters": 3000, "latent_solver": "dopri5",
        "table2_observed": (30, 50, 100),
    }

    # ODE-Net against ResNets on images
    dataset: str = "digits"
    channels: int = 32
    resnet_blocks: int = 6
    small_resnet_blocks: int = 1
    solver: str = "rk4"
    solver_steps: int = 4
    tol: float = 1e-3
    adjoint: bool = False
    epochs: int = 12
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-2
    lr_schedule: str = "cosine"
    lr_milestones: tuple[int, ...] = ()
    augment: bool = False
    nfe_tolerances: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)
    memory_steps: tuple[int, ...] = (4, 8, 16, 32, 64)
    # continuous normalizing flow on two circles
    cnf_width: int = 32
    cnf_iters: int = 200
    cnf_batch: int = 256
    cnf_solver: str = "rk4"
    cnf_steps: int = 6
    cnf_tol: float = 1e-5
    cnf_lr: float = 2e-2
    # latent ODE against an RNN on irregularly sampled spirals
    n_spirals: int = 200
    n_observed: int = 30
    latent_dim: int = 4
    latent_iters: int = 300
    latent_lr: float = 1e-2
    latent_solver: str = "rk4"
    # the paper's Table 2: latent ODE against an RNN on its spiral protocol (latent_dim, latent_lr and
    # latent_solver shared with the part above); off while table2_observed is empty
    table2_observed: tuple[int, ...] = ()
    table2_only: bool = False
    table2_spirals: int = 1000
    table2_iters: int = 2000
    table2_noise: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        """Every field, less the Table 2 fields (``TABLE2_FIELDS``) when that part does not run."""
        data = super().to_dict()
        if not self.table2_observed:
            for name in TABLE2_FIELDS:
                del data[name]
        return data

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for field in ("solver", "cnf_solver", "latent_solver"):
            check_choice(field, getattr(self, field), SOLVERS)
        for field in ("channels", "resnet_blocks", "small_resnet_blocks", "solver_steps", "epochs",
                      "batch_size", "cnf_width", "cnf_iters", "cnf_batch", "cnf_steps", "n_spirals",
                      "n_observed", "latent_dim", "latent_iters", "table2_spirals", "table2_iters"):
            check_positive(field, getattr(self, field), integer=True)
        for field in ("tol", "lr", "cnf_tol", "cnf_lr", "latent_lr", "table2_noise"):
            check_positive(field, getattr(self, field))
        check_choice("adjoint", self.adjoint, (True, False))
        check_choice("augment", self.augment, (True, False))
        for field in ("lr_milestones", "memory_steps"):
            for value in getattr(self, field):
                check_positive(f"{field} entries", value, integer=True)
        if self.n_observed > SPIRAL_WINDOW:
            raise ConfigError(f"n_observed must be between 1 and {SPIRAL_WINDOW} (the observation window), "
                              f"got {self.n_observed}")
        if len(set(self.table2_observed)) != len(self.table2_observed) or not all(
                0 < count <= TABLE2_WINDOW for count in self.table2_observed):
            raise ConfigError(f"table2_observed must hold distinct observation counts between 1 and {TABLE2_WINDOW} "
                              f"(the paper's are (30, 50, 100)), or be () to leave the Table 2 part out, "
                              f"got {self.table2_observed!r}")
        if self.table2_only and not self.table2_observed:
            raise ConfigError("table2_only=True runs only the Table 2 part, so table2_observed must not be empty, "
                              "e.g. (30, 50, 100)")
