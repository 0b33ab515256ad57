"""Chapter 4's full preset at its true size, and the iteration count of ``cost_parts``.

The PPO parts run HalfCheetah and Hopper, which need MuJoCo; the reward models' parts do not, so
they are checked everywhere.
"""
import math

import numpy as np
import pytest

from rfy.preferences import ENVIRONMENTS, Config, cost_parts, make_env, train_from_preferences
from rfy.preferences.experiments import train_true_reward_agent
from rfy.runtime import torch_threads
from tests.full_size import take_real_steps
from probe_checks import checked, optimizer_step_counts

MUJOCO_MISSING = 'MuJoCo is missing, the full preset\'s PPO parts need it: pip install -e ".[mujoco]"'


def check_evaluation(name: str, result: float) -> None:
    """A finite mean test return for an agent, a pair accuracy in [0, 1] for a reward model."""
    assert math.isfinite(result), name
    if name.startswith("reward model"):
        assert 0.0 <= result <= 1.0, name


def reward_model_parts(config: Config) -> list:
    return [part for part in cost_parts(config) if part.name.startswith("reward model")]


@pytest.mark.full_size
def test_the_full_preset_reward_models_take_a_real_step_at_their_true_size():
    """HalfCheetah's and the backflip Hopper's ensembles, over the largest budget of comparisons (no MuJoCo needed)."""
    parts = reward_model_parts(Config.full())
    assert [part.name for part in parts] == ["reward model (HalfCheetah-v5)", "reward model (Hopper-v5)"]
    take_real_steps([checked(part, check_evaluation) for part in parts])


@pytest.mark.full_size
def test_the_full_preset_takes_a_real_ppo_iteration_of_every_agent_kind(tmp_path, monkeypatch):
    """One PPO iteration (8 × 512 environment steps and 10 epochs of updates) and one batch of test episodes
    of each agent kind, and the reward models."""
    pytest.importorskip("mujoco", reason=MUJOCO_MISSING)
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    for env_id in ("HalfCheetah-v5", "Hopper-v5"):
        env = make_env(env_id)
        assert ENVIRONMENTS[env_id].feature_dim == env.observation_space.shape[0] + env.action_space.shape[0]
    take_real_steps([checked(part, check_evaluation) for part in cost_parts(Config.full())])


def test_the_reward_models_input_size_is_the_environments_observation_plus_action():
    env = make_env("Pendulum-v1")
    observed, acted = np.prod(env.observation_space.shape), np.prod(env.action_space.shape)
    assert ENVIRONMENTS["Pendulum-v1"].feature_dim == observed + acted


@torch_threads(1)
def test_cost_parts_counts_the_iterations_and_reward_steps_a_run_takes():
    """The reduced preset with two short agents (a few rollouts, two rounds, to keep the test short): PPO
    iterations as the agents count them, the ensemble's Adam steps as they happen."""
    config = Config.reduced(total_timesteps=400, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, rounds=3, agents=1,
                            comparisons=(12,), initial_reward_steps=7, reward_steps=3, eval_episodes=1,
                            heldout_pairs=10, buffer_episodes=8)
    true_reward, learned_reward, reward_model = cost_parts(config)
    assert train_true_reward_agent(config).model._n_updates == true_reward.steps * config.n_epochs
    with optimizer_step_counts() as counts:
        run = train_from_preferences(config, 12)
    assert run.model._n_updates == learned_reward.steps * config.n_epochs
    ensemble = {id(p) for p in run.ensemble.parameters()}
    fits = [steps for optimizer, steps in counts if id(optimizer.param_groups[0]["params"][0]) in ensemble]
    assert fits == [reward_model.steps]
    assert true_reward.steps == math.ceil(400 / 128) and reward_model.steps == 7 + 3 * (config.rounds - 1)


@torch_threads(1)
def test_the_reduced_preset_takes_a_real_ppo_iteration_of_every_agent_kind():
    """The PPO probes on Pendulum (no MuJoCo needed), the same code the full preset's parts run; with shorter
    rollouts and fewer test episodes than the reduced preset, to keep the test to a few seconds."""
    config = Config.reduced(n_envs=2, n_steps=64, batch_size=64, n_epochs=2, eval_episodes=2)
    take_real_steps([checked(part, check_evaluation) for part in cost_parts(config)])
