"""What chapter 4 asserts, computed from the metrics of ``run_experiment`` alone.

A run trains ``agents`` independently seeded agents of each kind (eight in the reduced preset), all
evaluated on the same test start states. The share of the gain is taken of the *best* true-reward
agent, so that agent is the ceiling asserted to be trained. For the preference agents we assert
that the best of the eight recovers most of that gain, and that the reward model that taught it
generalises. At 40k steps a PPO run, on either reward, sometimes never
finds the swing-up (some end below random), so the median agent does not reliably reach the
ceiling; ``true_reward_return``, ``preference_<n>_fraction`` (the medians) and
``preference_<n>_agents_reaching_80pct`` report that, but are not asserted.
"""
from __future__ import annotations

import re

from rfy.claims import Claim, at_least

#: The preference agent recovers at least this share of the true-reward agent's gain over random.
SHARE_OF_GAIN = 0.8
#: The learned reward orders at least this fraction of fresh pairs of clips as the true reward does.
PAIR_ACCURACY = 0.8
#: The ceiling is a trained agent: PPO on the true reward gains at least this much return over random.
CEILING_GAIN = 850.0

BUDGET = re.compile(r"preference_(\d+)_best_fraction")


def budgets(metrics: dict[str, float]) -> list[int]:
    """The comparison budgets that ``metrics`` holds results for, in increasing order."""
    return sorted(int(match.group(1)) for key in metrics if (match := BUDGET.fullmatch(key)))


def claims(metrics: dict[str, float]) -> list[Claim]:
    """The chapter's claims: the ceiling (the best true-reward agent) is trained, and for each budget the best
    preference agent's share of its gain and the held-out pair accuracy of that agent's reward model."""
    found = []
    if "true_reward_best_return" in metrics and "random_return" in metrics:
        found.append(at_least(
            "true_reward_trained", "PPO on the true reward is trained: the best agent's gain over random "
            "(the ceiling the share is taken of)",
            metrics["true_reward_best_return"] - metrics["random_return"], CEILING_GAIN, decimals=0,
            why="On Pendulum a policy that swings up and balances gains about 1000 over random and one that "
                "never does little; 850 separates the two, so the share below is not taken of a weak ceiling."))
    for n in budgets(metrics):
        found += [
            at_least(f"preference_{n}_share_of_gain",
                     f"{n} comparisons can replace the reward: the best preference agent's share of the best "
                     "true-reward agent's gain over random",
                     metrics[f"preference_{n}_best_fraction"], SHARE_OF_GAIN,
                     why="Test returns of agents that balance vary between start states and runs, so we ask for "
                         "most of the gain (80%), not all of it."),
            at_least(f"preference_{n}_pair_accuracy",
                     f"the reward model behind that agent orders fresh pairs of clips as the true return does: "
                     "held-out pair accuracy",
                     metrics[f"preference_{n}_best_pair_accuracy"], PAIR_ACCURACY,
                     why="An agent that balances fills its buffer with clips of nearly equal return, which even a "
                         "good model orders by a coin toss; the models of agents that never swung up scored well below "
                         "0.8 in our sweeps (each record keeps every agent's accuracy), so 0.8 separates a reward that "
                         "was learned from one that was not."),
        ]
    return found
