"""A faithful simulation of the Photofeeler problem: photos with latent traits, biased voters, few votes.

Every photo ``i`` has three correlated traits :math:`t_i \\in \\mathbb R^3` (smart, trustworthy,
attractive), rendered with nuisance factors into a feature vector :math:`x_i` (the "photo"). Voter
``v`` perceives trait ``k`` through an ordinal probit model: a latent impression
:math:`y = s_v t_{ik} + b_{vk} + \\sigma_v \\varepsilon`, :math:`\\varepsilon \\sim N(0, 1)`, cut at fixed
thresholds :math:`c_1 < \\dots < c_{L-1}` into a vote in :math:`\\{0, \\dots, L-1\\}`; a share of voters
ignores the photo and votes uniformly at random. The ground truth of a photo is its expected vote
over the whole voter population, computed exactly from the model, never from sampled votes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rfy.runtime import DeviceData


@dataclass
class Voters:
    """The voter population: leniency ``bias`` (V, K), ``scale`` (V,), ``noise`` (V,), ``activity`` (V,)."""

    bias: torch.Tensor
    scale: torch.Tensor
    noise: torch.Tensor
    random: torch.Tensor  # (V,) bool: votes uniformly at random, ignoring the photo
    activity: torch.Tensor  # (V,) probabilities, Zipf-distributed: who casts the votes

    @property
    def count(self) -> int:
        return len(self.scale)


@dataclass
class VoteData(DeviceData):
    """Photos, votes and truth of one experiment, as tensors on one device.

    Training votes are rows ``(vote_items[j], vote_voters[j], votes[j])``; ``votes`` has one column per
    trait, values in ``0 … levels-1``. ``truth`` (N, K) is the score each photo should get;
    ``heldout_votes`` (n_test, H, K) are raw votes on the test photos that no model sees, and
    ``heldout_truth`` (n_test, K) the truth the vote-equivalence curve compares against.
    """

    features: torch.Tensor
    train_items: torch.Tensor
    test_items: torch.Tensor
    vote_items: torch.Tensor
    vote_voters: torch.Tensor
    votes: torch.Tensor
    truth: torch.Tensor
    heldout_votes: torch.Tensor
    heldout_truth: torch.Tensor
    num_voters: int
    standard_voters: torch.Tensor
    levels: int

    @property
    def num_traits(self) -> int:
        return self.votes.shape[1]

    def mean_votes(self) -> torch.Tensor:
        """:math:`\\bar v_i = \\frac{1}{|V_i|}\\sum_{v \\in V_i} v_{vi}` for every training photo (n_train, K)."""
        position = torch.full((len(self.features),), -1, dtype=torch.long, device=self.votes.device)
        position[self.train_items] = torch.arange(len(self.train_items), device=self.votes.device)
        rows = position[self.vote_items]
        total = torch.zeros(len(self.train_items), self.num_traits, device=self.votes.device)
        total.index_add_(0, rows, self.votes.float())
        count = torch.bincount(rows, minlength=len(self.train_items)).clamp_min(1).unsqueeze(1)
        return total / count


def cutpoints(levels: int) -> torch.Tensor:
    """Thresholds :math:`c_j = j - (L - 2)/2`, ``j = 0 … L-2``: unit-spaced and centred on 0 (−1, 0, 1 for L = 4)."""
    return torch.arange(levels - 1, dtype=torch.float32) - (levels - 2) / 2


def trait_covariance(traits: int, correlation: float) -> torch.Tensor:
    """:math:`\\Sigma = (1 - \\rho) I + \\rho \\mathbf 1 \\mathbf 1^\\top`: unit variances, correlation ρ."""
    return (1 - correlation) * torch.eye(traits) + correlation * torch.ones(traits, traits)


def zipf_activity(count: int, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """:math:`P(v) \\propto r_v^{-a}` with a random rank :math:`r_v` per voter: a few voters cast most votes."""
    ranks = torch.randperm(count, generator=generator).float() + 1
    weights = ranks.pow(-exponent)
    return weights / weights.sum()


def draw_voters(count: int, traits: int, *, leniency_std: float, scale_std: float, noise_low: float,
                noise_high: float, random_share: float, zipf_exponent: float,
                generator: torch.Generator) -> Voters:
    """Voters with leniency :math:`b_v \\sim N(0, \\sigma_b^2 I)`, scale :math:`\\log s_v \\sim N(0, \\sigma_s^2)`,
    noise :math:`\\sigma_v \\sim U[\\sigma_{lo}, \\sigma_{hi}]`, Zipf activity; ``random_share`` vote at random."""
    bias = leniency_std * torch.randn(count, traits, generator=generator)
    scale = torch.exp(scale_std * torch.randn(count, generator=generator))
    noise = noise_low + (noise_high - noise_low) * torch.rand(count, generator=generator)
    random = torch.rand(count, generator=generator) < random_share
    return Voters(bias, scale, noise, random, zipf_activity(count, zipf_exponent, generator))


def identical_voters(count: int, traits: int, *, noise: float, zipf_exponent: float,
                     generator: torch.Generator) -> Voters:
    """The control: every voter has :math:`b_v = 0`, :math:`s_v = 1` and the same noise; nobody votes at random."""
    return Voters(torch.zeros(count, traits), torch.ones(count), torch.full((count,), float(noise)),
                  torch.zeros(count, dtype=torch.bool), zipf_activity(count, zipf_exponent, generator))


def latent_mean(traits: torch.Tensor, voters: Voters) -> torch.Tensor:
    """:math:`\\mu_{vik} = s_v t_{ik} + b_{vk}` for every voter and photo: shape (V, N, K)."""
    return voters.scale.view(-1, 1, 1) * traits.unsqueeze(0) + voters.bias.unsqueeze(1)


def vote_probabilities(mu: torch.Tensor, sigma: torch.Tensor, levels: int) -> torch.Tensor:
    """Ordinal probit: :math:`P(v \\ge l) = \\Phi((\\mu - c_l)/\\sigma)`, so
    :math:`P(v = l) = P(v \\ge l) - P(v \\ge l + 1)`; returns (..., L)."""
    c = cutpoints(levels).to(mu.device)
    at_least = torch.special.ndtr((mu.unsqueeze(-1) - c) / sigma.unsqueeze(-1))
    ones, zeros = torch.ones_like(at_least[..., :1]), torch.zeros_like(at_least[..., :1])
    upper = torch.cat([ones, at_least], -1)
    return upper - torch.cat([at_least, zeros], -1)


def expected_votes(traits: torch.Tensor, voters: Voters, levels: int) -> torch.Tensor:
    """:math:`E[v_{vik}] = \\sum_{l=1}^{L-1} \\Phi((\\mu_{vik} - c_l)/\\sigma_v)`, and :math:`(L-1)/2` for a
    random voter: shape (V, N, K)."""
    mu = latent_mean(traits, voters)
    sigma = voters.noise.view(-1, 1, 1).expand_as(mu)
    expected = torch.special.ndtr((mu.unsqueeze(-1) - cutpoints(levels)) / sigma.unsqueeze(-1)).sum(-1)
    return torch.where(voters.random.view(-1, 1, 1), torch.full_like(expected, (levels - 1) / 2), expected)


def ground_truth(traits: torch.Tensor, voters: Voters, levels: int) -> torch.Tensor:
    """:math:`g_{ik} = \\frac{1}{V} \\sum_v E[v_{vik}]`: the expected vote over all voters, (N, K)."""
    return expected_votes(traits, voters, levels).mean(0)


def cast_votes(traits: torch.Tensor, voters: Voters, items: torch.Tensor, who: torch.Tensor, levels: int,
               generator: torch.Generator) -> torch.Tensor:
    """One vote per (photo ``items[j]``, voter ``who[j]``) pair: :math:`v = \\#\\{l : y > c_l\\}`, shape (J, K)."""
    t, scale = traits[items], voters.scale[who].unsqueeze(1)
    y = scale * t + voters.bias[who] + voters.noise[who].unsqueeze(1) * torch.randn(t.shape, generator=generator)
    votes = (y.unsqueeze(-1) > cutpoints(levels)).sum(-1)
    noise = torch.randint(0, levels, votes.shape, generator=generator)
    return torch.where(voters.random[who].unsqueeze(1), noise, votes)


def choose_voters(activity: torch.Tensor, items: int, per_item: int, generator: torch.Generator) -> torch.Tensor:
    """``per_item`` distinct voters for each of ``items`` photos, drawn with probability ``activity``: (items, per_item)."""
    return torch.multinomial(activity.expand(items, -1), per_item, replacement=False, generator=generator)


def render_photos(traits: torch.Tensor, *, feature_dim: int, nuisance_dim: int, noise: float,
                  generator: torch.Generator) -> torch.Tensor:
    """The "photo": :math:`x = \\tanh(A[t; z]) + \\eta`, nuisance :math:`z \\sim N(0, I)`, pixel noise
    :math:`\\eta \\sim N(0, \\text{noise}^2)`, a fixed random mixing :math:`A`; traits are recoverable, not given."""
    count, k = traits.shape
    nuisance = torch.randn(count, nuisance_dim, generator=generator)
    mixing = torch.randn(k + nuisance_dim, feature_dim, generator=generator) / (k + nuisance_dim) ** 0.5
    clean = torch.tanh(1.5 * torch.cat([traits, nuisance], 1) @ mixing)
    return clean + noise * torch.randn(count, feature_dim, generator=generator)


def simulate(config, seed: int, *, control: bool = False) -> tuple[VoteData, Voters, torch.Tensor]:
    """The data of one experiment drawn by ``seed``: (votes and truth, the voters, the photos' true traits)."""
    generator = torch.Generator().manual_seed(seed)
    k, n = config.num_traits, config.n_items
    chol = torch.linalg.cholesky(trait_covariance(k, config.trait_correlation))
    traits = torch.randn(n, k, generator=generator) @ chol.T
    features = render_photos(traits, feature_dim=config.feature_dim, nuisance_dim=config.nuisance_dim,
                             noise=config.feature_noise, generator=generator)
    if control:
        voters = identical_voters(config.n_voters, k, noise=(config.noise_low + config.noise_high) / 2,
                                  zipf_exponent=config.zipf_exponent, generator=generator)
    else:
        voters = draw_voters(config.n_voters, k, leniency_std=config.leniency_std, scale_std=config.scale_std,
                             noise_low=config.noise_low, noise_high=config.noise_high,
                             random_share=config.noise_voter_share, zipf_exponent=config.zipf_exponent,
                             generator=generator)
    order = torch.randperm(n, generator=generator)
    test_items, train_items = order[:config.test_items].sort().values, order[config.test_items:].sort().values
    chosen = choose_voters(voters.activity, len(train_items), config.votes_max, generator)
    counts = torch.randint(config.votes_min, config.votes_max + 1, (len(train_items),), generator=generator)
    keep = torch.arange(config.votes_max).unsqueeze(0) < counts.unsqueeze(1)
    vote_items = train_items.unsqueeze(1).expand_as(chosen)[keep]
    vote_voters = chosen[keep]
    votes = cast_votes(traits, voters, vote_items, vote_voters, config.levels, generator)
    heldout_who = choose_voters(voters.activity, len(test_items), config.heldout_votes, generator)
    heldout_items = test_items.unsqueeze(1).expand_as(heldout_who)
    heldout = cast_votes(traits, voters, heldout_items.flatten(), heldout_who.flatten(), config.levels, generator)
    truth = ground_truth(traits, voters, config.levels)
    activity = torch.bincount(vote_voters, minlength=voters.count)
    standard = activity.argsort(descending=True, stable=True)[:config.n_standard].sort().values
    data = VoteData(features, train_items, test_items, vote_items, vote_voters, votes, truth,
                    heldout.view(len(test_items), config.heldout_votes, k), truth[test_items], voters.count,
                    standard, config.levels)
    return data, voters, traits
