"""The command line: headless runs, run records, resuming, data and the reproduction table."""
import dataclasses
import json
from pathlib import Path

import pytest

import rfy.neural_ode.experiments as experiments
from rfy.chapters import chapter
from rfy.cli import main, parse_override
from rfy.errors import ConfigError
from test_data import register_hashes_of, tiny_mnist

TINY = ["--set", "epochs=1", "--set", "channels=4", "--set", "batch_size=512", "--set", "cnf_iters=2", "--set", "cnf_width=4",
        "--set", "latent_iters=2", "--set", "n_spirals=8", "--set", "memory_steps=(1, 2)",
        "--set", "nfe_tolerances=(0.1,)"]


@pytest.fixture()
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("RFY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return tmp_path


def experiments_claims(metrics):
    return chapter("neural-ode").claims(metrics)


def run(folders, *args):
    return main(["run", "neural-ode", "--workdir", str(folders / "runs"), "--results",
                 str(folders / "results"), *TINY, *args])


def test_reduced_run_writes_a_record_and_resume_skips_finished_stages(folders, monkeypatch):
    assert run(folders, "--seed", "3") == 0
    # The tiny settings are not the preset, so the record says so in its name and its `preset` field.
    record = json.loads((folders / "results" / "neural-ode" / "reduced-seed3-custom.json").read_text())
    assert record["seed"] == 3 and record["config"]["epochs"] == 1 and record["mode"] == "reduced"
    assert record["preset"] is False and {c["key"] for c in record["claims"]} == {
        c.key for c in experiments_claims(record["metrics"])}
    assert {"odenet_test_error_pct", "cnf_final_test_nll", "latent_ode_extrapolation_rmse",
            "adjoint_gradient_relative_error"} <= set(record["metrics"])

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage was run again")
    monkeypatch.setattr(experiments, "train_cnf", must_not_run)
    assert run(folders, "--seed", "3", "--resume") == 0


def test_full_mode_runs_on_mnist_files_in_the_cache(folders, monkeypatch):
    tiny_mnist(folders / "data" / "mnist")
    register_hashes_of(folders / "data" / "mnist", monkeypatch)
    assert run(folders, "--mode", "full", "--set", "epochs=1", "--set", "solver='rk4'", "--set", "adjoint=False",
               "--set", "cnf_solver='rk4'", "--set", "latent_solver='rk4'", "--set", "lr_milestones=()",
               "--set", "table2_spirals=8", "--set", "table2_iters=2") == 0
    record = json.loads((folders / "results" / "neural-ode" / "full-seed0-custom.json").read_text())
    assert record["config"]["dataset"] == "mnist" and record["config"]["augment"] is True


def test_full_mode_without_data_explains_what_to_download(folders, capsys):
    assert run(folders, "--mode", "full") == 2
    message = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in message and str(folders / "data" / "mnist") in message


def test_bad_override_is_a_clear_error(folders, capsys):
    assert run(folders, "--set", "solver='leapfrog'") == 2
    assert "solver must be one of" in capsys.readouterr().err
    assert run(folders, "--set", "epochz=3") == 2
    assert "epochz" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("epochs")
    assert parse_override("lr=0.5") == ("lr", 0.5) and parse_override("solver=rk4") == ("solver", "rk4")


def test_unknown_chapter_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["run", "no-such-chapter"])
    assert "invalid choice" in capsys.readouterr().err


def test_bench_prints_the_speed_of_the_full_setting(capsys, monkeypatch):
    import rfy.mixmatch as mixmatch

    real = mixmatch.benchmark  # the WRN-28-2 itself is timed in test_mixmatch; here a small model keeps it fast
    small_benchmark = lambda **kwargs: real(**kwargs, warmup=1, model="small-cnn")
    small = dataclasses.replace(mixmatch.CHAPTER, benchmark=small_benchmark)
    monkeypatch.setattr(mixmatch, "CHAPTER", small)
    assert main(["bench", "mixmatch", "--device", "cpu", "--steps", "1", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "small-cnn" in out and "steps_per_s" in out and "images_per_s" in out
    assert main(["bench", "neural-ode"]) == 2
    assert "chapter 'neural-ode' has no benchmark; chapters with one: ('mixmatch',)" in capsys.readouterr().err


def test_data_list_and_path(folders, capsys):
    assert main(["data", "list"]) == 0 and "mnist" in capsys.readouterr().out
    assert main(["data", "path"]) == 0 and capsys.readouterr().out.strip() == str(folders / "data")


def test_committed_reproduction_table_is_current(capsys, monkeypatch):
    """book/_generated/reproduction_table.md must be what `rfy results table` prints from results/."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    assert main(["results", "table"]) == 0
    assert capsys.readouterr().out == (root / "book" / "_generated" / "reproduction_table.md").read_text()
