"""What the Neural ODE chapter asserts, computed from the metrics of ``run_experiment`` alone.

Parameter counts are not claims: they are fixed by the architectures and cannot fail, so the
chapter states them (``parameter_facts``) and the tests check them against the reference code.
"""
from __future__ import annotations

from rfy.claims import Claim, at_least, at_most

#: Largest over smallest step count of the memory measurement (``Config.memory_steps``: 4 to 64).
MEMORY_STEP_RATIO = 16
#: Solver tolerance of the adjoint-versus-backprop gradient check (float64, dopri5).
GRADIENT_CHECK_TOL = 1e-8
GRADIENT_ERROR_THRESHOLD = 1e-4


def claims(metrics: dict[str, float]) -> list[Claim]:
    """The chapter's claims: adjoint memory and gradients, ODE-Net accuracy, latent ODE and CNF.

    A run of the paper's Table 2 part alone (``Config.table2_only``) measures none of them and makes no
    claim; any other run missing one of their metrics raises ``KeyError``.
    """
    if "table2_train_seconds" in metrics and "backprop_mb_at_max_steps" not in metrics:
        return []
    found = [
        at_least(
            "backprop-memory-grows", "Backprop memory, most over fewest solver steps (16× the steps)",
            metrics["backprop_mb_at_max_steps"] / metrics["backprop_mb_at_min_steps"], 8.0, unit="×", decimals=1,
            why="Backprop stores every step, so 16× the steps should give close to 16× the memory; half of "
                "that leaves room for the constant part (the input and the loss)."),
        at_most(
            "adjoint-memory-flat", "Adjoint memory, most over fewest solver steps (16× the steps)",
            metrics["adjoint_mb_at_max_steps"] / metrics["adjoint_mb_at_min_steps"], 1.1, unit="×", decimals=2,
            why="The adjoint keeps only the final state whatever the step count; 10% allows for "
                "bookkeeping tensors."),
        at_most(
            "adjoint-gradient-matches", "Adjoint against backprop gradient, relative difference",
            metrics["adjoint_gradient_relative_error"] * 1e6, GRADIENT_ERROR_THRESHOLD * 1e6, unit=" ppm",
            decimals=2,
            why="Both are float64 solves at tolerance 1e-8, so they may differ by the solver's error, "
                "amplified along the trajectory; 1e-4 (100 parts per million) is far above that and far "
                "below a wrong gradient (order 1)."),
        at_most(
            "odenet-close-to-resnet", "ODE-Net minus ResNet-6 test error (8×8 digits)",
            metrics["odenet_test_error_pct"] - metrics["resnet_test_error_pct"], 5.0, unit=" points",
            decimals=1,
            why="One of the 450 test digits is 0.22 points, and a few digits either way move with the seed "
                "(the robustness page shows the range); 5 points (22 digits) says 'comparable' with a margin, "
                "where the paper, at full scale, reports a tie."),
        at_least(
            "latent-ode-interpolates", "RNN over latent ODE interpolation RMSE",
            metrics["rnn_interpolation_rmse"] / metrics["latent_ode_interpolation_rmse"], 2.0, unit="×",
            decimals=1,
            why="The paper reports a clearly lower RMSE for the latent ODE; a factor of 2 is clear and far "
                "from a tie."),
        at_least(
            "latent-ode-extrapolates", "RNN over latent ODE extrapolation RMSE",
            metrics["rnn_extrapolation_rmse"] / metrics["latent_ode_extrapolation_rmse"], 1.5, unit="×",
            decimals=1,
            why="Extrapolating is harder for both models, so the ratio is lower and moves more with the seed "
                "than when interpolating; 1.5× still means a clearly lower error, not a tie."),
        at_least(
            "cnf-learns", "CNF held-out NLL before minus after training",
            metrics["cnf_initial_test_nll"] - metrics["cnf_final_test_nll"], 0.1, unit=" nats", decimals=2,
            why="The NLL is a mean over 1,000 held-out points whose log-densities spread by about a nat, so "
                "its standard error is about 0.03 nats; 0.1 is more than three of them."),
    ]
    return found


def parameter_facts(metrics: dict[str, float]) -> str:
    """The parameter counts as a stated fact (fixed by the architectures, so not a claim)."""
    odenet, resnet = metrics["odenet_params_m"], metrics["resnet_params_m"]
    return (f"ODE-Net: {odenet * 1e6:,.0f} parameters, ResNet-6: {resnet * 1e6:,.0f} "
            f"(the ODE-Net has {odenet / resnet:.2f} of the ResNet's)")
