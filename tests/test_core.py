"""The shared machinery: configs, seeding, devices, checkpoints, run records, augmentation."""
import dataclasses
import json

import pytest
import torch

from rfy.augment import random_crop, random_flip
from rfy.checkpoint import RunState, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from rfy.config import RunConfig, check_positive
from rfy.contract import Chapter
from rfy.errors import ConfigError
from rfy.results import RunRecord, latest_record, make_record, read_records, write_record
from rfy.runtime import seed_everything, select_device
from rfy.tables import PaperNumber, markdown_table, reproduction_rows


@dataclasses.dataclass(frozen=True)
class ToyConfig(RunConfig):
    full_preset = {"width": 64}
    width: int = 8

    def validate(self):
        check_positive("width", self.width, integer=True)


def toy_chapter(paper_numbers: list[PaperNumber]) -> Chapter:
    """The toy config as a chapter, with ``paper_numbers`` for the reproduction table."""
    return Chapter("toy", 1, "Toy", "01_toy", ToyConfig, run=lambda config, state: {}, claims=lambda metrics: [],
                   paper_numbers=paper_numbers)


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
    saved = json.loads((tmp_path / "run" / "state.json").read_text())
    assert len(calls) == 1 and resumed.elapsed_s >= saved["elapsed_s"]
    fresh = RunState(tmp_path / "run", resume=False)
    assert fresh.stage("one", lambda ckpt: {"m": 3.0}) == {"m": 3.0}


def test_run_record_round_trip_and_table(tmp_path):
    config = ToyConfig.full(seed=2)
    record = make_record("toy", "full-seed2", config, {"error": 0.5}, wall_time_s=12.34)
    assert record.mode == "full" and record.seed == 2 and record.config["width"] == 64
    assert {"python", "torch"} <= set(record.versions) and record.hardware["cpu_count"] > 0
    assert record.preset is True and record.claims == []
    path = write_record(record, tmp_path)
    assert json.loads(path.read_text())["metrics"] == {"error": 0.5}
    assert read_records("toy", tmp_path) == [record]
    assert RunRecord.from_json(record.to_json()) == record
    assert latest_record("toy", "reduced", tmp_path) is None
    rows = reproduction_rows(toy_chapter([PaperNumber("Error", "error", 0.4, "key", data="MNIST")]), tmp_path)
    assert rows[0]["ours"] == 0.5 and rows[0]["runs"] == 1 and rows[0]["paper"] == 0.4
    table = markdown_table(rows)
    assert "| toy | Error | MNIST | 0.40 {cite}`key` | 0.50 | 1 |" in table


def test_old_records_without_claims_still_load(tmp_path):
    record = make_record("toy", "full-seed2", ToyConfig.full(seed=2), {"error": 0.5}, wall_time_s=1)
    old = json.loads(record.to_json())
    del old["claims"], old["preset"]
    old["added_later"] = 1
    assert RunRecord.from_json(json.dumps(old)).claims == []


def write_toy(root, seed, mode="reduced", **fields):
    config = ToyConfig.for_mode(mode, seed=seed, **fields)
    write_record(make_record("toy", f"{mode}-seed{seed}-{len(fields)}", config,
                             {"error": 1.0 + seed + 100 * len(fields)}, wall_time_s=1), root)


def test_table_counts_only_preset_records_and_says_what_it_left_out(tmp_path):
    for seed in range(3):
        write_toy(tmp_path, seed)
    write_toy(tmp_path, 7, width=3)  # a modified run: must not count
    numbers = [PaperNumber("Error", "error", None, "key", data="8x8 digits", mode="reduced", decimals=1),
               PaperNumber("Error", "error", 0.4, "key", data="MNIST")]
    rows = reproduction_rows(toy_chapter(numbers), tmp_path)
    assert rows[0]["runs"] == 3 and rows[0]["ours"] == 2.0 and rows[0]["left_out"] == 1
    assert rows[0]["left_out_fields"] == ["width"]
    table = markdown_table(rows, cite=False)
    assert "| toy | Error | 8x8 digits | — | 2.0 ± 1.0 | 3¹ |" in table
    assert "| toy | Error | MNIST | 0.40 | not run yet | — |" in table
    assert "1 record(s) left out because their config differs from the preset (width)" in table


