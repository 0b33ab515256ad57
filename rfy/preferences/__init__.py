"""Chapter 4: Deep reinforcement learning from human preferences (Christiano, Leike, Brown, Martic,
Legg & Amodei, NeurIPS 2017).

Instead of writing a reward function, show a person two short clips of the agent's behaviour and
ask which is better. A reward model $\\hat r(o, a)$ is fitted to these comparisons with the
Bradley–Terry model, and an ordinary RL algorithm maximises $\\hat r$ while new clips keep being
compared. A few hundred comparisons can stand in for a hand-written reward. The package has:

* ``preference_probability`` and ``preference_loss``: Bradley–Terry with the noise correction
  $0.9 \\hat P + 0.05$;
* ``synthetic_preferences`` and the scorers: a labeller that answers from the true reward (or a
  script, for the backflip), with ties and random answers;
* ``RewardEnsemble``, ``bootstrap_indices``, ``train_reward_model``: the ensemble of predictors;
* ``select_queries``, ``label_schedule``: disagreement queries and the decaying label rate;
* ``EpisodeBuffer``, ``LearnedRewardVecEnv``: clips, and the learned reward handed to
  stable-baselines3's PPO;
* ``train_from_preferences``, ``train_true_reward_agent``, ``random_run``, ``study`` (every agent of
  a run, side by side on the CPU's cores, with the runs the notebook plots), ``run_experiment`` (its
  metrics: medians and the best of ``Config.agents`` agents of each kind) and ``claims``.
"""
from rfy.contract import Chapter
from rfy.preferences.bradley_terry import log_preference_probability, preference_loss, preference_probability
from rfy.preferences.claims import claims
from rfy.preferences.clips import EpisodeBuffer
from rfy.preferences.config import QUERY_SELECTIONS, Config
from rfy.preferences.cost import cost_parts
from rfy.preferences.envs import ENVIRONMENTS, MUJOCO_HINT, make_env, make_vec, require_mujoco
from rfy.preferences.experiments import (AgentJob, AgentRun, Evaluation, PreferenceRun, agent_jobs, agent_seeds,
                                         backflip_metrics, best_over_agents, evaluate, gain_ratio,
                                         heldout_accuracy, make_ppo, median_over_agents, preference_metrics,
                                         random_policy, random_run, run_experiment, study, Study, summarise,
                                         train_from_preferences, train_true_reward_agent, true_reward_metrics)
from rfy.preferences.oracle import SCORERS, backflip_score, synthetic_preferences, true_return_score
from rfy.preferences.queries import (disagreement, label_schedule, round_boundaries, select_by_disagreement,
                                     select_queries)
from rfy.preferences.reward_model import (EnsembleLinear, RewardEnsemble, bootstrap_indices, pair_accuracy,
                                          train_reward_model)
from rfy.preferences.wrapper import AffineRewardVecEnv, LearnedRewardVecEnv, step_features
from rfy.tables import PaperNumber

REDUCED_DATA = "Pendulum-v1 (ours)"
FULL_DATA = "HalfCheetah-v5"
AGENTS = Config().agents  # agents of each kind in the reduced preset

