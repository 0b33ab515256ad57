"""Properties of the Neural ODE chapter's models, on tiny inputs."""
import math

import pytest
import torch
from torch import nn

from rfy.errors import ConfigError
from rfy.checkpoint import RunState
from rfy.neural_ode import (CNF, PAPER_NUMBERS, Config, ConvDynamics, LatentODE, MLPDynamics, ODEBlock,
                            ResidualBlock, RNNBaseline, claims, count_parameters, euler_path, exact_divergence,
                            gradient_differences, gradient_relative_error, held_out_rmse, integrate, make_odenet,
                            make_resnet, make_spirals, memory_versus_steps, ode_block_of, parameter_facts,
                            run_experiment)
from rfy.neural_ode.claims import GRADIENT_ERROR_THRESHOLD
from rfy.neural_ode.experiments import nfe_versus_tolerance

#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = dict(epochs=1, channels=4, solver_steps=1, nfe_tolerances=(1e-1,), memory_steps=(1, 2),
                         cnf_width=4, cnf_iters=2, cnf_batch=8, cnf_steps=1, n_spirals=4, latent_iters=2,
                         n_observed=5)


class Linear(nn.Module):
    """``f(t, z) = A z``: dynamics whose flow and density are known in closed form."""

    def __init__(self, matrix):
        super().__init__()
        self.matrix = nn.Parameter(matrix)

    def forward(self, t, z):
        return z @ self.matrix.T


def test_ode_block_solves_exponential_growth():
    block = ODEBlock(Linear(torch.eye(2)), solver="dopri5", tol=1e-7)
    h0 = torch.tensor([[1.0, -2.0]])
    assert torch.allclose(block(h0), h0 * math.e, rtol=1e-5)
    assert block.nfe > 0
    block.reset_nfe()
    assert block.nfe == 0


def test_odenet_classifier_shapes_and_gradients():
    model = make_odenet(1, 8, 10, downsample=False, solver="rk4", steps=2)
    out = model(torch.rand(3, 1, 8, 8))
    assert out.shape == (3, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_adjoint_gradients_equal_backprop_gradients():
    torch.manual_seed(0)
    error = gradient_relative_error(MLPDynamics(3, 16).double(), torch.randn(8, 3, dtype=torch.float64))
    assert error <= 1e-4


def test_nfe_rises_as_tolerance_falls():
    torch.manual_seed(0)
    model = make_odenet(1, 4, 10, downsample=False)
    rows = nfe_versus_tolerance(model, torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long),
                                (1e-1, 1e-3, 1e-5, 1e-7))
    nfes = [row["nfe"] for row in rows]
    assert nfes == sorted(nfes) and nfes[-1] > nfes[0]
    assert ode_block_of(model).solver == "dopri5"  # restored to what it was


def test_adjoint_memory_is_flat_while_backprop_grows():
    torch.manual_seed(0)
    rows = memory_versus_steps(ConvDynamics(4), torch.randn(2, 4, 6, 6), (2, 4, 8))
    backprop = [row["backprop_mb"] for row in rows]
    adjoint = [row["adjoint_mb"] for row in rows]
    assert backprop[2] > 3 * backprop[0]
    assert max(adjoint) == min(adjoint) and adjoint[0] < backprop[0] / 4


