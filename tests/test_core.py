"""The shared machinery: configs, seeding, devices, checkpoints, run records, augmentation."""
import dataclasses
import json

import pytest
import torch

from rfy.augment import random_crop, random_flip
from rfy.checkpoint import RunState, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from rfy.config import RunConfig, check_positive
from rfy.errors import ConfigError
from rfy.results import (PaperNumber, RunRecord, latest_record, make_record, markdown_table, read_records,
                         reproduction_rows, write_record)
from rfy.runtime import seed_everything, select_device


@dataclasses.dataclass(frozen=True)
class ToyConfig(RunConfig):
    full_preset = {"width": 64}
    width: int = 8

    def validate(self):
        check_positive("width", self.width, integer=True)


def test_presets_and_overrides():
    assert ToyConfig.reduced().width == 8
    full = ToyConfig.full(seed=3)
    assert (full.mode, full.width, full.seed) == ("full", 64, 3)
    assert ToyConfig.for_mode("full", width=16).width == 16


@pytest.mark.parametrize("kwargs, field", [
    ({"mode": "fast"}, "mode"), ({"seed": -1}, "seed"), ({"device": "tpu"}, "device"),
    ({"width": 0}, "width"), ({"width": 2.5}, "width"),
])
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ToyConfig(**kwargs)


def test_unknown_override_lists_allowed_fields():
    with pytest.raises(ConfigError, match="widht.*width"):
        ToyConfig.for_mode("reduced", widht=3)
    with pytest.raises(ConfigError, match="mode"):
        ToyConfig.for_mode("huge")


def test_seed_everything_repeats_every_stream():
    import random

    import numpy as np
    seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-2)


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="device must be one of"):
        select_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            select_device("cuda")


def test_checkpoint_round_trip_and_rng(tmp_path):
    path = tmp_path / "a" / "ckpt.pt"
    assert load_checkpoint(path) is None
    seed_everything(1)
    state = rng_state()
    expected = torch.rand(3)
    save_checkpoint(path, {"rng": state, "x": torch.arange(3)})
    loaded = load_checkpoint(path)
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(loaded["x"], torch.arange(3))
    assert not list(path.parent.glob("*.tmp"))


def test_run_state_skips_finished_stages_on_resume(tmp_path):
    calls = []
    state = RunState(tmp_path / "run", resume=False)
    assert state.stage("one", lambda ckpt: calls.append(ckpt) or {"m": 1.0}) == {"m": 1.0}
    resumed = RunState(tmp_path / "run", resume=True)
    assert resumed.stage("one", lambda ckpt: calls.append(ckpt) or {"m": 2.0}) == {"m": 1.0}
    assert len(calls) == 1 and resumed.elapsed_s >= 0
    fresh = RunState(tmp_path / "run", resume=False)
    assert fresh.stage("one", lambda ckpt: {"m": 3.0}) == {"m": 3.0}


def test_run_record_round_trip_and_table(tmp_path):
    config = ToyConfig.full(seed=2)
    record = make_record("toy", "full-seed2", config, {"error": 0.5}, wall_time_s=12.34)
    assert record.mode == "full" and record.seed == 2 and record.config["width"] == 64
    assert {"python", "torch"} <= set(record.versions) and record.hardware["cpu_count"] > 0
    path = write_record(record, tmp_path)
    assert json.loads(path.read_text())["metrics"] == {"error": 0.5}
    assert read_records("toy", tmp_path) == [record]
    assert RunRecord.from_json(record.to_json()) == record
    assert latest_record("toy", "reduced", tmp_path) is None
    rows = reproduction_rows("toy", [PaperNumber("Error", "error", 0.4, "key")], tmp_path)
    assert rows[0]["full"] == 0.5 and rows[0]["reduced"] is None and rows[0]["paper"] == 0.4
    table = markdown_table(rows)
    assert "| 0.5 |" in table and "not run yet" in table and "{cite}`key`" in table


def test_random_crop_takes_windows_of_the_padded_image():
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    gen = torch.Generator().manual_seed(0)
    cropped = random_crop(images, 2, mode="zeros", generator=gen)
    assert cropped.shape == images.shape and cropped.dtype == images.dtype
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(cropped[b], window) for window in windows)
    again = random_crop(images, 2, mode="zeros", generator=torch.Generator().manual_seed(0))
    assert torch.equal(cropped, again)
    assert torch.equal(random_crop(images, 0), images)
    with pytest.raises(ValueError, match="mode"):
        random_crop(images, 2, mode="wrap")


def test_random_flip_mirrors_some_images():
    images = torch.rand(64, 1, 4, 4)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    kept = (flipped == images).flatten(1).all(1)
    assert bool((mirrored | kept).all()) and 10 < int(mirrored.sum()) < 54


def test_torch_threads_pins_and_restores_the_thread_count():
    import torch

    from rfy.runtime import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

    @torch_threads(1)
    def inside() -> int:
        return torch.get_num_threads()

    assert inside() == 1 and torch.get_num_threads() == before


def test_git_commit_is_dirty_for_code_changes_but_not_for_run_records(tmp_path):
    import subprocess

    from rfy.results import git_commit

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "results" / "run.json").write_text('{"a": 1}')
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path).endswith("-dirty")
