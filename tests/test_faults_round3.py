"""The fault suite, round three (issue 32): no command overwrites what it did not make, no input hangs or misleads.

Each case of the issue, then ten cases of our own of the same kinds (data loss, silent wrong results,
hangs, tracebacks, unclear messages). The CLI runs the toy chapter of ``test_faults`` (milliseconds a
run); the cases that could hang run ``python -m rfy`` in a subprocess with a timeout, so a regression
fails instead of blocking the suite.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

import test_faults
from rfy.checkpoint import STATE_FILE
from rfy.config import FLOAT_LIMIT, INT_LIMIT
from rfy.errors import ConfigError
from rfy.files import folder_lock
from rfy.results import make_record, read_records, write_record
from test_faults import INTERRUPT_AT, Config, cli, error_line, listing, toy  # noqa: F401 (toy is a fixture)

ROOT = Path(__file__).resolve().parents[1]


def results(toy: Path) -> Path:
    return toy / "rfy_results" / "toy"


def run_folder(toy: Path, name: str = "reduced-seed0") -> Path:
    return toy / "rfy_runs" / "toy" / name


def notebook(path: Path, answer: str = "") -> Path:
    """A small notebook with an output and an exercise solution, as the book's are."""
    cells = [nbformat.v4.new_markdown_cell("Exercise.\n\n```{solution}\nthe answer\n```"),
             nbformat.v4.new_code_cell(answer or "1 + 1", outputs=[nbformat.v4.new_output(
                 "execute_result", data={"text/plain": "2"}, execution_count=1)])]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def rfy_subprocess(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rfy", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", **env})


# 1-2. Student copies never replace a source or a student's work ---------------------------------------

def test_student_copies_into_the_sources_folder_are_refused_and_the_sources_kept(tmp_path, capsys):
    sources = [notebook(tmp_path / "nb" / "01_a.ipynb"), notebook(tmp_path / "nb" / "02_b.ipynb")]
    before = [path.read_bytes() for path in sources]
    assert cli("notebooks", "student", *map(str, sources), "--output", str(tmp_path / "nb")) == 2
    assert "holds the source notebook" in error_line(capsys)
    assert cli("notebooks", "student", *map(str, sources), "--output", str(tmp_path / "nb"), "--overwrite") == 2
    assert [path.read_bytes() for path in sources] == before


def test_a_student_s_notebook_in_the_output_folder_is_refused_unless_overwrite(tmp_path, capsys):
    source = notebook(tmp_path / "nb" / "01_a.ipynb")
    output = tmp_path / "student"
    assert cli("notebooks", "student", str(source), "--output", str(output)) == 0
    assert cli("notebooks", "student", str(source), "--output", str(output)) == 0  # an unchanged copy: refreshed
    copy = nbformat.read(output / "01_a.ipynb", as_version=4)
    assert "the answer" not in copy.cells[0].source and copy.cells[1].outputs == []
    notebook(output / "01_a.ipynb", answer="my answer = 42")  # the student worked in it
    capsys.readouterr()
    assert cli("notebooks", "student", str(source), "--output", str(output)) == 2
    message = error_line(capsys)
    assert str(output / "01_a.ipynb") in message and "--overwrite" in message
    assert "my answer = 42" in (output / "01_a.ipynb").read_text()
    assert cli("notebooks", "student", str(source), "--output", str(output), "--overwrite") == 0
    assert "was replaced by the student copy" in capsys.readouterr().err
    assert "my answer = 42" not in (output / "01_a.ipynb").read_text()


# 3. Custom runs cannot take a preset's or an estimate's name ------------------------------------------

def test_a_custom_run_cannot_take_the_name_of_a_preset_record_or_an_estimate(toy, capsys):
    assert cli("run", "toy") == 0
    preset = (results(toy) / "reduced-seed0.json").read_bytes()
    assert cli("run", "toy", "--set", "steps=2", "--name", "reduced-seed0") == 2
    assert "is the name of the reduced preset's record of seed 0" in error_line(capsys)
    assert cli("run", "toy", "--seed", "1", "--name", "reduced-seed0") == 2
    assert "this run is the reduced preset on seed 1" in error_line(capsys)
    assert cli("run", "toy", "--name", "estimate-full-cpu-2-cores") == 2
    assert "are the cost estimates'" in error_line(capsys)
    assert (results(toy) / "reduced-seed0.json").read_bytes() == preset
    assert not (results(toy) / "estimate-full-cpu-2-cores.json").exists()
    assert not run_folder(toy, "estimate-full-cpu-2-cores").exists()  # refused before the run


