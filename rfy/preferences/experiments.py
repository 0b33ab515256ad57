"""RL on the true reward, RL from synthetic preferences, a random policy: shared by the notebook and the CLI.

Each agent trains on one CPU thread (``torch_threads(1)``): the networks are tiny, so a second thread
buys little, and a pinned thread count makes a seed give the same agent on every machine. The
agents of a run are independent, so on the CPU ``study`` (and ``run_experiment``, its metrics) trains
them side by side, one process per core (``rfy.parallel``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rfy.checkpoint import RunState
from rfy.parallel import default_workers, stages_in_processes
from rfy.preferences.clips import EpisodeBuffer
from rfy.preferences.config import Config
from rfy.preferences.envs import ENVIRONMENTS, make_env, make_vec
from rfy.preferences.oracle import SCORERS, synthetic_preferences
from rfy.preferences.queries import label_schedule, round_boundaries, select_queries
from rfy.preferences.reward_model import RewardEnsemble, pair_accuracy, train_reward_model
from rfy.preferences.wrapper import AffineRewardVecEnv, LearnedRewardVecEnv, step_features
from rfy.progress import progress
from rfy.runtime import select_device, torch_threads

Policy = Callable[[np.ndarray], np.ndarray]


class TrueReturnLog(BaseCallback):
    """Learning curve on the true reward: ``Monitor`` (below any reward wrapper) reports finished episodes."""

    def __init__(self) -> None:
        super().__init__()
        self.timesteps: list[int] = []
        self.returns: list[float] = []

    def __getstate__(self) -> dict[str, list]:
        """Pickle the curve alone: the callback also holds its PPO model and environments, which cannot
        be sent back from a worker process (``rfy.parallel.in_processes``)."""
        return {"timesteps": self.timesteps, "returns": self.returns}

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.timesteps.append(self.num_timesteps)
                self.returns.append(float(info["episode"]["r"]))
        return True


@dataclass
class Evaluation:
    """Fixed-horizon test episodes of one policy: their scores and every step, kept for clips."""

    scores: np.ndarray
    episodes: EpisodeBuffer

    @property
    def mean(self) -> float:
        return float(self.scores.mean())


@dataclass
class AgentRun:
    """A trained agent, its learning curve on the true reward and its evaluation."""

    model: PPO | None
    evaluation: Evaluation
    curve: TrueReturnLog = field(default_factory=TrueReturnLog)


@dataclass
class PreferenceRun(AgentRun):
    """An agent trained from preferences, with its reward model and the comparisons it was shown."""

    ensemble: RewardEnsemble | None = None
    buffer: EpisodeBuffer | None = None
    clips: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    labels_per_round: np.ndarray | None = None
    reference_states: torch.Tensor | None = None  # the states the ensemble is standardised on (``"initial"``)


def make_ppo(env: VecEnv, config: Config, seed: int, device: torch.device | str = "cpu") -> PPO:
    """Stable-baselines3's PPO with the config's hyperparameters on ``device``, logging nothing.

    SB3's default logger creates an empty ``SB3-<date>`` folder in the temp dir on every ``learn``;
    a logger with no folder and no output formats writes nothing anywhere.
    """
    model = PPO("MlpPolicy", env, n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
                gamma=config.gamma, gae_lambda=config.gae_lambda, learning_rate=config.lr, use_sde=config.use_sde,
                sde_sample_freq=4 if config.use_sde else -1, seed=seed, device=device, verbose=0)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def ppo_policy(model: PPO, deterministic: bool = True) -> Policy:
    return lambda observations: model.predict(observations, deterministic=deterministic)[0]


def random_policy(env_id: str, seed: int) -> Policy:
    """Actions drawn uniformly from the action box."""
    space, rng = make_env(env_id).action_space, np.random.default_rng(seed)
    return lambda observations: rng.uniform(space.low, space.high, size=(len(observations), *space.shape))


def evaluate(policy: Policy, env_id: str, episodes: int, seed: int, task: str = "true_return") -> Evaluation:
    """Run ``episodes`` test episodes in parallel from start states seeded ``seed, seed + 1, …``.

    Every policy evaluated with the same ``seed`` starts from the same states. The score of an
    episode is the task's score of the whole episode (the true return for ``"true_return"``).
    """
    horizon = ENVIRONMENTS[env_id].horizon
    venv = DummyVecEnv([lambda: make_env(env_id)] * episodes)
    venv.seed(seed)
    observations = venv.reset()
    buffer: EpisodeBuffer | None = None
    for _ in range(horizon):
        actions = policy(observations)
        features = step_features(observations, actions)
        if buffer is None:
            buffer = EpisodeBuffer(episodes, features.shape[1], horizon, episodes)
        observations, rewards, dones, _ = venv.step(actions)
        buffer.add(features, rewards, dones)
    scores = SCORERS[task](torch.from_numpy(buffer.features), torch.from_numpy(buffer.rewards))
    return Evaluation(scores.numpy(), buffer)


def evaluation_seed(config: Config) -> int:
    """Test episodes use start states no training episode was seeded with."""
    return 10_000 + 1_000 * config.seed


def random_run(config: Config) -> AgentRun:
    """The floor: a uniformly random policy, evaluated like the agents."""
    policy = random_policy(config.env_id, config.seed)
    return AgentRun(None, evaluate(policy, config.env_id, config.eval_episodes, evaluation_seed(config)))


def agent_seeds(config: Config) -> list[int]:
    """The seeds of the ``config.agents`` agents of each kind: ``config.run_seeds(agents)``, i.e.
    ``a·seed, …, a·seed + a − 1`` for ``a`` agents, so run seeds 0, 1, 2, … train disjoint sets of agents."""
    return list(config.run_seeds(config.agents))


def true_reward_ppo(config: Config, seed: int, device: torch.device | str = "cpu") -> PPO:
    """An untrained PPO agent on the environment's own reward, standardised with the mean and standard
    deviation of one random-policy episode per environment."""
    steps = evaluate(random_policy(config.env_id, seed), config.env_id, config.n_envs, seed).episodes.rewards
    env = AffineRewardVecEnv(make_vec(config.env_id, config.n_envs, seed), steps.mean(), steps.std())
    return make_ppo(env, config, seed, device)


@torch_threads(1)
def train_true_reward_agent(config: Config, *, seed: int | None = None, device: torch.device | str = "cpu") -> AgentRun:
    """The ceiling: PPO on the environment's own reward, for ``config.total_timesteps`` steps.

    The reward is standardised with the mean and standard deviation of one random-policy episode per
    environment, as the learned reward is standardised (``AffineRewardVecEnv``); the learning curve
    and the evaluation report the true, unscaled return.
    """
    seed = config.seed if seed is None else seed
    model = true_reward_ppo(config, seed, device)
    curve = TrueReturnLog()
    model.learn(config.total_timesteps, callback=curve)
    evaluation = evaluate(ppo_policy(model), config.env_id, config.eval_episodes, evaluation_seed(config))
    return AgentRun(model, evaluation, curve)


def collect_initial_episodes(model: PPO, env: LearnedRewardVecEnv, min_episodes: int) -> None:
    """Roll out the untrained (random) policy until the buffer holds ``min_episodes`` episodes."""
    horizon = env.buffer.horizon
    observations = env.reset()
    for _ in range(horizon * math.ceil(min_episodes / env.num_envs)):
        observations, *_ = env.step(model.predict(observations, deterministic=False)[0])


def query_labels(run: PreferenceRun, config: Config, n: int, task: str, rng: np.random.Generator,
                 generator: torch.Generator) -> None:
    """Cut candidate pairs from the buffer's episodes, pick ``n`` of them, ask the synthetic labeller."""
    candidates = n * (config.candidate_factor if config.query_selection == "disagreement" else 1)
    features, rewards = run.buffer.sample_pairs(candidates, config.clip_length, rng)
    chosen = select_queries(run.ensemble, features, n, config.query_selection, generator)
    labels = synthetic_preferences(SCORERS[task](features[chosen], rewards[chosen]), generator=generator,
                                   error_rate=config.oracle_error_rate, tie_margin=config.tie_margin)
    run.clips = features[chosen] if run.clips is None else torch.cat([run.clips, features[chosen]])
    run.labels = labels if run.labels is None else torch.cat([run.labels, labels])


