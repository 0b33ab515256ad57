"""The fault suite: the command line used as a careful user and an attacker would (issue 10).

Bad run names, crafted and corrupt files, resuming with another config, unwritable folders, absent
devices and malformed input must each give one ``error: …`` line and exit status 2, must never
remove anything outside a run's own folder, and must never leave a half-written file.

The CLI runs a toy chapter registered for the test (this module: ``Config``, ``run_experiment``,
``claims``, ``PAPER_NUMBERS``), so every case takes milliseconds; two cases run ``python -m rfy``
in a subprocess, exactly as a user types it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rfy.chapters
from rfy.checkpoint import RunState, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from rfy.claims import at_most
from rfy.cli import main
from rfy.config import RunConfig, check_positive
from rfy.contract import Chapter
from rfy.tables import PaperNumber

ROOT = Path(__file__).resolve().parents[1]


# The toy chapter --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    full_preset = {"steps": 6}
    steps: int = 4
    lr: float = 0.1
    sizes: tuple[int, ...] = (2, 3)
    flag: bool = False

    def validate(self) -> None:
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)


INTERRUPT_AT: list[int] = []  # a step at which the toy run "is killed" (KeyboardInterrupt)


def train(config: Config, checkpoint: Path) -> dict[str, float]:
    """A tiny resumable loop: one parameter, checkpointed every step with its optimizer and RNG."""
    weight = torch.nn.Parameter(torch.zeros(()))
    optimizer = torch.optim.SGD([weight], lr=config.lr)
    saved, start = load_checkpoint(checkpoint), 0
    if saved:
        weight.data.copy_(saved["weight"])
        optimizer.load_state_dict(saved["optimizer"])
        set_rng_state(saved["rng"])
        start = saved["step"]
    for step in range(start, config.steps):
        if INTERRUPT_AT and step == INTERRUPT_AT[0]:
            raise KeyboardInterrupt
        loss = (weight - 1.0 - 0.01 * torch.randn(())) ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        save_checkpoint(checkpoint, {"weight": weight.detach(), "optimizer": optimizer.state_dict(),
                                     "rng": rng_state(), "step": step + 1})
    return {"distance": float(abs(weight.detach() - 1.0)), "steps_done": float(config.steps - start)}


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    return dict(state.stage("train", lambda checkpoint: train(config, checkpoint)))


def claims(metrics: dict[str, float]) -> list:
    return [at_most("close", "the weight ends near 1", metrics["distance"], 0.9, why="four SGD steps")]


PAPER_NUMBERS = [PaperNumber("Distance", "distance", None, "key", data="toy data", mode="reduced", decimals=3)]
CHAPTER = Chapter("toy", 9, "Toy", "09_toy", Config, run_experiment, claims, PAPER_NUMBERS)


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    """Folders for data, runs and results, and the toy chapter registered with the CLI."""
    monkeypatch.setitem(sys.modules, "toy", sys.modules[__name__])
    monkeypatch.setattr(rfy.chapters, "CHAPTER_MODULES", [*rfy.chapters.CHAPTER_MODULES, "toy"])
    for name in ("RFY_DATA", "RFY_RUNS", "RFY_RESULTS"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    INTERRUPT_AT.clear()
    return tmp_path


def cli(*args: str) -> int:
    return main([*args])


def error_line(capsys) -> str:
    """The one line the CLI printed on stderr (ignoring warnings), which must start with ``error:``."""
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")]
    assert lines and lines[0].startswith("error: "), lines
    return "\n".join(lines)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# 1. Run names stay inside the run's folder -----------------------------------------------------------

@pytest.mark.parametrize("name", ["/tmp/rfy-victim", "../../victim", ".", "..", "a/b", "", "x" * 101, "a b"])
def test_a_name_that_leaves_the_run_folder_is_refused_and_nothing_is_removed(toy, capsys, name):
    victim = toy / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    assert cli("run", "toy", "--name", name) == 2
    assert "--name must be one folder name (letters, digits" in error_line(capsys)
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not (toy / "rfy_runs").exists() and not (toy / "rfy_results").exists()


def test_starting_over_never_clears_a_folder_rfy_did_not_make(toy, capsys):
    folder = toy / "rfy_runs" / "toy" / "mine"
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "model.pt").write_text("someone's weights")
    assert cli("run", "toy", "--name", "mine") == 2
    assert "holds .pt files but no state.json" in error_line(capsys)
    (folder / "model.pt").unlink()
    assert cli("run", "toy", "--name", "mine") == 0
    assert cli("run", "toy", "--name", "mine") == 0
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_starting_over_deletes_only_the_run_s_own_files(toy, capsys):
    assert cli("run", "toy", "--name", "mine") == 0
    folder = toy / "rfy_runs" / "toy" / "mine"
    (folder / "notes.txt").write_text("mine")
    assert cli("run", "toy", "--name", "mine") == 0
    assert listing(folder) == ["notes.txt", "state.json", "train.pt"]


# 2. Checkpoints never run code --------------------------------------------------------------------

class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resume_refuses_a_crafted_checkpoint_without_running_it(toy, capsys):
    INTERRUPT_AT.append(2)
    with pytest.raises(KeyboardInterrupt):
        cli("run", "toy")
    checkpoint = toy / "rfy_runs" / "toy" / "reduced-seed0" / "train.pt"
    marker = toy / "code-ran"
    torch.save({"weight": RunsCode(marker)}, checkpoint)
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--resume") == 2
    message = error_line(capsys)
    assert str(checkpoint) in message and "refused unread" in message and "without --resume" in message
    assert not marker.exists()


def test_resume_refuses_a_truncated_checkpoint_naming_it(toy, capsys):
    INTERRUPT_AT.append(2)
    with pytest.raises(KeyboardInterrupt):
        cli("run", "toy")
    checkpoint = toy / "rfy_runs" / "toy" / "reduced-seed0" / "train.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--resume") == 2
    assert f"error: {checkpoint} cannot be loaded as a checkpoint" in error_line(capsys)
    assert cli("run", "toy") == 0  # starting over works


def test_interrupted_run_resumes_where_it_stopped(toy, capsys):
    INTERRUPT_AT.append(2)
    with pytest.raises(KeyboardInterrupt):
        cli("run", "toy")
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--resume") == 0
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed0.json").read_text())
    assert record["metrics"]["steps_done"] == 2 and record["preset"] is True
    assert record["claims"][0]["key"] == "close" and record["claims"][0]["holds"] is True
    assert "claim: the weight ends near 1" in capsys.readouterr().out


def test_corrupt_state_json_names_the_file_and_how_to_start_over(toy, capsys):
    assert cli("run", "toy") == 0
    state = toy / "rfy_runs" / "toy" / "reduced-seed0" / "state.json"
    state.write_text('{"stages": ')
    assert cli("run", "toy", "--resume") == 2
    message = error_line(capsys)
    assert str(state) in message and "start the run over without --resume" in message
    assert cli("run", "toy") == 0


# 3. Resume with another config ------------------------------------------------------------------------

def test_resume_with_a_changed_config_is_refused_naming_the_fields(toy, capsys):
    assert cli("run", "toy", "--name", "exp", "--set", "lr=0.2") == 0
    record = toy / "rfy_results" / "toy" / "exp.json"
    before = record.read_bytes()
    assert cli("run", "toy", "--name", "exp", "--resume", "--set", "lr=0.5", "--set", "steps=10") == 2
    message = error_line(capsys)
    assert "lr 0.2 -> 0.5" in message and "steps 4 -> 10" in message and "only device may change" in message
    assert record.read_bytes() == before  # the finished run's record is untouched
    assert cli("run", "toy", "--name", "exp", "--resume", "--set", "lr=0.2", "--device", "cpu") == 0


# 4. Modified configs never pass for the preset ------------------------------------------------------

def test_a_modified_config_is_named_custom_and_left_out_of_the_table(toy, capsys):
    assert cli("run", "toy", "--set", "steps=2") == 0
    err = capsys.readouterr().err
    assert "warning: this config differs from the reduced preset (steps 4 -> 2)" in err
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed0-custom.json").read_text())
    assert record["preset"] is False
    assert cli("run", "toy", "--set", "steps=4") == 0  # equal to the preset: a preset run
    assert (toy / "rfy_results" / "toy" / "reduced-seed0.json").exists()
    assert cli("results", "table") == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| toy"))
    assert row.startswith("| toy | Distance | toy data | — | ") and " | 1" in row
    assert "toy, reduced mode: 1 record(s) left out because their config differs from the preset (steps)" in out


# 5. One error path for every bad input ------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--set", "seed=3"], "--set seed=… is not allowed: the seed is given with --seed"),
    (["--set", "mode=full"], "--set mode=… is not allowed: the mode is given with --mode"),
    (["--set", "device=cpu"], "--set device=… is not allowed: the device is given with --device"),
    (["--set", "sizes=128"], r"sizes must be a tuple of integers, e.g. (1,), got 128"),
    (["--set", "lr=1e999"], "lr must be finite (no NaN or infinity), got inf"),
    (["--set", "lr=nan"], "lr must be a finite number, got 'nan'"),
    (["--set", "flag=1"], "flag must be True or False, got 1"),
    (["--set", "flag=no"], "flag must be True or False, got 'no'"),
    (["--set", "stepz=3"], "unknown config field(s) ['stepz']"),
    (["--seed", str(2**64)], "seed must be an integer from 0 to 2147483647"),
    (["--seed", "-1"], "seed must be an integer from 0 to"),
    (["--device", "cuda:abc"], "device must be one of auto, cpu, cuda, cuda:N"),
    (["--device", "tpu"], "device must be one of auto, cpu, cuda, cuda:N"),
])
def test_bad_input_is_one_error_line_and_leaves_no_folder(toy, capsys, args, message):
    assert cli("run", "toy", *args) == 2
    assert message in error_line(capsys)
    assert listing(toy) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_an_absent_cuda_device_is_an_error_before_anything_runs(toy, capsys):
    assert cli("run", "toy", "--device", "cuda") == 2
    assert "no CUDA GPU; use device 'auto' or 'cpu'" in error_line(capsys)
    assert listing(toy) == []
    assert cli("bench", "mixmatch", "--device", "cuda:1") == 2
    assert "no CUDA GPU" in error_line(capsys)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_an_absent_mps_device_is_an_error(toy, capsys):
    assert cli("run", "toy", "--device", "mps") == 2
    assert "has no MPS backend" in error_line(capsys)


@pytest.mark.parametrize("variable", ["RFY_RUNS", "RFY_DATA", "RFY_RESULTS"])
def test_a_folder_variable_pointing_at_a_file_is_an_error(toy, capsys, monkeypatch, variable):
    (toy / "a-file").write_text("x")
    monkeypatch.setenv(variable, str(toy / "a-file"))
    if variable == "RFY_DATA":
        monkeypatch.delenv("RFY_RUNS")
    assert cli("run", "toy") == 2
    message = error_line(capsys)
    assert f"{variable} must be a folder" in message and str(toy / "a-file") in message


def _read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` unwritable; as root (who may write anyway) make writing there fail instead."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    try:
        (folder / ".probe").touch()
    except OSError:
        return
    (folder / ".probe").unlink()
    import rfy.files
    real = rfy.files.tempfile.TemporaryFile

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and folder.resolve() in (Path(dir).resolve(), *Path(dir).resolve().parents):
            raise PermissionError(13, "Permission denied", str(folder))
        return real(*args, dir=dir, **kwargs)
    monkeypatch.setattr(rfy.files.tempfile, "TemporaryFile", refuse)


@pytest.mark.parametrize("variable", ["RFY_RUNS", "RFY_RESULTS", "RFY_DATA"])
def test_a_read_only_folder_is_an_error_before_the_run(toy, capsys, monkeypatch, variable):
    if variable == "RFY_DATA":  # checkpoints then go to <RFY_DATA>/runs
        monkeypatch.delenv("RFY_RUNS")
    _read_only(toy / variable.lower(), monkeypatch)
    try:
        assert cli("run", "toy") == 2
        message = error_line(capsys)
        assert f"{variable} must be a folder you can write to" in message and str(toy / variable.lower()) in message
    finally:
        (toy / variable.lower()).chmod(0o755)


def test_a_read_only_dataset_cache_is_an_error_naming_it(toy, capsys, monkeypatch):
    _read_only(toy / "rfy_data", monkeypatch)
    try:
        assert cli("data", "download", "mnist") == 2
        assert "must be a folder you can write to" in error_line(capsys)
    finally:
        (toy / "rfy_data").chmod(0o755)


def test_a_malformed_record_is_skipped_with_a_warning_naming_it(toy, capsys):
    assert cli("run", "toy") == 0
    bad = toy / "rfy_results" / "toy" / "broken.json"
    bad.write_text("{oops")
    capsys.readouterr()
    assert cli("results", "table") == 0
    captured = capsys.readouterr()
    assert f"warning: skipped: {bad} is not a valid run record" in captured.err
    assert "| toy | Distance | toy data | — | " in captured.out


def test_bench_rejects_zero_steps(capsys):
    assert cli("bench", "mixmatch", "--steps", "0") == 2
    assert "--steps must be a positive integer, got 0" in error_line(capsys)
    assert cli("bench", "mixmatch", "--batch-size", "-1") == 2


# 7. Records are never seen half-written ---------------------------------------------------------------

def test_a_record_appears_whole_or_not_at_all(toy, monkeypatch):
    import rfy.files

    seen = []
    real_replace = os.replace

    def watching_replace(source, target):
        target = Path(target)
        seen.append((json.loads(Path(source).read_text()) if target.suffix == ".json" else None, target.exists()))
        real_replace(source, target)
    monkeypatch.setattr(rfy.files.os, "replace", watching_replace)
    assert cli("run", "toy") == 0
    records = [content for content, _ in seen if content and "metrics" in content]
    assert records and records[-1]["chapter"] == "toy"  # complete JSON when it was renamed into place
    assert not [p for p in (toy / "rfy_results").rglob("*") if p.name.endswith(".part")]


# Issue 11: the seed sweep ---------------------------------------------------------------------------

def test_claims_sweep_runs_each_seed_once_and_counts_the_claims(toy, capsys):
    assert cli("claims", "toy", "--seeds", "0-2") == 0
    out = capsys.readouterr().out
    assert "| the weight ends near 1 | ≤ 0.90 | 3/3 |" in out
    assert sorted(p.name for p in (toy / "rfy_results" / "toy").iterdir()) == [
        "reduced-seed0.json", "reduced-seed1.json", "reduced-seed2.json"]
    assert cli("claims", "toy", "--seeds", "0,2,3") == 0
    out = capsys.readouterr().out
    assert out.count("exists with the preset config, skipped") == 2 and "seed 3: running" in out
    assert "3/3" in out
    assert cli("results", "robustness") == 0
    out = capsys.readouterr().out
    assert "| toy | the weight ends near 1 | ≤ 0.90 | 4/4 |" in out and "seeds 0, 1, 2, 3; commit" in out


def test_claims_sweep_resumes_an_interrupted_seed(toy, capsys):
    INTERRUPT_AT.append(2)
    with pytest.raises(KeyboardInterrupt):
        cli("claims", "toy", "--seeds", "5")
    INTERRUPT_AT.clear()
    assert cli("claims", "toy", "--seeds", "5") == 0
    assert "seed 5: running (resuming)" in capsys.readouterr().out
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed5.json").read_text())
    assert record["metrics"]["steps_done"] == 2


def test_claims_sweep_starts_a_seed_over_when_its_checkpoint_is_corrupt(toy, capsys):
    INTERRUPT_AT.append(2)
    with pytest.raises(KeyboardInterrupt):
        cli("claims", "toy", "--seeds", "4")
    INTERRUPT_AT.clear()
    checkpoint = toy / "rfy_runs" / "toy" / "reduced-seed4" / "train.pt"
    checkpoint.write_bytes(b"garbage")
    assert cli("claims", "toy", "--seeds", "4") == 0
    assert f"warning: {checkpoint} cannot be loaded" in capsys.readouterr().err
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed4.json").read_text())
    assert record["metrics"]["steps_done"] == 4


def test_claims_sweep_reruns_a_seed_whose_record_is_not_the_preset(toy, capsys):
    assert cli("run", "toy", "--name", "reduced-seed1", "--set", "steps=2") == 0
    assert cli("claims", "toy", "--seeds", "1") == 0
    out = capsys.readouterr().out
    assert "seed 1: running" in out and "1/1" in out


@pytest.mark.parametrize("seeds", ["5-2", "x", "-1", "1,,2", str(2**40)])
def test_claims_sweep_rejects_bad_seeds(toy, capsys, seeds):
    assert cli("claims", "toy", "--seeds", seeds) == 2
    assert "--seeds must be seeds from 0 to" in error_line(capsys)


# As a user types it ------------------------------------------------------------------------------------

def test_the_command_line_itself_prints_one_error_line(tmp_path):
    environment = {**os.environ, "RFY_DATA": str(tmp_path / "data"), "RFY_RESULTS": str(tmp_path / "results")}
    done = subprocess.run([sys.executable, "-m", "rfy", "run", "neural-ode", "--name", "../../x"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: --name must be one folder name")
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()