def test_paper_sized_mnist_models_have_the_reference_codes_parameter_counts():
    config = Config.full()
    odenet = make_odenet(1, config.channels, 10, downsample=True)
    resnet = make_resnet(1, config.channels, 10, downsample=True, blocks=config.resnet_blocks)
    # torchdiffeq's examples/odenet_mnist.py (conv downsampling): 208,266 and 576,778 parameters,
    # which the paper rounds to 0.22M and 0.60M
    assert count_parameters(odenet) == 208_266
    assert count_parameters(resnet) == 576_778
    assert odenet(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_residual_blocks_have_no_conv_biases_and_the_reduced_counts():
    block = ResidualBlock(8)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and all(conv.bias is None for conv in convs)
    assert count_parameters(make_resnet(1, 32, 10, downsample=False, blocks=6)) == 112_074
    assert count_parameters(make_resnet(1, 32, 10, downsample=False, blocks=1)) == 19_274
    assert count_parameters(make_odenet(1, 32, 10, downsample=False)) == 19_978


def passing_metrics():
    return {"backprop_mb_at_max_steps": 460.0, "backprop_mb_at_min_steps": 29.0, "adjoint_mb_at_max_steps": 0.5,
            "adjoint_mb_at_min_steps": 0.5, "adjoint_gradient_relative_error": 1e-6,
            "odenet_test_error_pct": 2.0, "resnet_test_error_pct": 0.4, "odenet_params_m": 0.019978,
            "resnet_params_m": 0.112074, "rnn_interpolation_rmse": 1.0, "latent_ode_interpolation_rmse": 0.1,
            "rnn_extrapolation_rmse": 1.6, "latent_ode_extrapolation_rmse": 0.3, "cnf_initial_test_nll": 3.2,
            "cnf_final_test_nll": 2.6}


def test_claims_hold_on_good_metrics_and_name_each_failure():
    found = claims(passing_metrics())
    assert [c.key for c in found] == ["backprop-memory-grows", "adjoint-memory-flat", "adjoint-gradient-matches",
                                      "odenet-close-to-resnet", "latent-ode-interpolates",
                                      "latent-ode-extrapolates", "cnf-learns"]
    assert all(c.holds and c.why and c.statement for c in found)
    bad = {**passing_metrics(), "adjoint_gradient_relative_error": 0.3, "odenet_test_error_pct": 6.0,
           "rnn_extrapolation_rmse": 0.3, "cnf_final_test_nll": 3.15, "adjoint_mb_at_max_steps": 8.0}
    failing = {c.key for c in claims(bad) if not c.holds}
    assert failing == {"adjoint-gradient-matches", "odenet-close-to-resnet", "latent-ode-extrapolates",
                       "cnf-learns", "adjoint-memory-flat"}
    # the parameter counts are a stated fact, not a claim
    assert "parameter" not in " ".join(c.key for c in found)
    assert parameter_facts(passing_metrics()).startswith("ODE-Net: 19,978 parameters, ResNet-6: 112,074")


def test_gradient_differences_report_the_measured_numbers():
    torch.manual_seed(0)
    found = gradient_differences(MLPDynamics(3, 16).double(), torch.randn(8, 3, dtype=torch.float64))
    assert set(found) == {"relative", "max_abs", "max_gradient"}
    assert 0 < found["max_abs"] < 1e-4 * found["max_gradient"] and found["relative"] < 1e-4
    # a loose solver tolerance gives a disagreement above the chapter's threshold: the check can fail
    torch.manual_seed(0)
    loose = gradient_differences(MLPDynamics(3, 16).double(), torch.randn(8, 3, dtype=torch.float64), tol=1e-2)
    assert loose["relative"] > GRADIENT_ERROR_THRESHOLD > found["relative"]


def test_paper_numbers_pair_only_numbers_on_the_same_data():
    for number in PAPER_NUMBERS:
        assert number.mode in ("full", "reduced") and number.data
        assert (number.paper_value is None) == (number.mode == "reduced"), number.quantity
    assert {n.data for n in PAPER_NUMBERS if n.mode == "full"} == {"MNIST"}


def test_run_experiment_end_to_end_gives_every_claims_metric(tmp_path, monkeypatch):
    import rfy.neural_ode.experiments as experiments

    X, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 10
    monkeypatch.setattr(experiments, "load_image_data", lambda config: experiments.ImageData(X, y, X[:20], y[:20]))
    config = Config(epochs=1, channels=4, solver_steps=1, nfe_tolerances=(1e-1,), memory_steps=(1, 2),
                    cnf_width=4, cnf_iters=2, cnf_batch=8, cnf_steps=1, n_spirals=4, latent_iters=2,
                    n_observed=5)
    metrics = run_experiment(config, RunState(tmp_path / "run", resume=False))
    found = claims(metrics)
    assert len(found) == 7 and all(math.isfinite(c.measured) for c in found)
    assert metrics["adjoint_gradient_max_abs_difference"] < 1e-3 * metrics["backprop_gradient_max_abs"]
    assert metrics["odenet_params_m"] > 0
    assert {n.metric for n in PAPER_NUMBERS} <= set(metrics)


def test_euler_path_approaches_the_ode_solution():
    dynamics = Linear(torch.tensor([[0.0, -1.0], [1.0, 0.0]]))
    h0 = torch.tensor([[1.0, 0.0]])
    exact = integrate(dynamics, h0, torch.tensor([0.0, 1.0]), tol=1e-8)[-1]
    with torch.no_grad():
        errors = [float((euler_path(dynamics, h0, n)[-1] - exact).norm()) for n in (2, 8, 32)]
    assert errors[0] > errors[1] > errors[2]
    assert euler_path(dynamics, h0, 4).shape == (5, 1, 2)


def test_exact_divergence_is_the_trace_of_the_jacobian():
    matrix = torch.tensor([[0.5, 2.0], [-1.0, -1.5]])
    z = torch.randn(5, 2, requires_grad=True)
    divergence = exact_divergence(z @ matrix.T, z, create_graph=False)
    assert torch.allclose(divergence, torch.full((5,), -1.0))


def test_cnf_log_density_matches_the_analytic_value_for_linear_dynamics():
    """With dz/dt = A z, x = e^A z0, so log p(x) = log N(e^{-A} x; 0, I) − tr A."""
    matrix = torch.tensor([[0.3, -0.8], [0.5, -0.1]], dtype=torch.float64)
    flow = CNF(Linear(matrix), solver="dopri5", tol=1e-9)
    x = torch.randn(6, 2, dtype=torch.float64)
    z0 = x @ torch.linalg.matrix_exp(-matrix).T
    analytic = -0.5 * z0.square().sum(1) - math.log(2 * math.pi) - torch.trace(matrix)
    assert torch.allclose(flow.log_prob(x), analytic, atol=1e-6)
    samples = flow.sample(4)
    assert samples.shape == (4, 2)


def test_cnf_training_step_lowers_nll_and_gets_gradients():
    torch.manual_seed(0)
    flow = CNF(MLPDynamics(2, 16), solver="rk4", steps=4)
    x = torch.randn(64, 2) * 0.3 + 1.0
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = -flow.log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1


def test_spirals_observe_sorted_points_inside_the_window():
    data = make_spirals(5, n_times=40, window=20, n_observed=7, seed=3)
    assert data.clean.shape == (5, 40, 2) and data.observed.shape == (5, 7)
    assert bool((data.observed < 20).all()) and bool((data.observed.diff(dim=1) > 0).all())
    assert torch.equal(make_spirals(5, n_times=40, window=20, n_observed=7, seed=3).noisy, data.noisy)
    values, times = data.observations()
    assert values.shape == (5, 7, 2) and times.shape == (5, 7)
    with pytest.raises(ValueError, match="n_observed"):
        make_spirals(2, window=10, n_observed=11)


def test_held_out_rmse_is_zero_for_the_truth_and_splits_the_points():
    data = make_spirals(4, n_times=30, window=20, n_observed=5)
    perfect = held_out_rmse(data.clean, data)
    assert perfect == {"interpolation_rmse": 0.0, "extrapolation_rmse": 0.0}
    shifted = data.clean.clone()
    shifted[:, 20:] += torch.tensor([0.3, 0.4])
    assert held_out_rmse(shifted, data) == pytest.approx({"interpolation_rmse": 0.0, "extrapolation_rmse": 0.5})


@pytest.mark.parametrize("model", [LatentODE(latent_dim=3), RNNBaseline(hidden=6)])
def test_sequence_models_predict_on_the_grid_and_train(model):
    data = make_spirals(6, n_times=20, window=10, n_observed=4)
    values, times = data.observations()
    loss = model.loss(values, times, data.observed, data.times[:10])
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    prediction = model(values, times, data.times)
    prediction = prediction[0] if isinstance(prediction, tuple) else prediction
    assert prediction.shape == (6, 20, 2)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="solver must be one of"):
        Config(solver="leapfrog")
    with pytest.raises(ConfigError, match="dataset"):
        Config(dataset="imagenet")
    with pytest.raises(ConfigError, match="n_observed"):
        Config(n_observed=80)
    with pytest.raises(ValueError, match="solver"):
        ODEBlock(ConvDynamics(2), solver="rk45")
    assert Config.full().dataset == "mnist" and Config.reduced().dataset == "digits"


