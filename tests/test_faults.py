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
import time
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
    batch_size: int = 4
    pause_s: float = 0.0  # seconds each step takes, for the wall-time cases

    def validate(self) -> None:
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)
        check_positive("batch_size", self.batch_size, integer=True)
        check_positive("pause_s", self.pause_s, allow_zero=True)


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
        batch = torch.zeros(config.batch_size, 1000)  # what a batch of this size takes in memory
        time.sleep(config.pause_s)
        loss = (weight - 1.0 - 0.01 * torch.randn(()) + batch.sum()) ** 2
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
    assert cli("run", "toy") == 130  # Ctrl-C
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
    assert cli("run", "toy") == 130  # Ctrl-C
    checkpoint = toy / "rfy_runs" / "toy" / "reduced-seed0" / "train.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--resume") == 2
    assert f"error: {checkpoint} cannot be loaded as a checkpoint" in error_line(capsys)
    assert cli("run", "toy") == 0  # starting over works


def test_interrupted_run_resumes_where_it_stopped(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130  # Ctrl-C
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--resume") == 0
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed0.json").read_text())
    assert record["metrics"]["steps_done"] == 2 and record["preset"] is True
    assert record["claims"][0]["key"] == "close" and record["claims"][0]["holds"] is True
    assert "claim: the weight ends near 1" in capsys.readouterr().out


def test_corrupt_state_json_names_the_file_and_how_to_start_over(toy, capsys):
    assert cli("run", "toy") == 0
    state = toy / "rfy_runs" / "toy" / "reduced-seed0" / "state.json"
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "stages": []}))
    assert cli("run", "toy", "--resume") == 2
    message = error_line(capsys)
    assert str(state) in message and "start the run over without --resume" in message
    assert cli("run", "toy") == 0
    state.write_text('{"stages": ')  # rfy writes atomically, so this file is not rfy's: nothing is touched
    for resume in ([], ["--resume"]):
        assert cli("run", "toy", *resume) == 2
        assert f"error: {state} was not written by rfy" in error_line(capsys)
    assert (state.parent / "train.pt").exists()


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
    assert "--steps must be a positive integer up to 100000, got 0" in error_line(capsys)
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
    assert cli("claims", "toy", "--seeds", "5") == 130  # Ctrl-C
    INTERRUPT_AT.clear()
    assert cli("claims", "toy", "--seeds", "5") == 0
    assert "seed 5: running (resuming)" in capsys.readouterr().out
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed5.json").read_text())
    assert record["metrics"]["steps_done"] == 2