# 4. A missing or unusable results folder is an error, and nothing is rewritten ---------------------------

@pytest.mark.parametrize("command", [("results", "table"), ("results", "robustness"), ("results", "costs"),
                                     ("notebooks", "records")])
def test_a_missing_results_folder_is_an_error_not_an_empty_table(toy, capsys, monkeypatch, command):
    monkeypatch.setenv("RFY_RESULTS", str(toy / "no-such-folder"))
    table = toy / "table.md"
    table.write_text("the real table")
    extra = ["--output", str(table)] if command[0] == "results" else [str(toy / "notebooks")]
    assert cli(*command, *extra) == 2
    assert "RFY_RESULTS must be the folder of run records" in error_line(capsys)
    assert table.read_text() == "the real table"


def test_a_chapter_entry_that_is_a_file_is_an_error(toy, capsys):
    results(toy).parent.mkdir(parents=True)
    results(toy).write_text("not a folder")
    assert cli("results", "table") == 2
    message = error_line(capsys)
    assert f"{results(toy)} must be the folder of the run records of toy, but it is a regular file" in message
    with pytest.raises(ConfigError, match="regular file"):
        read_records("toy", toy / "rfy_results")


# 5. Two records of one seed --------------------------------------------------------------------------

def test_two_records_of_one_seed_under_different_names_are_an_error_naming_both(toy, capsys):
    assert cli("run", "toy") == 0
    record = json.loads((results(toy) / "reduced-seed0.json").read_text())
    (results(toy) / "copy.json").write_text(json.dumps({**record, "run": "copy"}))
    for command in (("results", "table"), ("results", "robustness")):
        assert cli(*command) == 2
        message = error_line(capsys)
        assert str(results(toy) / "copy.json") in message and str(results(toy) / "reduced-seed0.json") in message


# 6. The default dtype is part of the run's fingerprint ---------------------------------------------------