def test_old_style_paper_numbers_still_render(tmp_path):
    rows = reproduction_rows(toy_chapter([PaperNumber("Error", "error", None, "key", note="see the paper")]), tmp_path)
    table = markdown_table(rows)
    assert "| toy | Error¹ | — | — | not run yet | — |" in table and "1. see the paper" in table


def test_a_malformed_record_is_skipped_with_a_warning_naming_it(tmp_path):
    write_toy(tmp_path, 0)
    bad = tmp_path / "toy" / "broken.json"
    bad.write_text("{not json")
    with pytest.warns(UserWarning, match="broken.json"):
        assert len(read_records("toy", tmp_path)) == 1


def test_claim_summary_counts_seeds_and_spread(tmp_path):
    from rfy.claims import at_most
    from rfy.tables import claim_summary, claims_sweep_table, preset_records

    for seed in range(4):
        write_toy(tmp_path, seed)
    records, _ = preset_records("toy", "reduced", tmp_path, config_class=ToyConfig)
    summary = claim_summary(records, lambda m: [at_most("small", "error is small", m["error"], 3.5, decimals=1)])
    assert summary[0]["passed"] == 3 and summary[0]["run"] == 4 and summary[0]["failed_seeds"] == [3]
    assert summary[0]["median"] == 2.5 and (summary[0]["min"], summary[0]["max"]) == (1.0, 4.0)
    assert "| error is small | ≤ 3.5 | 3/4 (fails on seed 3) | 2.5 | 1.0 to 4.0 |" in claims_sweep_table(summary)


