"""The Bradley–Terry preference model and its cross-entropy loss, with the paper's noise correction."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def preference_probability(returns: torch.Tensor, error_rate: float = 0.0) -> torch.Tensor:
    r"""$\hat P[\sigma^1 \succ \sigma^2] = (1 - \epsilon)\,\dfrac{\exp \sum \hat r(\sigma^1)}
    {\exp \sum \hat r(\sigma^1) + \exp \sum \hat r(\sigma^2)} + \dfrac{\epsilon}{2}$.

    ``returns[..., 0]`` and ``returns[..., 1]`` are the predicted returns $\sum_t \hat r(o_t, a_t)$ of the
    two clips. With $\epsilon = 0.1$ this is the paper's $0.9 \hat P + 0.05$: a labeller who answers at
    random 10% of the time is never certain, so one surprising label cannot cost an infinite loss.
    """
    return torch.exp(log_preference_probability(returns, error_rate))


def log_preference_probability(returns: torch.Tensor, error_rate: float = 0.0) -> torch.Tensor:
    r"""$\log \hat P[\sigma^1 \succ \sigma^2]$, computed stably as
    $\operatorname{logaddexp}\big(\log(1-\epsilon) + \log\operatorname{sigmoid}(R^1 - R^2),\
    \log\tfrac{\epsilon}{2}\big)$."""
    if not 0 <= error_rate < 1:
        raise ValueError(f"error_rate must be in [0, 1), got {error_rate!r}")
    log_bt = F.logsigmoid(returns[..., 0] - returns[..., 1])
    if error_rate == 0:
        return log_bt
    return torch.logaddexp(log_bt + math.log1p(-error_rate), torch.full_like(log_bt, math.log(error_rate / 2)))


def preference_loss(returns: torch.Tensor, labels: torch.Tensor, error_rate: float = 0.0) -> torch.Tensor:
    r"""$\operatorname{loss}(\hat r) = -\sum \mu(1) \log \hat P[\sigma^1 \succ \sigma^2]
    + \mu(2) \log \hat P[\sigma^2 \succ \sigma^1]$.

    ``returns`` is ``[..., 2]`` (predicted returns of the pair), ``labels`` the distributions
    $\mu \in \{(1, 0), (0, 1), (\tfrac12, \tfrac12)\}$ of the same shape. Returns the mean over pairs.
    """
    if returns.shape != labels.shape or returns.shape[-1] != 2:
        raise ValueError(f"returns and labels must both have shape [..., 2], got {tuple(returns.shape)} "
                         f"and {tuple(labels.shape)}")
    first = log_preference_probability(returns, error_rate)
    second = log_preference_probability(returns.flip(-1), error_rate)
    return -(labels[..., 0] * first + labels[..., 1] * second).mean()