def test_resuming_a_float32_run_under_float64_is_refused_in_one_line(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    INTERRUPT_AT.clear()
    capsys.readouterr()
    torch.set_default_dtype(torch.float64)
    try:
        assert cli("run", "toy", "--resume") == 2
    finally:
        torch.set_default_dtype(torch.float32)
    message = error_line(capsys)
    assert "default_dtype 'float32' -> 'float64'" in message and "torch.set_default_dtype(torch.float32)" in message
    assert "\n" not in message
    assert cli("run", "toy", "--resume") == 0  # under the run's own settings it continues


# 7-8. Records are read only from regular files under a size limit ---------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_fifo_and_a_link_to_dev_zero_are_skipped_with_a_warning_not_read(tmp_path):
    folder = tmp_path / "results" / "debiasing"
    folder.mkdir(parents=True)
    os.symlink("/dev/zero", folder / "reduced-seed96.json")
    os.mkfifo(folder / "reduced-seed97.json")
    for command in (("results", "table"), ("results", "robustness")):
        done = rfy_subprocess(*command, env={"RFY_RESULTS": str(tmp_path / "results")}, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "reduced-seed96.json is not a valid run record (it is a device, not a regular file)" in done.stderr
        assert "reduced-seed97.json is not a valid run record (it is a named pipe (FIFO)" in done.stderr


# 10. Numeric --set values have sane bounds ---------------------------------------------------------

@pytest.mark.parametrize("chapter, setting, message", [
    ("debiasing", "lr=1e308", "lr must be from 0 to 10, got 1e+308"),
    ("voters", "lr=1e308", "lr must be from 0 to 10, got 1e+308"),
    ("debiasing", "alphas=(1e308,)", f"alphas each must be at most {FLOAT_LIMIT:g} in magnitude"),
    ("toy", "lr=1e308", "lr must be from 0 to 10"),
])
def test_a_huge_number_is_one_config_error_line(toy, capsys, chapter, setting, message):
    assert cli("run", chapter, "--set", setting) == 2
    assert message in error_line(capsys)
    assert not (toy / "rfy_runs").exists()


# 11. Messages that say what happened and what to do -------------------------------------------------

def test_a_second_claims_sweep_says_another_sweep_holds_the_folder(toy, capsys):
    sweep = toy / "rfy_runs" / "toy"
    sweep.mkdir(parents=True)
    with folder_lock(sweep, wait=False) as locked:  # as the first sweep holds it
        assert locked
        assert cli("claims", "toy", "--seeds", "0-1") == 2
    message = error_line(capsys)
    assert "another 'rfy claims toy' sweep is running" in message and "run this command again" in message
    assert "--name" not in message and list(results(toy).glob("*.json")) == []
    assert cli("claims", "toy", "--seeds", "0-1") == 0  # once the first has finished


def test_sigterm_is_one_line_and_exit_code_143(toy, capsys, monkeypatch):
    def terminated(config, checkpoint):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives long before this ends
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(test_faults, "train", terminated)
    assert cli("run", "toy") == 143
    assert error_line(capsys) == "error: terminated (SIGTERM); continue with --resume"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the default is back after the command


def test_too_many_seeds_names_the_limit(toy, capsys):
    assert cli("claims", "toy", "--seeds", "0-99999999") == 2
    assert "asks for 100,000,000 seeds; sweep at most 10000 at once" in error_line(capsys)


def test_a_huge_set_value_is_not_echoed_whole(toy, capsys):
    assert cli("run", "toy", "--set", "lr=" + "9" * 100_000) == 2
    message = error_line(capsys)
    assert "100,000 characters long" in message and len(message) < 300
    assert cli("run", "toy", "--set", "sizes=" + "x" * 900) == 2
    message = error_line(capsys)
    assert "(902 characters)" in message and len(message) < 300


def test_an_incomplete_system_copy_is_named_and_the_error_says_reinstall(tmp_path, isolated_cache, monkeypatch):
    from rfy.data import fetch_dataset
    from rfy.errors import DatasetNotAvailableError
    from test_data_system_copy import packaged_copy

    packaged_copy(tmp_path / "system", monkeypatch)
    (tmp_path / "system" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.warns(UserWarning, match="lacks train-labels-idx1-ubyte.gz"), \
            pytest.raises(DatasetNotAvailableError) as error:
        fetch_dataset("fashion-mnist", download=False)
    assert "installed but incomplete or damaged: apt-get install --reinstall tiny" in str(error.value)
    assert "Or install the packaged copy" not in str(error.value)


@pytest.mark.parametrize("variable", ["RFY_RESULTS", "RFY_RUNS"])
def test_a_symlink_loop_is_called_a_loop(toy, capsys, monkeypatch, variable):
    os.symlink(toy / "loop-b", toy / "loop-a")
    os.symlink(toy / "loop-a", toy / "loop-b")
    monkeypatch.setenv(variable, str(toy / "loop-a"))
    assert cli("run", "toy") == 2
    message = error_line(capsys)
    assert "is a symbolic link loop" in message and "does not exist" not in message
    if variable == "RFY_RESULTS":
        assert cli("results", "table") == 2
        assert "is a symbolic link loop" in error_line(capsys)


def test_data_download_needs_no_writable_cache_when_the_system_copy_is_complete(tmp_path, monkeypatch, capsys):
    from test_data_system_copy import packaged_copy

    packaged_copy(tmp_path / "system", monkeypatch)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("RFY_DATA", str(tmp_path / "file" / "cache"))  # a cache nothing can be written to
    assert cli("data", "download", "fashion-mnist") == 0
    assert str(tmp_path / "system" / "train-images-idx3-ubyte.gz") in capsys.readouterr().out
    assert cli("data", "download", "mnist") == 2  # a download still needs the cache
    assert "RFY_DATA must be a folder" in error_line(capsys)


@pytest.mark.parametrize("change, says", [("added", "added to the config since"),
                                          ("removed", "removed from the config since")])
def test_resume_across_an_added_or_removed_config_field_says_what_can_be_done(toy, capsys, change, says):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    INTERRUPT_AT.clear()
    capsys.readouterr()
    state_file = run_folder(toy) / STATE_FILE
    state = json.loads(state_file.read_text())
    if change == "added":
        del state["config"]["flag"]  # the run started before the field existed
    else:
        state["config"]["dropped"] = 1  # the run had a field this version no longer has
    state_file.write_text(json.dumps(state))
    assert cli("run", "toy", "--resume") == 2
    message = error_line(capsys)
    assert says in message and "start it over without --resume" in message
    assert "Resume with the run's settings" not in message


def test_a_record_path_that_is_a_folder_is_found_before_the_run(toy, capsys):
    (results(toy) / "reduced-seed0.json").mkdir(parents=True)
    assert cli("run", "toy") == 2
    assert f"written to {results(toy) / 'reduced-seed0.json'}, which is a folder" in error_line(capsys)
    assert not run_folder(toy).exists()


def test_a_stale_part_file_of_the_record_is_removed_by_the_next_write(toy):
    results(toy).mkdir(parents=True)
    stale = results(toy) / ".reduced-seed0.json.abc123.part"
    stale.write_text('{"half": ')  # a run killed while writing its record, a second ago
    assert cli("run", "toy") == 0
    assert not stale.exists() and listing(results(toy)) == ["reduced-seed0.json"]


def test_a_record_of_a_future_schema_is_refused_with_one_line(toy, capsys):
    assert cli("run", "toy") == 0
    path = results(toy) / "reduced-seed0.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 2}))
    assert cli("results", "table") == 0
    captured = capsys.readouterr()
    assert f"{path}: it is of record format 2 (schema_version), newer than the 1 this rfy reads" in captured.err
    assert "fix or delete it" not in captured.err
    assert "not run yet" in captured.out  # not counted
    assert cli("run", "toy") == 2  # and not overwritten by an older rfy
    assert "is not a run record rfy can read" in error_line(capsys)
    assert json.loads(path.read_text())["schema_version"] == 2


# Ten cases of our own ---------------------------------------------------------------------------------

def test_own_1_two_sources_of_one_name_are_refused_not_one_copy_lost(tmp_path, capsys):
    first, second = notebook(tmp_path / "a" / "x.ipynb"), notebook(tmp_path / "b" / "x.ipynb", answer="2 + 2")
    assert cli("notebooks", "student", str(first), str(second), "--output", str(tmp_path / "out")) == 2
    assert "would both be copied to" in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_own_2_a_preset_run_under_a_second_name_is_refused_before_it_runs(toy, capsys):
    assert cli("run", "toy") == 0
    assert cli("run", "toy", "--name", "again") == 2
    assert "already records the reduced preset on seed 0" in error_line(capsys)
    assert not run_folder(toy, "again").exists()


def test_own_3_a_file_that_is_not_a_record_is_never_overwritten_by_a_run(toy, capsys):
    results(toy).mkdir(parents=True)
    (results(toy) / "mine.json").write_text('{"my": "notes"}')
    assert cli("run", "toy", "--set", "steps=2", "--name", "mine") == 2
    assert "is not a run record rfy can read, so the run would overwrite a file it did not write" in error_line(capsys)
    assert (results(toy) / "mine.json").read_text() == '{"my": "notes"}'


def test_own_4_a_run_under_float64_is_custom_and_left_out_of_the_tables(toy, capsys):
    torch.set_default_dtype(torch.float64)
    try:
        assert cli("run", "toy") == 0
    finally:
        torch.set_default_dtype(torch.float32)
    assert "default_dtype 'float32' -> 'float64'" in capsys.readouterr().err
    record = json.loads((results(toy) / "reduced-seed0-custom.json").read_text())
    assert record["preset"] is False and record["numerics"]["default_dtype"] == "float64"
    assert not (results(toy) / "reduced-seed0.json").exists()
    assert cli("results", "table") == 0
    assert "not run yet" in capsys.readouterr().out


def test_own_5_an_integer_beyond_any_machine_is_one_line_not_a_traceback(toy, capsys):
    assert cli("run", "debiasing", "--set", f"batch_size={10**23}") == 2
    assert f"batch_size must be at most {INT_LIMIT} in magnitude" in error_line(capsys)


def test_own_6_a_record_file_over_the_size_limit_is_skipped_naming_its_size(toy):
    results(toy).mkdir(parents=True)
    (results(toy) / "huge.json").write_bytes(b" " * (2 << 20))
    with pytest.warns(UserWarning, match=r"huge.json is not a valid run record \(it is 2,097,152 bytes, more than"):
        assert read_records("toy", toy / "rfy_results") == []


def test_own_7_a_chapter_folder_that_is_a_symlink_loop_is_an_error(toy, capsys):
    results(toy).parent.mkdir(parents=True)
    os.symlink(results(toy), results(toy))
    assert cli("results", "robustness") == 2
    assert "toy, but it is a symbolic link loop" in error_line(capsys)


def test_own_8_a_claims_seed_whose_record_path_is_a_folder_stops_the_sweep_before_any_seed(toy, capsys):
    (results(toy) / "reduced-seed2.json").mkdir(parents=True)
    assert cli("claims", "toy", "--seeds", "0-2") == 2
    assert "reduced-seed2.json, which is a folder" in error_line(capsys)
    assert not (results(toy) / "reduced-seed0.json").exists()  # seed 0 did not run first


def test_own_9_a_huge_unknown_set_key_is_not_echoed_whole(toy, capsys):
    assert cli("run", "toy", "--set", "k" * 20_000 + "=1") == 2
    message = error_line(capsys)
    assert "unknown config field(s)" in message and "(20004 characters)" in message and len(message) < 500


def test_own_10_a_tampered_numerics_field_is_one_line_on_resume(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    INTERRUPT_AT.clear()
    capsys.readouterr()
    state_file = run_folder(toy) / STATE_FILE
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "numerics": "float64"}))
    assert cli("run", "toy", "--resume") == 2
    assert "numerics must be an object, got str" in error_line(capsys)


def test_own_11_resuming_under_deterministic_algorithms_is_refused_too(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    INTERRUPT_AT.clear()
    capsys.readouterr()
    torch.use_deterministic_algorithms(True)
    try:
        assert cli("run", "toy", "--resume") == 2
    finally:
        torch.use_deterministic_algorithms(False)
    assert "deterministic_algorithms False -> True" in error_line(capsys)


def test_own_12_an_old_record_without_numerics_or_schema_still_counts(toy, capsys):
    results(toy).mkdir(parents=True)
    record = make_record("toy", "reduced-seed0", Config(), {"distance": 0.25}, wall_time_s=1.0)
    write_record(record, toy / "rfy_results")
    path = results(toy) / "reduced-seed0.json"
    old = {key: value for key, value in json.loads(path.read_text()).items()
           if key not in ("numerics", "schema_version")}
    path.write_text(json.dumps(old))
    assert cli("results", "table") == 0
    assert "| 0.250 | 1 |" in capsys.readouterr().out


def test_own_13_a_notebook_whose_records_are_refreshed_is_never_left_half_written(toy, monkeypatch):
    import rfy.files
    from rfy.notebooks import RECORDS_TAG, refresh_records_outputs

    cell = nbformat.v4.new_code_cell("show_records(CHAPTER)", metadata={"tags": [RECORDS_TAG]})
    path = toy / "notebooks" / "09_toy.ipynb"
    path.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    before = path.read_bytes()

    def killed(descriptor):  # the process dies while the new notebook is on its way to the disk
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(rfy.files.os, "fsync", killed)
        refresh_records_outputs([test_faults.CHAPTER], path.parent, toy / "rfy_results")
    assert path.read_bytes() == before and listing(path.parent) == ["09_toy.ipynb"]
    assert refresh_records_outputs([test_faults.CHAPTER], path.parent, toy / "rfy_results") == [path]
    assert "not run yet" in path.read_text()


#: ``python -m rfy`` with the toy chapter registered, for the cases that would hang if they regressed.
TOY_CLI = ("import sys, rfy.chapters, test_faults; sys.modules['toy'] = test_faults; "
           "rfy.chapters.CHAPTER_MODULES.append('toy'); from rfy.cli import main; sys.exit(main(sys.argv[1:]))")


def toy_subprocess(toy: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "TQDM_DISABLE": "1",
           **{name: str(toy / name.lower()) for name in ("RFY_DATA", "RFY_RUNS", "RFY_RESULTS")}}
    return subprocess.run([sys.executable, "-c", TOY_CLI, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_own_14_a_fifo_state_json_or_checkpoint_is_refused_not_waited_on(toy, capsys):
    INTERRUPT_AT.append(2)
    assert cli("run", "toy") == 130
    INTERRUPT_AT.clear()
    checkpoint = run_folder(toy) / "train.pt"
    checkpoint.unlink()
    os.mkfifo(checkpoint)
    done = toy_subprocess(toy, "run", "toy", "--resume")
    assert done.returncode == 2 and f"error: {checkpoint} cannot be loaded as a checkpoint (it is a named pipe" \
        in done.stderr
    state = run_folder(toy) / STATE_FILE
    state.unlink()
    os.mkfifo(state)
    done = toy_subprocess(toy, "claims", "toy", "--seeds", "0")  # a sweep first asks whether the seed can resume
    assert done.returncode == 2 and "state.json was not written by rfy" in done.stderr and "named pipe" in done.stderr


def finishes_within(seconds: float, call):
    """``call()``'s exception (or ``None``), or a failed test if it is still running after ``seconds``: a
    regression that blocks (a read of a named pipe) fails instead of hanging the suite."""
    import threading

    outcome = []

    def target():
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still running after {seconds} s: it blocks"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_own_15_a_fifo_in_the_dataset_cache_is_named_not_waited_on(isolated_cache, monkeypatch):
    from rfy.data import fetch_dataset
    from rfy.errors import ChecksumError
    from test_data import register_hashes_of, tiny_mnist

    folder = isolated_cache / "mnist"
    tiny_mnist(folder)
    register_hashes_of(folder, monkeypatch)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    os.mkfifo(folder / "t10k-labels-idx1-ubyte.gz")
    error = finishes_within(20, lambda: fetch_dataset("mnist", download=False))
    assert isinstance(error, ChecksumError) and "t10k-labels-idx1-ubyte.gz is a named pipe (FIFO)" in str(error)