PAPER_NUMBERS = [
    # Reduced mode: our Pendulum runs; the paper has no number on Pendulum.
    PaperNumber(f"Return of RL on the true reward (median of {AGENTS} PPO agents)", "true_reward_return", None,
                "christiano2017deep", f"PPO, {Config().total_timesteps // 1000}k steps per agent", higher_is_better=True, data=REDUCED_DATA,
                mode="reduced", decimals=0),
    PaperNumber("Return of a random policy", "random_return", None, "christiano2017deep", higher_is_better=True,
                data=REDUCED_DATA, mode="reduced", decimals=0),
    PaperNumber(f"300 comparisons from the scripted labeller: share of the true-reward gain over random, best of {AGENTS} agents",
                "preference_300_best_fraction", None, "christiano2017deep", "best agent of each kind",
                higher_is_better=True, data=REDUCED_DATA, mode="reduced", decimals=2),
    PaperNumber(f"300 comparisons from the scripted labeller: share of the true-reward gain over random, median of {AGENTS} agents",
                "preference_300_fraction", None, "christiano2017deep", "median agent of each kind",
                higher_is_better=True, data=REDUCED_DATA, mode="reduced", decimals=2),
    PaperNumber("300 comparisons from the scripted labeller: held-out pair accuracy", "preference_300_pair_accuracy", None,
                "christiano2017deep", "not reported in the paper", higher_is_better=True, data=REDUCED_DATA,
                mode="reduced", decimals=2),
    # Full mode: HalfCheetah, one of the paper's MuJoCo tasks (the paper trained TRPO on an older version).
    PaperNumber("Return of RL on the true reward", "true_reward_return", None, "christiano2017deep",
                "paper: TRPO on MuJoCo; we use PPO", higher_is_better=True, data=FULL_DATA, decimals=0),
    PaperNumber("Return of a random policy", "random_return", None, "christiano2017deep", higher_is_better=True,
                data=FULL_DATA, decimals=0),
    *[PaperNumber(f"{n} comparisons from the scripted labeller: share of the true-reward gain over random", f"preference_{n}_fraction",
                  None, "christiano2017deep",
                  "paper: on MuJoCo, 700 labels come close to RL on the true reward (figure values not verified)",
                  higher_is_better=True, data=FULL_DATA, decimals=2) for n in (350, 700, 1400)],
    *[PaperNumber(f"{n} comparisons from the scripted labeller: held-out pair accuracy", f"preference_{n}_pair_accuracy", None,
                  "christiano2017deep", "not reported in the paper", higher_is_better=True, data=FULL_DATA,
                  decimals=2) for n in (350, 700, 1400)],
    PaperNumber("Hopper backflip from a scripted labeller: backward turns per episode", "backflip_turns", None,
                "christiano2017deep", "paper: taught by a person; no hand-written reward", higher_is_better=True,
                data="Hopper-v5", decimals=2),
]

def optional_packages(config: Config) -> list[tuple[str, str]]:
    """MuJoCo, when ``config.env_id`` is one of its tasks."""
    return [("mujoco", MUJOCO_HINT)] if ENVIRONMENTS[config.env_id].mujoco else []


CHAPTER = Chapter(
    "preferences", 4, "Deep reinforcement learning from human preferences", "04_preferences",
    Config, run_experiment, claims, PAPER_NUMBERS, citation="christiano2017deep",
    summary="a reward learned from comparisons trains an agent almost as well as the true reward", extras="mujoco", cost_parts=cost_parts, optional_packages=optional_packages, study=study)


__all__ = [
    "CHAPTER", "cost_parts",
    "Config", "PAPER_NUMBERS", "run_experiment", "claims", "agent_seeds", "median_over_agents", "best_over_agents", "make_ppo",
    "summarise", "true_reward_metrics", "preference_metrics",
    "AffineRewardVecEnv", "QUERY_SELECTIONS", "ENVIRONMENTS", "MUJOCO_HINT",
    "preference_probability", "log_preference_probability", "preference_loss", "synthetic_preferences",
    "true_return_score", "backflip_score", "SCORERS", "RewardEnsemble", "EnsembleLinear", "bootstrap_indices",
    "train_reward_model", "pair_accuracy", "disagreement", "select_by_disagreement", "select_queries",
    "label_schedule", "round_boundaries", "EpisodeBuffer", "LearnedRewardVecEnv", "step_features", "make_env",
    "make_vec", "require_mujoco", "train_from_preferences", "train_true_reward_agent", "random_run",
    "random_policy", "evaluate", "backflip_metrics", "heldout_accuracy", "gain_ratio", "AgentRun", "PreferenceRun",
    "Evaluation", "AgentJob", "agent_jobs", "study", "Study",
]
