"""The torchvision trunks of chapters 6 and 8: features out, random weights offline, clear errors."""
from __future__ import annotations

import sys
import urllib.error

import pytest
import torch

from rfy.errors import DatasetNotAvailableError
from rfy.pretrained import torchvision_trunk


def test_a_trunk_without_pretrained_weights_maps_images_to_pooled_features() -> None:
    trunk = torchvision_trunk("resnet18", pretrained=False, needed_for="a test").eval()
    with torch.no_grad():
        features = trunk(torch.rand(2, 3, 64, 64))
    assert features.shape == (2, 512) and features.isfinite().all()


def test_offline_pretrained_weights_name_the_file_and_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import torch.hub
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline, raising=False)
    with pytest.raises(DatasetNotAvailableError) as error:
        torchvision_trunk("resnet18", pretrained=True, needed_for="a test")
    message = str(error.value)
    assert "resnet18-" in message and str(tmp_path) in message and "checkpoints" in message


def test_without_torchvision_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match="chapter 6 needs torchvision's resnet18: pip install torchvision"):
        torchvision_trunk("resnet18", pretrained=True, needed_for="chapter 6")