def test_results_dir_falls_back_to_the_package_checkout(tmp_path, monkeypatch):
    from pathlib import Path

    import rfy
    from rfy.results import results_dir

    monkeypatch.delenv("RFY_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert results_dir() == Path(rfy.__file__).resolve().parent.parent / "results"
    monkeypatch.setenv("RFY_RESULTS", str(tmp_path / "mine"))
    assert results_dir() == tmp_path / "mine"


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


# Generic config checks (every chapter gets them from RunConfig) ---------------------------------

@dataclasses.dataclass(frozen=True)
class TypedConfig(RunConfig):
    flag: bool = False
    rate: float = 0.5
    sizes: tuple[int, ...] = (4, 8)
    pair: tuple[float, float] = (0.1, 0.2)
    maybe: int | None = None
    name: str = "a"


@pytest.mark.parametrize("kwargs, message", [
    ({"flag": 1}, "flag must be True or False, got 1"),
    ({"flag": "no"}, "flag must be True or False, got 'no'"),
    ({"rate": float("inf")}, "rate must be finite"),
    ({"rate": float("nan")}, "rate must be finite"),
    ({"rate": "0.1"}, "rate must be a finite number"),
    ({"sizes": 128}, r"sizes must be a tuple of integers, e.g. \(1,\), got 128"),
    ({"sizes": (1, 2.5)}, "sizes must be a tuple of integers"),
    ({"pair": (0.1,)}, "pair must be a tuple"),
    ({"pair": (0.1, float("inf"))}, "pair must be finite"),
    ({"maybe": "x"}, "maybe must be an integer or None"),
    ({"name": 3}, "name must be a string"),
    ({"device": "cuda:abc"}, "device must be one of auto, cpu, cuda, cuda:N"),
    ({"seed": 2**64}, "seed must be an integer from 0 to"),
    ({"seed": True}, "seed must be an integer"),
])
def test_generic_type_checks_name_the_field_and_the_allowed_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TypedConfig(**kwargs)


def test_lists_become_tuples_and_ints_pass_as_floats():
    config = TypedConfig(sizes=[1, 2], pair=[1, 2], rate=1, maybe=3, device="cuda:1")
    assert config.sizes == (1, 2) and config.pair == (1, 2) and config.rate == 1
    assert config.is_preset() is False and TypedConfig(seed=5, device="cpu").is_preset()
    assert config.differences(TypedConfig().to_dict(), ignore=("device",)) == {
        "maybe": (None, 3), "pair": ((0.1, 0.2), (1, 2)), "rate": (0.5, 1), "sizes": ((4, 8), (1, 2))}


# Checkpoints: only tensors and plain values load ----------------------------------------------------

class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_naming_the_file(tmp_path):
    from rfy.errors import CorruptFileError

    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"model": RunsCode(marker)}, path)
    with pytest.raises(CorruptFileError, match=f"{path}.*refused unread.*without --resume"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_truncated_checkpoint_names_the_file_and_how_to_start_over(tmp_path):
    from rfy.errors import CorruptFileError

    path = tmp_path / "stage.pt"
    save_checkpoint(path, {"x": torch.arange(100)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CorruptFileError, match=f"{path}.*without --resume"):
        load_checkpoint(path)


def test_checkpoints_of_real_training_state_load_with_weights_only(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], 0.1)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": rng_state(), "history": [{"step": 1, "error": 0.5}], "epoch": 3, "name": "x"}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    scheduler.load_state_dict(loaded["scheduler"])
    optimizer.load_state_dict(loaded["optimizer"])
    assert loaded["history"] == state["history"] and loaded["epoch"] == 3


def test_saved_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from rfy.files import atomic_write_text, default_file_mode

    save_checkpoint(tmp_path / "c.pt", {"x": 1})
    atomic_write_text(tmp_path / "t.json", "{}")
    for name in ("c.pt", "t.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == default_file_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "t.json"]


# RunState: config fingerprint, deleting only its own files ------------------------------------------

def test_resume_refuses_a_changed_config_naming_the_fields(tmp_path):
    RunState(tmp_path / "run", resume=False, config=ToyConfig.reduced(width=4))
    with pytest.raises(ConfigError, match=r"width 4 -> 5.*only device may change"):
        RunState(tmp_path / "run", resume=True, config=ToyConfig.reduced(width=5))
    resumed = RunState(tmp_path / "run", resume=True, config=ToyConfig.reduced(width=4, device="cpu"))
    assert resumed.config["device"] == "cpu"


def test_starting_over_deletes_only_the_files_of_the_run(tmp_path):
    state = RunState(tmp_path / "run", resume=False)
    state.stage("one", lambda ckpt: save_checkpoint(ckpt, {"x": 1}) or {"m": 1.0})
    (tmp_path / "run" / "notes.txt").write_text("mine")
    RunState(tmp_path / "run", resume=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["notes.txt", "state.json"]


def test_a_folder_that_is_not_a_run_is_never_cleared(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("x")
    RunState(tmp_path / "photos", resume=False).stage("one", lambda ckpt: {"m": 1.0})
    RunState(tmp_path / "photos", resume=False)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["cat.jpg", "state.json"]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "one.pt").write_text("not ours")
    with pytest.raises(ConfigError, match=r"holds .pt files but no state.json"):
        RunState(tmp_path / "models", resume=False)
    assert (tmp_path / "models" / "one.pt").exists()


def test_stage_names_must_be_file_names(tmp_path):
    state = RunState(tmp_path / "run", resume=False)
    with pytest.raises(ConfigError, match="stage name"):
        state.stage("../x", lambda ckpt: {})


def test_a_corrupt_state_json_is_not_taken_for_rfy_s_and_nothing_is_deleted(tmp_path):
    from rfy.errors import CorruptFileError

    state = RunState(tmp_path / "run", resume=False)
    state.stage("one", lambda ckpt: save_checkpoint(ckpt, {"x": 1}) or {"m": 1.0})
    (tmp_path / "run" / "state.json").write_text("{trunc")  # rfy writes atomically: this is not its file
    for resume in (True, False):
        with pytest.raises(CorruptFileError, match="state.json was not written by rfy.*move the folder away"):
            RunState(tmp_path / "run", resume=resume)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["one.pt", "state.json"]


def test_starting_over_also_deletes_checkpoints_a_stage_kept_beside_its_own(tmp_path):
    state = RunState(tmp_path / "run", resume=False)

    def two_models(ckpt):
        save_checkpoint(state.workdir / "odenet.pt", {"x": 1})
        save_checkpoint(state.workdir / "resnet6.pt", {"x": 2})
        raise KeyboardInterrupt  # killed mid-stage

    with pytest.raises(KeyboardInterrupt):
        state.stage("classifiers", two_models)
    (tmp_path / "run" / "sub").mkdir()
    RunState(tmp_path / "run", resume=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["state.json", "sub"]


def test_stages_marked_started_before_running_elsewhere_are_cleared_on_start_over(tmp_path):
    state = RunState(tmp_path / "run", resume=False)
    state.mark_started(["m2-seed0", "m2-seed1"])
    save_checkpoint(state.checkpoint_path("m2-seed0"), {"x": 1})  # as a worker process would, then killed
    (tmp_path / "run" / "notes.pt.txt").write_text("not a checkpoint")
    assert RunState(tmp_path / "run", resume=True).started == ["m2-seed0", "m2-seed1"]
    RunState(tmp_path / "run", resume=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["notes.pt.txt", "state.json"]
    with pytest.raises(ConfigError, match="stage name"):
        state.mark_started(["ok", "../x"])


def test_device_data_moves_every_tensor_field_and_shares_the_rest():
    from rfy.runtime import DeviceData

    @dataclasses.dataclass(frozen=True)
    class Pair(DeviceData):
        images: torch.Tensor
        labels: torch.Tensor
        names: tuple[str, ...]

    pair = Pair(torch.zeros(2, 3, dtype=torch.float64), torch.arange(2), ("a", "b"))
    moved = pair.to("meta")
    assert type(moved) is Pair and moved.images.device.type == moved.labels.device.type == "meta"
    assert moved.names is pair.names and pair.images.device.type == "cpu" and moved.images.shape == (2, 3)


def test_resumable_loop_restores_parts_random_streams_and_values(tmp_path):
    from rfy.checkpoint import ResumableLoop

    def parts():
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)
        return model, torch.optim.Adam(model.parameters()), torch.Generator().manual_seed(5)

    model, optimizer, generator = parts()
    loop = ResumableLoop(tmp_path / "loop.pt", {"model": model, "optimizer": optimizer, "generator": generator},
                         rng=True)
    assert loop.resume() is None
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    torch.randn(3, generator=generator)
    loop.save(step=1, history=[0.5])
    expected = (torch.rand(2), torch.rand(2, generator=generator))

    fresh_model, fresh_optimizer, fresh_generator = parts()
    again = ResumableLoop(tmp_path / "loop.pt", {"model": fresh_model, "optimizer": fresh_optimizer,
                                                  "generator": fresh_generator}, rng=True)
    assert again.resume() == {"step": 1, "history": [0.5]}
    assert torch.equal(fresh_model.weight, model.weight)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 1
    assert torch.equal(torch.rand(2), expected[0])
    assert torch.equal(torch.rand(2, generator=fresh_generator), expected[1])
    unsaved = ResumableLoop(None, {"model": model})
    unsaved.save(step=2)
    assert unsaved.resume() is None
    with pytest.raises(ValueError, match="reserved"):
        ResumableLoop(None, {"rng": model})

def test_git_commit_of_a_copied_tree_is_the_named_one_marked_as_a_copy(tmp_path, monkeypatch):
    from rfy.results import git_commit

    monkeypatch.delenv("RFY_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    monkeypatch.setenv("RFY_GIT_COMMIT", "abc123")
    assert git_commit(tmp_path) == "abc123-copy"


def test_run_seeds_of_sweep_seeds_zero_to_nine_are_disjoint_blocks():
    @dataclasses.dataclass(frozen=True)
    class Repeated(RunConfig):
        repeats: int = 3

    blocks = [Repeated(seed=seed).seeds for seed in range(10)]
    assert blocks[0] == (0, 1, 2) and blocks[1] == (3, 4, 5) and blocks[9] == (27, 28, 29)
    assert len({inner for block in blocks for inner in block}) == 30  # no inner run shared between sweep seeds
    assert ToyConfig(seed=4).seeds == (4,) and ToyConfig(seed=4).run_seeds(2) == (8, 9)
    assert Repeated(seed=2**31 - 1).seeds == (2**31 - 3, 2**31 - 2, 2**31 - 1)  # below 2**31, like every seed