def test_latent_models_interrupted_after_the_first_resume_to_the_same_rmse(tmp_path, monkeypatch):
    """The sequence models checkpoint after each one finishes: a disconnect after the latent ODE's checkpoint,
    then a resume, trains only the RNNs and gives the RMSE of an uninterrupted run."""
    import rfy.checkpoint as checkpoint
    import rfy.neural_ode.experiments as experiments

    config = Config(latent_iters=2, n_spirals=8, latent_dim=2)
    straight = experiments.train_latent_models(config, tmp_path / "a.pt")

    def save_then_disconnect(path, state):
        real_save(path, state)
        raise KeyboardInterrupt("simulated disconnect")
    real_save = checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_disconnect)
    with pytest.raises(KeyboardInterrupt):
        experiments.train_latent_models(config, tmp_path / "b.pt")
    monkeypatch.undo()
    trained = []
    real_step = experiments.sequence_step
    monkeypatch.setattr(experiments, "sequence_step", lambda model, *rest: trained.append(type(model).__name__)
                        or real_step(model, *rest))
    resumed = experiments.train_latent_models(config, tmp_path / "b.pt")
    assert "LatentODE" not in trained and trained
    assert resumed.rmse == straight.rmse and resumed.loss_history == straight.loss_history


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Two epochs in one go equal one epoch, a disconnect right after its checkpoint, and a resume."""
    import rfy.checkpoint as checkpoint
    import rfy.neural_ode.experiments as experiments
    from rfy.runtime import seed_everything

    X, y = torch.rand(96, 1, 8, 8), torch.randint(0, 10, (96,))
    data = experiments.ImageData(X, y, X[:16], y[:16])
    config = Config(epochs=2, channels=4, batch_size=32)
    fresh_model = lambda: experiments.build_classifier("resnet", config, 1, blocks=1)

    seed_everything(0)
    straight = experiments.train_classifier("a", fresh_model(), data, config, tmp_path / "a.pt").model

    def save_then_disconnect(path, state):
        real_save(path, state)
        raise KeyboardInterrupt("simulated disconnect")
    real_save = checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_disconnect)
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):
        experiments.train_classifier("b", fresh_model(), data, config, tmp_path / "b.pt")
    monkeypatch.undo()
    resumed = experiments.train_classifier("b", fresh_model(), data, config, tmp_path / "b.pt").model
    for (name, expected), actual in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), name
