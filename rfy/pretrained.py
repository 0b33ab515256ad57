"""ImageNet trunks from torchvision for the full modes of chapters 6 and 8, with errors a reader can act on.

torchvision downloads pretrained weights once into ``$TORCH_HOME/hub/checkpoints`` (default
``~/.cache/torch``). Without a network that download fails deep inside ``urllib``; here it becomes one
``DatasetNotAvailableError`` naming the file and the folder to put it in. ``pretrained=False`` builds the
same network with random weights and downloads nothing (what ``rfy estimate`` and the full-size tests use).
"""
from __future__ import annotations

import urllib.error

from torch import nn

from rfy.errors import DatasetNotAvailableError


def torchvision_trunk(name: str, *, pretrained: bool, needed_for: str) -> nn.Module:
    """torchvision's ``name`` (``resnet18``, ``resnet50``, …) with its classifier replaced by the identity, so
    it maps images to pooled features; ImageNet weights when ``pretrained``, else random ones. ``needed_for``
    completes the sentence of the error when torchvision is missing."""
    try:
        import torchvision
    except ImportError as error:
        raise ImportError(f"{needed_for} needs torchvision's {name}: pip install torchvision "
                          f"(the reduced mode needs nothing extra)") from error
    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except (urllib.error.URLError, OSError) as error:
        from torch.hub import get_dir

        file_name = weights.url.rsplit("/", 1)[-1]
        raise DatasetNotAvailableError(
            f"the pretrained {name} weights could not be downloaded ({error}); download {weights.url} "
            f"and put {file_name} in {get_dir()}/checkpoints, or run where the network is reachable") from None
    model.fc = nn.Identity()
    return model
