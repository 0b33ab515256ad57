"""Properties of the preference chapter: Bradley–Terry, the labeller, the ensemble, queries, the wrapper."""
import tempfile
import time

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

import rfy.preferences.envs as envs
import rfy.preferences.experiments as experiments
from rfy.checkpoint import RunState
from rfy.errors import ConfigError
from rfy.runtime import torch_threads
from rfy.preferences import (MUJOCO_HINT, PAPER_NUMBERS, AffineRewardVecEnv, Config, EpisodeBuffer,
                             LearnedRewardVecEnv, RewardEnsemble, agent_seeds, backflip_score, bootstrap_indices,
                             claims, label_schedule, make_ppo, pair_accuracy, preference_loss,
                             preference_probability, run_experiment, select_by_disagreement, summarise,
                             study, synthetic_preferences, train_from_preferences, train_reward_model)

#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = dict(total_timesteps=512, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, rounds=2, agents=1,
                         comparisons=(8,), reward_steps=5, eval_episodes=2, heldout_pairs=20, buffer_episodes=8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The chapter trains on one thread; tiny tensors gain nothing from more, and lose much on a busy machine."""
    with torch_threads(1):
        yield


def tiny_config(**overrides):
    return Config(**{**CONTRACT_SETTINGS, **overrides})


def test_bradley_terry_is_one_half_for_equal_returns_and_increases_with_the_difference():
    returns = torch.tensor([[3.0, 3.0], [-7.5, -7.5]])
    assert torch.allclose(preference_probability(returns), torch.full((2,), 0.5))
    differences = torch.linspace(-8, 8, 101, dtype=torch.float64)
    for error_rate in (0.0, 0.1):
        probabilities = preference_probability(torch.stack([differences, torch.zeros(101, dtype=torch.float64)], 1),
                                               error_rate)
        assert torch.all(probabilities.diff() > 0)
    assert preference_probability(torch.tensor([2.0, 0.0])) == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_noise_correction_bounds_probabilities_and_keeps_the_loss_finite():
    extreme = torch.tensor([[1e4, 0.0], [0.0, 1e4], [0.0, 0.0]])
    corrected = preference_probability(extreme, 0.1)
    assert torch.allclose(corrected, torch.tensor([0.95, 0.05, 0.5]))
    assert torch.allclose(preference_probability(extreme, 0.1), 0.9 * preference_probability(extreme) + 0.05)
    assert preference_probability(extreme)[0] == pytest.approx(1.0)
    wrong = torch.tensor([[0.0, 1.0]])
    assert preference_loss(torch.tensor([[1e4, 0.0]]), wrong, 0.1) == pytest.approx(-np.log(0.05), rel=1e-5)
    assert preference_loss(torch.tensor([[1e4, 0.0]]), wrong, 0.0) > 1e3
    with pytest.raises(ValueError, match="shape"):
        preference_loss(torch.zeros(3, 2), torch.zeros(3))


def test_the_oracle_prefers_the_higher_return_and_answers_at_random_at_the_error_rate():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(20_000, 2, generator=generator)
    exact = synthetic_preferences(scores, error_rate=0.0, generator=generator)
    assert torch.equal(exact[:, 0], (scores[:, 0] > scores[:, 1]).float()) and torch.all(exact.sum(1) == 1)
    noisy = synthetic_preferences(scores, error_rate=0.1, generator=generator)
    assert 0.04 < float((noisy != exact).any(1).float().mean()) < 0.06  # half of the random answers are right
    ties = synthetic_preferences(torch.tensor([[1.0, 1.05], [1.0, 2.0]]), error_rate=0.0, tie_margin=0.1)
    assert torch.equal(ties, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))


def test_bootstrap_members_see_different_data():
    indices = bootstrap_indices(300, 3, torch.Generator().manual_seed(0))
    assert indices.shape == (3, 300) and int(indices.min()) >= 0 and int(indices.max()) < 300
    seen = [set(row.tolist()) for row in indices]
    assert seen[0] != seen[1] != seen[2] and all(150 < len(s) < 250 for s in seen)  # about 1 - 1/e unique


def test_disagreement_selection_picks_the_pairs_with_the_highest_variance():
    generator = torch.Generator().manual_seed(0)
    member_returns = torch.randn(3, 50, 2, generator=generator) * 0.01  # members agree: P ≈ 0.5
    disputed = torch.tensor([7, 21, 40])
    member_returns[:, disputed, 0] = torch.tensor([[5.0], [-5.0], [0.0]]) * torch.tensor([1.0, 2.0, 3.0])
    assert set(select_by_disagreement(member_returns, 3).tolist()) == set(disputed.tolist())
    assert select_by_disagreement(member_returns, 1).tolist() == [40]


def test_label_schedule_front_loads_labels_and_sums_to_the_budget():
    boundaries = np.arange(10) * 4096
    counts = label_schedule(300, boundaries, initial_fraction=0.25, timescale=10_000)
    assert counts.sum() == 300 and counts[0] == 75
    assert np.all(np.diff(counts[1:]) <= 0) and counts[1] > counts[-1]
    assert label_schedule(300, np.array([0]), initial_fraction=0.25, timescale=1.0).tolist() == [300]


def test_episode_buffer_keeps_only_complete_episodes_and_cuts_contiguous_clips():
    buffer = EpisodeBuffer(n_envs=2, feature_dim=1, horizon=5, capacity=3)
    for t in range(5):
        dones = np.array([t == 4, t == 2])  # env 1's episode ends early: dropped
        buffer.add(np.array([[t], [100 + t]], dtype=np.float32), np.array([t, 0.0]), dones)
    assert len(buffer) == 1
    features, rewards = buffer.sample_clips(50, 3, np.random.default_rng(0))
    assert features.shape == (50, 3, 1) and rewards.shape == (50, 3)
    assert torch.all(features[:, 1:, 0] - features[:, :-1, 0] == 1) and torch.equal(features[..., 0], rewards)


def test_reward_wrapper_changes_only_the_reward_and_records_true_rewards():
    plain, wrapped_inner = (make_vec_env("Pendulum-v1", n_envs=3, seed=5) for _ in range(2))
    buffer = EpisodeBuffer(3, 4, 200, 10)
    wrapped = LearnedRewardVecEnv(wrapped_inner, lambda features: features[:, 3] * 2.0, buffer)
    obs_plain, obs_wrapped = plain.reset(), wrapped.reset()
    rng = np.random.default_rng(0)
    for t in range(200):
        assert np.array_equal(obs_plain, obs_wrapped)
        actions = rng.uniform(-2, 2, size=(3, 1)).astype(np.float32)
        obs_next, true_rewards, dones_plain, _ = plain.step(actions)
        obs_wrapped, learned, dones_wrapped, _ = wrapped.step(actions)
        assert np.array_equal(dones_plain, dones_wrapped) and np.allclose(learned, 2 * actions[:, 0])
        obs_plain = obs_next
    assert dones_plain.all() and len(buffer) == 3
    assert np.allclose(buffer.rewards[:3, -1], true_rewards) and np.allclose(buffer.features[:3, -1, 3], actions[:, 0])


def test_reward_training_recovers_the_ranking_of_a_known_linear_reward():
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    weights = torch.tensor([1.0, -2.0, 0.5, 0.0])
    clips = torch.randn(400, 2, 10, 4, generator=generator)
    labels = synthetic_preferences((clips @ weights).sum(-1), error_rate=0.1, generator=generator)
    ensemble = RewardEnsemble(4, members=3, hidden=32)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=3e-3)
    train_reward_model(ensemble, optimizer, clips, labels, steps=300, batch_size=64, error_rate=0.1,
                       generator=generator)
    test = torch.randn(500, 2, 10, 4, generator=generator)
    assert pair_accuracy(ensemble, test, (test @ weights).sum(-1)) > 0.9
    states = torch.randn(1000, 4, generator=generator)
    ensemble.normalise(states)
    members = ensemble.member_rewards(states)
    assert torch.allclose(members.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(members.std(1), torch.ones(3), atol=1e-4)
    ranks = lambda x: x.argsort().argsort().float()
    correlation = torch.corrcoef(torch.stack([ranks(ensemble(states).detach()), ranks(states @ weights)]))[0, 1]
    assert correlation > 0.95


def test_backflip_score_counts_backward_turns():
    features = torch.zeros(2, 125, 14)
    features[0, :, 7] = -2 * torch.pi  # one backward turn per second, for one second
    features[1, :, 7] = 1.0
    turns = backflip_score(features, torch.zeros(2, 125))
    assert turns[0] == pytest.approx(1.0) and turns[1] < 0


def test_config_validation_names_the_field_and_the_allowed_values():
    with pytest.raises(ConfigError, match=r"query_selection must be one of \('random', 'disagreement'\)"):
        Config(query_selection="active")
    with pytest.raises(ConfigError, match=r"env_id must be one of \('Pendulum-v1', 'HalfCheetah-v5', 'Hopper-v5'\)"):
        Config(env_id="CartPole-v1")
    with pytest.raises(ConfigError, match="oracle_error_rate must be a number in \\[0, 1\\)"):
        Config(oracle_error_rate=1.0)
    with pytest.raises(ConfigError, match="clip_length"):
        Config(clip_length=201)
    with pytest.raises(ConfigError, match="comparisons"):
        Config(comparisons=(5,))
    with pytest.raises(ConfigError, match=r"normalise_on must be one of \('initial', 'recent'\)"):
        Config(normalise_on="running")
    with pytest.raises(ConfigError, match="agents must be an? integer > 0"):
        Config(agents=0)
    with pytest.raises(ConfigError, match=r"total_timesteps must be at least rounds · n_steps · n_envs = 10240"):
        Config(total_timesteps=10239)  # 10 rounds, each at least one rollout of 128 steps in 8 environments
    schedule, rounds = experiments.preference_rounds(Config(total_timesteps=10240), 300, 10240)
    assert len(rounds) == 10 and schedule.sum() == 300 and [end - start for *_, start, end in rounds] == [1024] * 10
    with pytest.raises(ConfigError, match="backflip_timesteps must be at least"):
        Config(backflip_timesteps=1024, backflip_comparisons=20)
    full = Config.full()
    assert full.env_id == "HalfCheetah-v5" and full.comparisons == (350, 700, 1400) and full.backflip_timesteps > 0


def test_run_experiment_end_to_end_reports_medians_over_agents_on_the_requested_device(tmp_path, monkeypatch):
    devices = []
    real_make_ppo = experiments.make_ppo
    monkeypatch.setattr(experiments, "make_ppo", lambda *args: devices.append(args[3]) or real_make_ppo(*args))
    began = time.perf_counter()
    metrics = run_experiment(tiny_config(agents=2, device="cpu"), RunState(tmp_path, resume=False), workers=1)
    assert time.perf_counter() - began < 30
    per_agent = {f"{key}_agent{i}" for key in ("true_reward_return", "preference_8_return",
                                                "preference_8_pair_accuracy") for i in range(2)}
    assert set(metrics) == {"random_return", "true_reward_return", "true_reward_best_return", "preference_8_return",
                            "preference_8_best_return", "preference_8_pair_accuracy", "preference_8_fraction",
                            "preference_8_best_fraction", "preference_8_best_pair_accuracy",
                            "preference_8_agents_reaching_80pct"} | per_agent
    assert all(np.isfinite(list(metrics.values()))) and 0 <= metrics["preference_8_pair_accuracy"] <= 1
    assert -16.3 * 200 <= metrics["random_return"] <= 0  # Pendulum's reward lies in [-16.3, 0] per step
    for key, best in (("true_reward_return", "true_reward_best_return"), ("preference_8_return", "preference_8_best_return")):
        assert metrics[key] == pytest.approx((metrics[f"{key}_agent0"] + metrics[f"{key}_agent1"]) / 2)
        assert metrics[best] == max(metrics[f"{key}_agent0"], metrics[f"{key}_agent1"])
    assert [torch.device(d) for d in devices] == [torch.device("cpu")] * 4  # two true-reward, two preference agents
    assert {c.key for c in claims(metrics)} == {"true_reward_trained", "preference_8_share_of_gain",
                                                "preference_8_pair_accuracy"}


def test_agents_trained_side_by_side_in_worker_processes_match_agents_trained_one_after_another(tmp_path):
    config = tiny_config(agents=2, device="cpu")
    one_by_one = run_experiment(config, RunState(tmp_path / "one", resume=False), workers=1)
    side_by_side = run_experiment(config, RunState(tmp_path / "two", resume=False), workers=2)
    assert side_by_side == one_by_one
    found = study(config, RunState(tmp_path / "study", resume=False), workers=2)
    assert found.metrics == one_by_one
    true_runs, preference_runs = found.true_reward, found.preferences[8]
    assert [run.evaluation.mean for run in true_runs] == [one_by_one[f"true_reward_return_agent{i}"] for i in range(2)]
    assert [run.evaluation.mean for run in preference_runs] == [one_by_one[f"preference_8_return_agent{i}"]
                                                                for i in range(2)]
    assert found.random.evaluation.mean == one_by_one["random_return"]
    assert all(run.model is None and run.curve.returns for run in true_runs + preference_runs)
    assert all(run.ensemble is not None and run.buffer is not None for run in preference_runs)


def test_a_resumed_run_trains_only_the_agents_whose_stage_is_missing(tmp_path, monkeypatch):
    config = tiny_config(agents=2, device="cpu")
    first = run_experiment(config, RunState(tmp_path, resume=False), workers=1)
    state = RunState(tmp_path, resume=True)
    del state.stages["preferences_8_1"]
    trained = []
    real_trained_job = experiments.trained_job
    monkeypatch.setattr(experiments, "trained_job", lambda job: trained.append(job.stage) or real_trained_job(job))
    resumed = study(config, state, workers=1)
    assert resumed.metrics == first
    assert trained == ["preferences_8_1"]
    # stages of the earlier session bring their metrics only
    assert resumed.preferences[8][0] is None and resumed.preferences[8][1] is not None and resumed.random is None




def test_an_unavailable_device_fails_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(experiments, "random_run", lambda config: pytest.fail("trained before checking the device"))
    with pytest.raises((ValueError, ConfigError), match="cuda"):
        run_experiment(tiny_config(device="cuda"), RunState(tmp_path, resume=False))


def test_ppo_writes_no_log_folder_into_the_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # SB3's default logger would create SB3-<date> here
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    config = tiny_config()
    model = make_ppo(make_vec_env("Pendulum-v1", n_envs=2, seed=0), config, 0)
    model.learn(128)
    assert list(tmp_path.iterdir()) == []


def test_agent_seeds_of_different_run_seeds_are_disjoint():
    seeds = [agent_seeds(Config(seed=s, agents=3)) for s in range(10)]
    assert seeds[0] == [0, 1, 2] and seeds[1] == [3, 4, 5]
    assert len({seed for group in seeds for seed in group}) == 30
    assert agent_seeds(Config(seed=1)) == list(range(8, 16))  # the preset's eight agents
    assert agent_seeds(Config(seed=4, agents=1)) == [4]


def test_summarise_takes_medians_and_the_best_agents_and_claims_use_them():
    per_agent = {"random_return": -1200.0, "true_reward_return_agent0": -150.0, "true_reward_return_agent1": -400.0,
                 "true_reward_return_agent2": -200.0, "preference_300_return_agent0": -1400.0,
                 "preference_300_return_agent1": -900.0, "preference_300_return_agent2": -180.0,
                 "preference_300_pair_accuracy_agent0": 0.9, "preference_300_pair_accuracy_agent1": 0.95,
                 "preference_300_pair_accuracy_agent2": 0.75}
    metrics = summarise(per_agent, Config(agents=3))
    assert metrics["true_reward_return"] == -200.0 and metrics["true_reward_best_return"] == -150.0
    assert metrics["preference_300_return"] == -900.0 and metrics["preference_300_pair_accuracy"] == 0.9
    assert metrics["preference_300_fraction"] == pytest.approx(300 / 1000)
    assert metrics["preference_300_best_fraction"] == pytest.approx(1020 / 1050)
    assert metrics["preference_300_best_pair_accuracy"] == 0.75  # the model of the best agent, not the median
    assert metrics["preference_300_agents_reaching_80pct"] == 1.0
    verdict = {c.key: c.holds for c in claims(metrics)}
    assert verdict == {"true_reward_trained": True, "preference_300_share_of_gain": True,
                       "preference_300_pair_accuracy": False}


def test_claims_hold_and_fail_at_their_thresholds():
    good = {"random_return": -1200.0, "true_reward_return": -700.0, "true_reward_best_return": -160.0,
            "preference_300_best_fraction": 0.91,
            "preference_300_fraction": 0.5, "preference_300_pair_accuracy": 0.6, "preference_300_best_pair_accuracy": 0.93}
    assert all(c.holds for c in claims(good)) and len(claims(good)) == 3
    weak_ceiling = claims({**good, "true_reward_best_return": -500.0})  # the ceiling is the best agent, not the median
    assert [c.key for c in weak_ceiling if not c.holds] == ["true_reward_trained"]
    bad = claims({**good, "preference_300_best_fraction": 0.79, "preference_300_best_pair_accuracy": 0.79})
    assert {c.key for c in bad if not c.holds} == {"preference_300_share_of_gain", "preference_300_pair_accuracy"}
    assert "0.79 ≥ 0.80: FAILS" in str(next(c for c in bad if c.key == "preference_300_share_of_gain"))
    two_budgets = claims({**good, "preference_700_best_fraction": 1.0, "preference_700_best_pair_accuracy": 0.9})
    assert [c.key for c in two_budgets][1:] == ["preference_300_share_of_gain", "preference_300_pair_accuracy",
                                                "preference_700_share_of_gain", "preference_700_pair_accuracy"]


def test_paper_numbers_pair_only_numbers_on_the_same_data():
    for number in PAPER_NUMBERS:
        assert number.mode in ("reduced", "full") and number.data
        if number.mode == "reduced":
            assert number.paper_value is None and "Pendulum" in number.data
    reduced = {n.metric for n in PAPER_NUMBERS if n.mode == "reduced"}
    assert {"true_reward_return", "random_return", "preference_300_fraction"} <= reduced


def test_affine_reward_wrapper_standardises_the_reward_and_keeps_the_true_return_in_monitor():
    plain, inner = (make_vec_env("Pendulum-v1", n_envs=2, seed=3) for _ in range(2))
    scaled = AffineRewardVecEnv(inner, shift=-6.0, scale=2.0)
    plain.reset(), scaled.reset()
    actions = np.zeros((2, 1), dtype=np.float32)
    for _ in range(200):
        _, true_rewards, _, true_infos = plain.step(actions)
        _, rewards, dones, infos = scaled.step(actions)
        assert np.allclose(rewards, (true_rewards + 6.0) / 2.0)
    assert dones.all()  # Monitor, below the wrapper, still logs the true, unscaled return
    assert [info["episode"]["r"] for info in infos] == [info["episode"]["r"] for info in true_infos]
    with pytest.raises(ValueError, match="scale"):
        AffineRewardVecEnv(plain, 0.0, 0.0)


def test_preference_runs_label_exactly_the_budget_and_repeat_with_the_seed():
    config = tiny_config(comparisons=(12,))
    first, second = (train_from_preferences(config, 12) for _ in range(2))
    assert first.labels.shape == (12, 2) and first.clips.shape == (12, 2, config.clip_length, 4)
    assert first.labels_per_round.sum() == 12 and torch.equal(first.labels, second.labels)
    assert np.array_equal(first.evaluation.scores, second.evaluation.scores)
    # normalise_on="initial": after the last refit the members are standardised on the untrained policy's states
    members = first.ensemble.member_rewards(first.reference_states).detach()
    assert torch.allclose(members.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(members.std(1), torch.ones(3), atol=1e-4)
    other_seed = train_from_preferences(config, 12, seed=1)
    assert not torch.equal(other_seed.labels, first.labels)
    assert train_from_preferences(config.replace(normalise_on="recent"), 12).reference_states is None


def test_mujoco_tasks_fail_with_the_package_to_install_when_mujoco_is_missing(monkeypatch, tmp_path):
    real = envs.importlib.util.find_spec
    monkeypatch.setattr(envs.importlib.util, "find_spec", lambda name, *a: None if name == "mujoco" else real(name, *a))
    assert 'pip install "gymnasium[mujoco]"' in MUJOCO_HINT
    with pytest.raises(ImportError, match=r'HalfCheetah-v5: .*pip install "gymnasium\[mujoco\]"'):
        run_experiment(Config.full(total_timesteps=81_920), RunState(tmp_path, resume=False))
    envs.require_mujoco("Pendulum-v1")  # needs nothing


def test_full_mode_runs_on_tiny_mujoco_settings(tmp_path, monkeypatch):
    pytest.importorskip("mujoco")
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    config = Config.full(total_timesteps=1024, n_envs=1, agents=1, n_steps=512, batch_size=256, n_epochs=1, rounds=2,
                         comparisons=(8,), reward_steps=5, eval_episodes=1, heldout_pairs=10, buffer_episodes=4,
                         backflip_timesteps=1024, backflip_comparisons=8)
    metrics = run_experiment(config, RunState(tmp_path, resume=False))
    assert {"preference_8_fraction", "backflip_turns", "backflip_random_turns"} <= set(metrics)
    assert all(np.isfinite(list(metrics.values())))
