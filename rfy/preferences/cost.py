"""What the chapter's preset costs (``rfy.cost``): the agents' PPO and the reward models, at their true size.

The chapter counts its RL in PPO iterations: one iteration collects ``n_steps`` steps of each of the
``n_envs`` environments, then runs ``n_epochs`` passes of minibatch updates (stable-baselines3's
``learn``, as the training loops call it). The parts are PPO on the true reward, PPO on the learned
reward (its environments ask the ensemble for every step's reward), and the reward ensemble's Adam
steps, per environment (the backflip's Hopper, when the preset trains it, has its own parts). The PPO
parts need MuJoCo for the full preset's environments; the reward model's part does not. An
evaluation is one batch of fixed-horizon test episodes (``evaluate``) for PPO, and one held-out pair
accuracy for the ensemble; the random-policy rollouts before training (the true reward's
standardisation, the preference agent's first ``2 · n_envs`` episodes) are counted as evaluations
too, one per horizon of rollout. Choosing which pairs to label (the ensemble on the candidate
pairs) is left out: a forward pass or two per round.
"""
from __future__ import annotations

import math

import torch
from stable_baselines3 import PPO

from rfy.cost import CostPart, Probe
from rfy.preferences.config import Config
from rfy.preferences.envs import ENVIRONMENTS
from rfy.preferences.experiments import (TrueReturnLog, agent_seeds, evaluate, evaluation_seed, learned_reward_ppo,
                                         ppo_policy, preference_rounds, reward_ensemble, true_reward_ppo)
from rfy.preferences.oracle import synthetic_preferences
from rfy.preferences.reward_model import pair_accuracy, train_reward_model
from rfy.runtime import torch_threads


def rollout_size(config: Config) -> int:
    """Environment steps in one PPO iteration: ``n_steps`` of each of the ``n_envs`` environments."""
    return config.n_steps * config.n_envs


def ppo_iterations(config: Config, chunks: list[int]) -> int:
    """PPO iterations of ``learn`` called on these timestep ``chunks`` one after another: each call collects
    whole rollouts until it has added at least its chunk,
    $\\sum_k \\lceil c_k / (n_\\mathrm{steps} n_\\mathrm{envs}) \\rceil$."""
    return sum(math.ceil(chunk / rollout_size(config)) for chunk in chunks)


def preference_iterations(config: Config, comparisons: int, timesteps: int) -> tuple[int, int]:
    """PPO iterations and reward-model steps of one preference agent (``train_from_preferences``'s rounds)."""
    _, rounds = preference_rounds(config, comparisons, timesteps)
    iterations = ppo_iterations(config, [int(end - start) for _, _, start, end in rounds])
    return iterations, sum(int(steps) for labels, steps, _, _ in rounds if labels)


def ppo_unit(config: Config) -> str:
    """What one step of a PPO part is."""
    return f"PPO iteration ({rollout_size(config)} environment steps)"


def true_reward_part(config: Config) -> CostPart:
    """``agents`` agents on the true reward, ``total_timesteps`` each; the random policy's test episodes."""

    def build(device: torch.device) -> Probe:
        seed = agent_seeds(config)[0]
        with torch_threads(1):
            model = true_reward_ppo(config, seed, device)
        return ppo_probe(model, config)

    steps = config.agents * ppo_iterations(config, [config.total_timesteps])
    return CostPart(f"PPO on the true reward ({config.env_id})", steps, build, 2 * config.agents + 1,
                    unit=ppo_unit(config))


def learned_reward_part(config: Config, agents: int, comparisons: tuple[int, ...], timesteps: int) -> CostPart:
    """``agents`` preference agents per comparison budget, PPO on the learned reward for ``timesteps`` each."""

    def build(device: torch.device) -> Probe:
        with torch_threads(1):
            model, *_ = learned_reward_ppo(config, agent_seeds(config)[0], device)
        return ppo_probe(model, config)

    steps = agents * sum(preference_iterations(config, n, timesteps)[0] for n in comparisons)
    return CostPart(f"PPO on the learned reward ({config.env_id})", steps, build, 3 * agents * len(comparisons),
                    unit=ppo_unit(config))


def ppo_probe(model: PPO, config: Config) -> Probe:
    """One PPO iteration (``learn`` continued for one rollout, as each round of the loop does), and one
    batch of ``eval_episodes`` test episodes; both on one CPU thread, as the agents train."""
    curve = TrueReturnLog()

    @torch_threads(1)
    def step() -> None:
        model.learn(rollout_size(config), callback=curve, reset_num_timesteps=False)

    @torch_threads(1)
    def evaluate_batch() -> float:
        return evaluate(ppo_policy(model), config.env_id, config.eval_episodes, evaluation_seed(config)).mean

    return Probe(step, evaluate_batch)


def reward_model_part(config: Config, agents: int, comparisons: tuple[int, ...], timesteps: int) -> CostPart:
    """The ensembles of the preference agents: Adam steps on the Bradley–Terry loss, over every comparison
    of the largest budget (the most the loop ever holds), and one held-out pair accuracy per agent."""
    spec = ENVIRONMENTS[config.env_id]

    @torch_threads(1)
    def build(device: torch.device) -> Probe:
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        ensemble, optimizer = reward_ensemble(config)
        clips = torch.randn(max(comparisons), 2, config.clip_length, spec.feature_dim)
        labels = synthetic_preferences(torch.randn(max(comparisons), 2), generator=generator,
                                       error_rate=config.oracle_error_rate, tie_margin=config.tie_margin)
        heldout = torch.randn(config.heldout_pairs, 2, config.clip_length, spec.feature_dim)
        heldout_returns = torch.randn(config.heldout_pairs, 2)

        @torch_threads(1)
        def step() -> float:
            return train_reward_model(ensemble, optimizer, clips, labels, steps=1,
                                      batch_size=config.reward_batch_size, error_rate=config.assumed_error_rate,
                                      generator=generator)

        @torch_threads(1)
        def evaluate_batch() -> float:
            return pair_accuracy(ensemble, heldout, heldout_returns)

        return Probe(step, evaluate_batch)

    steps = agents * sum(preference_iterations(config, n, timesteps)[1] for n in comparisons)
    return CostPart(f"reward model ({config.env_id})", steps, build, agents * len(comparisons),
                    unit="Adam step of the ensemble")


def cost_parts(config: Config) -> list[CostPart]:
    """Every training of the preset (see ``rfy.cost``): the agents of ``study``, then the backflip."""
    parts = [true_reward_part(config),
             learned_reward_part(config, config.agents, config.comparisons, config.total_timesteps),
             reward_model_part(config, config.agents, config.comparisons, config.total_timesteps)]
    if config.backflip_timesteps:
        hopper = config.replace(env_id="Hopper-v5")
        budget = (config.backflip_comparisons,)
        parts += [learned_reward_part(hopper, 1, budget, config.backflip_timesteps),
                  reward_model_part(hopper, 1, budget, config.backflip_timesteps)]
    return parts