def fit_reward(run: PreferenceRun, optimizer: torch.optim.Optimizer, config: Config, steps: int,
               rng: np.random.Generator, generator: torch.Generator, reference: torch.Tensor | None = None) -> None:
    """Train the ensemble on every comparison so far, then renormalise it: on the fixed ``reference``
    states when given (``normalise_on="initial"``), else on states of recent episodes."""
    train_reward_model(run.ensemble, optimizer, run.clips, run.labels, steps=steps,
                       batch_size=config.reward_batch_size, error_rate=config.assumed_error_rate,
                       generator=generator)
    states = reference if reference is not None else run.buffer.sample_clips(4096, 1, rng)[0][:, 0]
    run.ensemble.normalise(states)


def reward_ensemble(config: Config) -> tuple[RewardEnsemble, torch.optim.Optimizer]:
    """An untrained reward ensemble for ``config.env_id``'s steps, and its Adam optimiser."""
    ensemble = RewardEnsemble(ENVIRONMENTS[config.env_id].feature_dim, config.ensemble_size, config.hidden)
    return ensemble, torch.optim.Adam(ensemble.parameters(), lr=config.reward_lr)


def learned_reward_ppo(config: Config, seed: int, device: torch.device | str = "cpu") -> tuple[
        PPO, LearnedRewardVecEnv, RewardEnsemble, torch.optim.Optimizer]:
    """An untrained PPO agent whose environments hand it the (untrained) ensemble's reward and record every
    step in an episode buffer; the ensemble and its optimiser."""
    venv = make_vec(config.env_id, config.n_envs, seed)
    torch.manual_seed(seed)
    ensemble, optimizer = reward_ensemble(config)
    buffer = EpisodeBuffer(config.n_envs, ENVIRONMENTS[config.env_id].feature_dim, ENVIRONMENTS[config.env_id].horizon,
                           config.buffer_episodes)
    env = LearnedRewardVecEnv(venv, ensemble.predict, buffer)
    return make_ppo(env, config, seed, device), env, ensemble, optimizer


