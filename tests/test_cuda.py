"""Checks that need a CUDA GPU (marked ``cuda``: skipped without one; ``rfy campaign`` runs them on a lent GPU)."""
from __future__ import annotations

import pytest
import torch

from rfy.checkpoint import RunState
from rfy.results import record_run
from rfy.runtime import hardware_info, select_device


@pytest.mark.cuda
def test_a_cuda_device_is_selected_and_named() -> None:
    device = select_device("cuda")
    info = hardware_info(device)
    assert device.type == "cuda" and info["device"].startswith("cuda") and info["gpu"] == torch.cuda.get_device_name()


@pytest.mark.cuda
def test_a_run_on_cuda_records_the_gpu(tmp_path) -> None:
    """A tiny reduced run of chapter 1 on the GPU: its record says cuda and names the GPU."""
    import rfy.neural_ode as chapter

    config = chapter.Config.reduced(device="cuda", **_tiny_neural_ode())
    metrics = chapter.CHAPTER.run(config, RunState(tmp_path / "run", resume=False, config=config))
    record, _ = record_run(chapter.CHAPTER, "cuda-test", config, metrics, wall_time_s=1.0, root=tmp_path)
    assert record.hardware["device"].startswith("cuda") and record.hardware["gpu"] == torch.cuda.get_device_name()


def _tiny_neural_ode() -> dict:
    """The contract test's settings for chapter 1 (seconds on a CPU)."""
    from test_neural_ode import CONTRACT_SETTINGS

    return dict(CONTRACT_SETTINGS)