def test_claims_sweep_starts_a_seed_over_when_its_checkpoint_is_corrupt(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("claims", "toy", "--seeds", "4") == 130  # Ctrl-C
    INTERRUPT_AT.clear()
    checkpoint = toy / "rfy_runs" / "toy" / "reduced-seed4" / "train.pt"
    checkpoint.write_bytes(b"garbage")
    assert cli("claims", "toy", "--seeds", "4") == 0
    assert f"warning: {checkpoint} cannot be loaded" in capsys.readouterr().err
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed4.json").read_text())
    assert record["metrics"]["steps_done"] == 4


def test_claims_sweep_reruns_a_seed_whose_record_is_not_the_preset(toy, capsys):
    from rfy.results import make_record, write_record

    # a record of seed 1 made when the preset was another (a custom run can no longer take this name)
    write_record(make_record("toy", "reduced-seed1", Config(seed=1, steps=2), {"distance": 0.5}, wall_time_s=1.0),
                 toy / "rfy_results")
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


# Issue 24: run folders that are ours alone, one run at a time, no leak, every error one line -------------

def run_folder(toy: Path, name: str = "reduced-seed0") -> Path:
    return toy / "rfy_runs" / "toy" / name


def test_a_symlinked_run_folder_is_refused_and_its_target_untouched(toy, capsys):
    victim = toy / "someone"
    victim.mkdir()
    (victim / "state.json").write_text('{"stages": {}, "started": ["model_best"]}')
    (victim / "model_best.pt").write_text("weights")
    run_folder(toy, "mine").parent.mkdir(parents=True)
    run_folder(toy, "mine").symlink_to(victim)
    assert cli("run", "toy", "--name", "mine") == 2
    assert f"the run folder {run_folder(toy, 'mine')} is a symbolic link (to {victim})" in error_line(capsys)
    assert listing(victim) == ["model_best.pt", "state.json"]
    assert (victim / "state.json").read_text() == '{"stages": {}, "started": ["model_best"]}'


def test_a_state_json_rfy_did_not_write_is_never_taken_for_a_run(toy, capsys):
    folder = run_folder(toy, "mine")
    folder.mkdir(parents=True)
    (folder / "state.json").write_text('{"stages": {}, "started": ["model_best"]}')
    (folder / "model_best.pt").write_text("weights")
    for resume in ([], ["--resume"]):
        assert cli("run", "toy", "--name", "mine", *resume) == 2
        assert "state.json was not written by rfy (it has no 'written_by'" in error_line(capsys)
    assert (folder / "model_best.pt").read_text() == "weights"
    assert (folder / "state.json").read_text() == '{"stages": {}, "started": ["model_best"]}'


def test_starting_over_keeps_a_checkpoint_the_user_put_beside_the_run(toy):
    assert cli("run", "toy") == 0
    (run_folder(toy) / "exported_for_paper.pt").write_bytes(b"my model")
    assert cli("run", "toy") == 0
    assert (run_folder(toy) / "exported_for_paper.pt").read_bytes() == b"my model"
    assert listing(run_folder(toy)) == ["exported_for_paper.pt", "state.json", "train.pt"]


HOLD_FOLDER = """
import sys, time
from rfy.checkpoint import RunState
state = RunState(sys.argv[1], resume=False)
print("holding", flush=True)
time.sleep(120)
"""


def test_a_run_folder_in_use_by_another_process_is_refused(toy, capsys):
    folder = run_folder(toy, "same")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = (folder / "state.json").read_text()
        assert cli("run", "toy", "--name", "same") == 2
        assert f"error: {folder} is in use by pid {holder.pid} (another rfy run" in error_line(capsys)
        assert cli("run", "toy", "--name", "same", "--resume") == 2
        assert (folder / "state.json").read_text() == before and listing(folder) == ["state.json"]
    finally:
        holder.kill()
        holder.wait()
    assert cli("run", "toy", "--name", "same") == 0  # the lock went with its process


def test_a_checkpoint_of_another_run_is_never_resumed_from(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy", "--name", "first", "--set", "lr=0.2") == 130
    assert cli("run", "toy", "--name", "second") == 130
    theirs, ours = run_folder(toy, "first") / "train.pt", run_folder(toy, "second") / "train.pt"
    ours.write_bytes(theirs.read_bytes())  # what a second run in the same folder used to leave
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--name", "second", "--resume") == 2
    message = error_line(capsys)
    assert f"error: {ours} was not saved by the run in" in message and "config fingerprint" in message


def test_the_saved_tensor_probe_lets_every_graph_it_measured_go():
    import gc
    import weakref

    from rfy.neural_ode.adjoint import saved_tensor_bytes

    outputs = []

    def loss() -> torch.Tensor:
        output = torch.randn(1000, requires_grad=True).exp()  # exp saves its output for backward
        outputs.append(weakref.ref(output))
        return output.sum()
    assert saved_tensor_bytes(loss) == 4000
    gc.collect()
    assert outputs[0]() is None


PARENT_OF_WORKERS = """
import time
from rfy.parallel import in_processes
for _ in in_processes(time.sleep, [120.0, 120.0], workers=2):
    pass
"""


def _children(pid: int) -> list[int]:
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            command = (status.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(fields.get("PPid", "0").strip()) == pid and b"spawn_main" in command:
            children.append(int(status.parent.name))
    return children


def _state(pid: int) -> str:
    """The process state letter (R running, S sleeping, Z zombie), "" for a process that is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    return _state(pid) not in ("", "Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_parent_even_when_it_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT_OF_WORKERS], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while len(workers := _children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2
        quiet_since = time.monotonic()  # wait until both sleep in their job (imports done, death signal armed)
        while time.monotonic() - quiet_since < 2 and time.monotonic() < deadline:
            quiet_since = quiet_since if all(_state(pid) == "S" for pid in workers) else time.monotonic()
            time.sleep(0.1)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        for pid in _children(parent.pid):
            os.kill(pid, 9)


FAILING_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {},
               "outputs": [{"name": "stdout", "output_type": "stream", "text": "stored output\n"}],
               "source": "print('stored output')"},
              {"cell_type": "code", "execution_count": 2, "id": "b", "metadata": {}, "outputs": [],
               "source": "raise ValueError('the data moved')"}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5}


def test_a_failing_notebook_is_left_as_it_was_and_the_cell_named(tmp_path, capsys):
    notebook = tmp_path / "chapter.ipynb"
    notebook.write_text(json.dumps(FAILING_NOTEBOOK))
    before = notebook.read_bytes()
    assert cli("notebooks", "execute", str(notebook)) == 1
    message = error_line(capsys)
    assert message == (f"error: {notebook}: cell 2 (\"raise ValueError('the data moved')\") raised ValueError: "
                       f"the data moved; the notebook was left unchanged")
    assert notebook.read_bytes() == before and listing(tmp_path) == ["chapter.ipynb"]


def test_notebook_commands_refuse_a_file_that_is_not_a_notebook(tmp_path, capsys):
    text = tmp_path / "notes.ipynb"
    text.write_text("just text")
    for action in ("student", "execute"):
        assert cli("notebooks", action, str(text), "--output", str(tmp_path / "out")) == 2
        assert f"error: {text} is not a Jupyter notebook" in error_line(capsys)
    assert text.read_text() == "just text"


@pytest.mark.parametrize("obstacle", ["file", "dangling link", "read-only"])
def test_the_chapter_s_results_folder_is_checked_before_the_run(toy, capsys, monkeypatch, obstacle):
    target = toy / "rfy_results" / "toy"
    target.parent.mkdir(parents=True)
    if obstacle == "file":
        target.write_text("x")
    elif obstacle == "dangling link":
        target.symlink_to(toy / "gone")
    else:
        _read_only(target, monkeypatch)
    try:
        assert cli("run", "toy") == 2
        assert "the results folder of toy must be" in error_line(capsys)
        assert not run_folder(toy).exists()
    finally:
        if obstacle == "read-only":
            target.chmod(0o755)


def test_ctrl_c_is_one_line_saying_how_to_continue(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    assert error_line(capsys) == "error: interrupted; continue with --resume"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a file size limit stands in for a full disk")
def test_a_full_disk_during_a_checkpoint_is_one_line(toy, capsys):
    import resource
    import signal

    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))  # files beyond 4 KB fail, as on a full disk
    try:
        code = cli("run", "toy")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert code == 2
    message = error_line(capsys)
    checkpoint = run_folder(toy) / "train.pt"
    assert message.startswith(f"error: {checkpoint} could not be written (File too large); ")
    assert "MB are free on its disk" in message
    assert "\n" not in message and not [p for p in listing(run_folder(toy)) if p.endswith(".part")]


def test_a_batch_that_does_not_fit_in_memory_is_one_line(toy, capsys):
    assert cli("run", "toy", "--set", "batch_size=2000000000") == 2  # 8 TB; below the limit of an int field
    assert error_line(capsys).startswith("error: not enough memory (")


def test_bench_refuses_a_batch_size_no_machine_holds(capsys):
    assert cli("bench", "mixmatch", "--batch-size", "2000000000") == 2
    assert error_line(capsys) == "error: --batch-size must be a positive integer up to 65536, got 2000000000"


@pytest.mark.parametrize("chapter, package", [("preferences", "mujoco"), ("divide-conquer", "torchvision"),
                                              ("voters", "torchvision")])
def test_a_missing_optional_dependency_is_named_before_anything_is_written(toy, capsys, monkeypatch, chapter, package):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == package else real(name, *args))
    assert cli("run", chapter, "--mode", "full") == 2
    assert f"needs the optional package {package}, which is not installed" in error_line(capsys)
    assert listing(toy) == []


@pytest.mark.parametrize("content, reason", [
    (b"not a zip at all", "not a zip archive"),
    ("truncated", "not a zip archive"),
    ("no ratings", "it has no All_Ratings.xlsx"),
])
def test_a_bad_scut_archive_is_one_line_naming_it(toy, capsys, monkeypatch, content, reason):
    import io
    import zipfile

    import rfy.cli
    from rfy.data import dataset_dir
    from rfy.voters import scut

    archive = dataset_dir("scut-fbp5500") / scut.ARCHIVE
    archive.parent.mkdir(parents=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("SCUT-FBP5500_v2/Images/AF1.jpg", b"x" * 5000)
    if content == "truncated":
        content = buffer.getvalue()[:3000]
    elif content == "no ratings":
        content = buffer.getvalue()
    archive.write_bytes(content)
    monkeypatch.setattr(rfy.cli, "check_optional_packages", lambda chapter, config: None)  # fails before torchvision
    assert cli("run", "voters", "--mode", "full") == 2
    assert error_line(capsys).startswith(f"error: {archive} is not a readable SCUT-FBP5500 release ({reason}")


@pytest.mark.parametrize("field, value, message", [
    ("elapsed_s", "abc", "elapsed_s must be a finite number of seconds >= 0, got 'abc'"),
    ("elapsed_s", float("inf"), "elapsed_s must be a finite number of seconds >= 0, got inf"),
    ("started", 5, "started must be a list of file names, got 5"),
    ("stages", {"train": 3}, "stages must be an object of stage name -> metrics object"),
])
def test_a_tampered_state_json_is_one_line_on_resume(toy, capsys, field, value, message):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    state = run_folder(toy) / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), field: value}))
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--resume") == 2
    assert f"error: {state} is not a valid run state ({message}); start the run over" in error_line(capsys)
    assert cli("run", "toy") == 0
    assert "Infinity" not in (toy / "rfy_results" / "toy" / "reduced-seed0.json").read_text()


@pytest.mark.parametrize("change, reason", [
    ({"metrics": {"distance": "0.1", "steps_done": 4.0}}, "metric 'distance' must be a number"),
    ({"metrics": {"distance": [0.1], "steps_done": 4.0}}, "metric 'distance' must be a number"),
    ({"metrics": {"distance": True, "steps_done": 4.0}}, "metric 'distance' must be a number"),
    ({"metrics": {"distance": 1e308, "steps_done": 4.0}}, "metric 'distance' must be a number of magnitude"),
    ({"seed": "3"}, "seed must be int, got '3'"),
    ({"seed": -7}, "seed must be an integer from 0 to"),
    ({"finished_at": 5}, "finished_at must be str, got 5"),
    ({"finished_at": "yesterday"}, "finished_at must be an ISO 8601 time"),
    ({"chapter": "semi-unsupervised"}, "it says chapter 'semi-unsupervised', run 'reduced-seed1', but it is stored as"),
    ({"run": "reduced-seed9"}, "it says chapter 'toy', run 'reduced-seed9', but it is stored as toy/reduced-seed1.json"),
    ({"claims": [{"key": "close", "measured": -1.0, "holds": "false"}]}, "claim 'close': holds must be true or false"),
])
def test_a_tampered_record_is_skipped_with_one_warning_and_never_counted(toy, capsys, change, reason):
    assert cli("claims", "toy", "--seeds", "0-1") == 0
    assert cli("results", "table") == 0
    clean_table = capsys.readouterr().out
    path = toy / "rfy_results" / "toy" / "reduced-seed1.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    for command in ("table", "robustness"):
        assert cli("results", command) == 0
        captured = capsys.readouterr()
        assert f"warning: skipped: {path} is not a valid run record ({reason}" in captured.err
        row = next(line for line in captured.out.splitlines() if line.startswith("| toy"))
        assert ("| 1 |" in row) if command == "table" else ("1/1" in row)
    assert clean_table.count("| 2 |") == 1  # both seeds counted before the file was changed


def test_records_are_standard_json_even_for_a_non_finite_measurement(tmp_path):
    from rfy.results import make_record, read_record, write_record

    record = make_record("toy", "reduced-seed0", Config.reduced(), {"distance": float("nan")}, wall_time_s=1.0)
    path = write_record(record, tmp_path)
    assert json.loads(path.read_text())["metrics"]["distance"] is None  # not NaN, which JSON does not have
    assert str(read_record(path).metrics["distance"]) == "nan"


def test_a_cub_cache_is_checked_and_a_foreign_one_never_used(toy):
    from rfy.data import dataset_dir
    from rfy.divide_conquer import data as dc_data
    from rfy.errors import CorruptFileError, DatasetNotAvailableError

    folder = dataset_dir("cub-200-2011")
    folder.mkdir(parents=True)
    images = torch.zeros(2, 3, dc_data.CUB_STORED_SIZE, dc_data.CUB_STORED_SIZE, dtype=torch.uint8)
    torch.save({"images": images, "classes": torch.tensor([1, 150])}, folder / "decoded-256.pt")
    with pytest.raises(DatasetNotAvailableError, match="CUB_200_2011.tgz"):  # the archive is what counts
        dc_data.load_cub(download=False)
    torch.save({"pictures": images}, dc_data.cub_cache_path())
    with pytest.raises(CorruptFileError, match=r"is not a valid decoded CUB-200-2011 cache \(no uint8 'images'"):
        dc_data.load_cub(download=False)
    torch.save({"images": images, "classes": torch.tensor([1, 2])}, dc_data.cub_cache_path())
    with pytest.raises(CorruptFileError, match="not CUB's 1-200 with both halves"):
        dc_data.load_cub(download=False)


def test_temporary_files_of_killed_writes_are_removed_on_resume_and_by_the_record(toy):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    leftovers = [run_folder(toy) / ".train.pt.k1ll3d.part", run_folder(toy) / ".state.json.k1ll3d.part",
                 toy / "rfy_results" / "toy" / ".reduced-seed0.json.k1ll3d.part"]
    for leftover in leftovers:
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half a file")
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    (run_folder(toy) / ".notes.txt.mine.part").write_text("not rfy's")
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--resume") == 0
    assert not any(leftover.exists() for leftover in leftovers)
    assert (run_folder(toy) / ".notes.txt.mine.part").exists()


def test_the_wall_time_of_a_resumed_run_counts_the_session_that_was_cut_off(toy):
    INTERRUPT_AT.append(3)
    assert cli("run", "toy", "--set", "pause_s=0.3") == 130
    saved = json.loads((run_folder(toy, "reduced-seed0-custom") / "state.json").read_text())
    assert saved["elapsed_s"] >= 0.6  # two steps of 0.3 s, each saved with its checkpoint
    INTERRUPT_AT.clear()
    assert cli("run", "toy", "--set", "pause_s=0.3", "--resume") == 0
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed0-custom.json").read_text())
    assert record["wall_time_s"] >= 1.2