def preference_rounds(config: Config, comparisons: int, timesteps: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """The labels asked at each round (``label_schedule``), and every round as ``(labels, reward-model steps,
    first timestep, end timestep)``: the first fit takes ``initial_reward_steps``, later ones ``reward_steps``."""
    boundaries = round_boundaries(timesteps, config.rounds, config.n_steps * config.n_envs)
    schedule = label_schedule(comparisons, boundaries, initial_fraction=config.initial_label_fraction,
                              timescale=config.label_timescale)
    ends = list(boundaries[1:]) + [max(timesteps, boundaries[-1] + 1)]
    steps = [config.initial_reward_steps] + [config.reward_steps] * (len(schedule) - 1)
    return schedule, list(zip(schedule, steps, boundaries, ends))


@torch_threads(1)
def train_from_preferences(config: Config, comparisons: int, *, seed: int | None = None,
                           device: torch.device | str = "cpu", task: str = "true_return",
                           timesteps: int | None = None, desc: str = "") -> PreferenceRun:
    """The paper's loop: the policy acts, clips are compared, the reward model learns, the policy learns.

    Round $k$ asks for ``label_schedule(...)[k]`` labels, refits the ensemble, then runs PPO on the
    learned reward for one chunk of the ``timesteps`` (default ``config.total_timesteps``).
    """
    timesteps = timesteps or config.total_timesteps
    seed = config.seed if seed is None else seed
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    model, env, ensemble, optimizer = learned_reward_ppo(config, seed, device)
    schedule, rounds = preference_rounds(config, comparisons, timesteps)
    run = PreferenceRun(model, None, ensemble=ensemble, buffer=env.buffer, labels_per_round=schedule)
    collect_initial_episodes(model, env, min_episodes=2 * config.n_envs)
    reference = env.buffer.sample_clips(4096, 1, rng)[0][:, 0] if config.normalise_on == "initial" else None
    run.reference_states = reference
    for n_labels, n_steps, start, end in progress(rounds, desc=desc, unit="round"):
        if n_labels:
            query_labels(run, config, int(n_labels), task, rng, generator)
            fit_reward(run, optimizer, config, n_steps, rng, generator, reference)
        model.learn(int(end - start), callback=run.curve, reset_num_timesteps=False)
    run.evaluation = evaluate(ppo_policy(model), config.env_id, config.eval_episodes, evaluation_seed(config), task)
    return run


@torch_threads(1)
def heldout_accuracy(ensemble: RewardEnsemble, episodes: EpisodeBuffer, config: Config) -> float:
    """Pair accuracy on ``config.heldout_pairs`` fresh pairs of clips cut from ``episodes``, ordered by the true return.

    No such pair was shown to the labeller, but with the training buffer its clips come from the same
    episodes as the labelled ones: this measures generalisation to new pairs, not to new behaviour.
    """
    features, rewards = episodes.sample_pairs(config.heldout_pairs, config.clip_length,
                                              np.random.default_rng(config.seed + 1))
    return pair_accuracy(ensemble, features, rewards.sum(-1))


def gain_ratio(preference: float, true_reward: float, random: float) -> float:
    r"""Share of the true-reward agent's gain over random that the preference agent recovers:
    $(R_\mathrm{pref} - R_\mathrm{rand}) / (R_\mathrm{true} - R_\mathrm{rand})$."""
    return (preference - random) / (true_reward - random)


def true_reward_metrics(run: AgentRun, agent: int) -> dict[str, float]:
    """The test return of true-reward agent number ``agent``."""
    return {f"true_reward_return_agent{agent}": run.evaluation.mean}


def preference_metrics(run: PreferenceRun, config: Config, comparisons: int, agent: int) -> dict[str, float]:
    """Return and held-out pair accuracy of one preference agent, keyed by its budget and its index."""
    return {f"preference_{comparisons}_return_agent{agent}": run.evaluation.mean,
            f"preference_{comparisons}_pair_accuracy_agent{agent}": heldout_accuracy(run.ensemble, run.buffer, config)}


def median_over_agents(metrics: dict[str, float], key: str, agents: int) -> float:
    """The median of ``key_agent0 … key_agent{agents-1}``: robust to one agent of three that fails."""
    return float(np.median([metrics[f"{key}_agent{i}"] for i in range(agents)]))


def best_over_agents(metrics: dict[str, float], key: str, agents: int) -> float:
    """The largest of ``key_agent0 … key_agent{agents-1}``: the best agent of its kind."""
    return float(max(metrics[f"{key}_agent{i}"] for i in range(agents)))


def summarise(metrics: dict[str, float], config: Config) -> dict[str, float]:
    """Add to the per-agent ``metrics`` (``run_experiment`` and the notebook both call this):

    * each kind's median over its agents, and per budget ``preference_<n>_fraction``, the share of the
      gain of the medians;
    * the best agent of each kind, ``preference_<n>_best_fraction``, the best preference agent's
      share of the best true-reward agent's gain, and ``preference_<n>_best_pair_accuracy``, the
      held-out accuracy of the reward model that taught it;
    * ``preference_<n>_agents_reaching_80pct``: how many preference agents reach a share of 0.8.
    """
    metrics = dict(metrics)
    rand = metrics["random_return"]
    metrics["true_reward_return"] = median_over_agents(metrics, "true_reward_return", config.agents)
    metrics["true_reward_best_return"] = best_over_agents(metrics, "true_reward_return", config.agents)
    for n in config.comparisons:
        for key in (f"preference_{n}_return", f"preference_{n}_pair_accuracy"):
            metrics[key] = median_over_agents(metrics, key, config.agents)
        metrics[f"preference_{n}_best_return"] = best_over_agents(metrics, f"preference_{n}_return", config.agents)
        metrics[f"preference_{n}_fraction"] = gain_ratio(metrics[f"preference_{n}_return"],
                                                         metrics["true_reward_return"], rand)
        metrics[f"preference_{n}_best_fraction"] = gain_ratio(metrics[f"preference_{n}_best_return"],
                                                              metrics["true_reward_best_return"], rand)
        returns = [metrics[f"preference_{n}_return_agent{i}"] for i in range(config.agents)]
        best = int(np.argmax(returns))
        metrics[f"preference_{n}_best_pair_accuracy"] = metrics[f"preference_{n}_pair_accuracy_agent{best}"]
        metrics[f"preference_{n}_agents_reaching_80pct"] = float(sum(
            gain_ratio(r, metrics["true_reward_best_return"], rand) >= 0.8 for r in returns))
    return metrics


def backflip_metrics(config: Config, device: torch.device | str = "cpu") -> dict[str, float]:
    """The Hopper trained only from the scripted "human" who likes backward rotation: turns per episode."""
    hopper = config.replace(env_id="Hopper-v5")
    run = train_from_preferences(hopper, config.backflip_comparisons, device=device, task="backflip",
                                 timesteps=config.backflip_timesteps, desc="backflip")
    still = evaluate(random_policy(hopper.env_id, config.seed), hopper.env_id, config.eval_episodes,
                     evaluation_seed(config), task="backflip")
    return {"backflip_turns": run.evaluation.mean, "backflip_random_turns": still.mean}


@dataclass(frozen=True)
class AgentJob:
    """One agent to train: agent number ``index`` of its kind, a true-reward agent when ``comparisons`` is None."""

    config: Config
    index: int
    seed: int
    comparisons: int | None = None
    device: str = "cpu"

    @property
    def stage(self) -> str:
        """The agent's stage name in a run's ``state.json``."""
        kind = "true_reward" if self.comparisons is None else f"preferences_{self.comparisons}"
        return f"{kind}_{self.index}"


def agent_jobs(config: Config, device: torch.device | str = "cpu") -> list[AgentJob]:
    """Every agent of a run: ``config.agents`` on the true reward, then as many per comparison budget."""
    seeds, device = agent_seeds(config), str(device)
    jobs = [AgentJob(config, i, seed, None, device) for i, seed in enumerate(seeds)]
    return jobs + [AgentJob(config, i, seed, n, device) for n in config.comparisons for i, seed in enumerate(seeds)]


def train_job(job: AgentJob) -> AgentRun:
    """Train the agent ``job`` names. The returned run holds no PPO model (``model=None``): a model holds
    its environments, which cannot be sent back from a worker process, and nothing after training needs it."""
    if job.comparisons is None:
        run = train_true_reward_agent(job.config, seed=job.seed, device=job.device)
    else:
        run = train_from_preferences(job.config, job.comparisons, seed=job.seed, device=job.device,
                                     desc=f"{job.comparisons} comparisons, agent {job.index}")
    run.model = None
    return run


def trained_job(job: AgentJob) -> tuple[AgentRun, dict[str, float]]:
    """Train the agent ``job`` names: its run (``train_job``) and its metrics (what the run's stage stores)."""
    run = train_job(job)
    if job.comparisons is None:
        return run, true_reward_metrics(run, job.index)
    return run, preference_metrics(run, job.config, job.comparisons, job.index)


@dataclass
class Study:
    """The chapter's experiment with what the notebook's figures need: ``metrics`` is ``run_experiment``'s;
    the random policy's run and each agent's run (learning curve, reward model, buffer), in agent order.
    A stage finished in an earlier session of a resumed run brings its metrics only: its run is ``None``."""

    config: Config
    metrics: dict[str, float]
    random: AgentRun | None
    true_reward: list[AgentRun | None]
    preferences: dict[int, list[PreferenceRun | None]]


def study(config: Config, state: RunState, workers: int | None = None) -> Study:
    """Random policy, ``config.agents`` true-reward agents, as many preference agents per comparison budget
    (and, if asked, the backflip), each a resumable stage; returns the metrics a run record stores and
    the runs trained in this session.

    Agents train side by side on ``workers`` processes (default: one per CPU core on the CPU); each
    one's stage is saved as soon as it finishes. Each kind's return is the median over its agents, all
    evaluated on the same test start states; ``preference_<n>_fraction`` is ``gain_ratio`` of those medians.
    """
    device = select_device(config.device)  # an unavailable device fails here, before any training
    runs: dict[str, AgentRun] = {}

    def random_stage(_) -> dict[str, float]:
        runs["random"] = random_run(config)
        return {"random_return": runs["random"].evaluation.mean}

    metrics = dict(state.stage("random", random_stage))
    jobs = {job.stage: job for job in agent_jobs(config, device)}
    for found in stages_in_processes(state, jobs, trained_job, workers or default_workers(device), desc="agents",
                                     results=runs).values():
        metrics |= found
    metrics = summarise(metrics, config)
    if config.backflip_timesteps:
        metrics |= state.stage("backflip", lambda _: backflip_metrics(config, device))
    agents = lambda n: [runs.get(name) for name, job in jobs.items() if job.comparisons == n]
    return Study(config, metrics, runs.get("random"), agents(None), {n: agents(n) for n in config.comparisons})


def run_experiment(config: Config, state: RunState, workers: int | None = None) -> dict[str, float]:
    """The metrics a run record stores: those of ``study``."""
    return study(config, state, workers).metrics
