"""``python -m rfy campaign``: the plan, the budget, what a campaign cut short leaves, and what to commit.

The campaign runs on a lent GPU once in a while; these tests run it on the CPU with tiny budgets so that
it cannot rot between two GPUs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rfy import chapters
from rfy.campaign import (BENCH_S, MAX_SIDE_BY_SIDE, Campaign, Step, chapter_two_steps, commit_advice, run_campaign,
                          run_step, seeds_that_fit)
from rfy.cli import main


def test_plan_lists_every_gpu_step_with_its_seconds_and_runs_nothing(tmp_path: Path, capsys) -> None:
    assert main(["campaign", "--plan", "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.strip()[:3].strip(". ").isdigit()]
    names = [line.split()[1] for line in steps]
    assert names[0] == "cuda-tests" and names[-1] == "bench-mixmatch"
    assert names[1:-2] == [f"estimate-{c.slug}" for c in chapters.all_chapters()]
    assert names[-2].startswith("semi-unsupervised-full")
    assert all(" s " in line for line in steps) and "planned in all: ~540 s" in out
    assert not (tmp_path / "out").exists()


def test_a_bad_budget_is_one_error_line(capsys) -> None:
    assert main(["campaign", "--plan", "--budget", "-3"]) == 2
    assert "error: --budget must be a positive number of seconds, got -3.0" in capsys.readouterr().err


def test_seeds_side_by_side_are_as_many_as_fit_and_at_least_one() -> None:
    assert seeds_that_fit(None, 100) == 1
    assert seeds_that_fit(500, 100) == 1  # does not fit: one run still leaves checkpoints to resume
    assert seeds_that_fit(100, 100) == 1
    assert seeds_that_fit(100, 125) == 2  # two runs sharing the GPU take 1.25 times as long
    assert seeds_that_fit(10, 10_000) == MAX_SIDE_BY_SIDE


def test_chapter_two_runs_as_many_seeds_as_its_estimate_on_this_device_allows(tmp_path: Path) -> None:
    campaign = Campaign(out=tmp_path, device="cuda", budget_s=BENCH_S + 400)
    folder = campaign.results / "semi-unsupervised"
    folder.mkdir(parents=True)
    record = json.loads((Path(__file__).resolve().parents[1] / "results" / "semi-unsupervised" /
                         "estimate-full-cpu-2-cores.json").read_text())
    record.update(device_name="NVIDIA H200", parts=[dict(record["parts"][0], seconds_per_step=300.0 / record[
        "parts"][0]["steps"], seconds_per_evaluation=0.0, evaluations=0)])
    (folder / "estimate-full-nvidia-h200.json").write_text(json.dumps(record))
    steps = chapter_two_steps(campaign, "NVIDIA H200")  # 300 s a seed, about 400 s left: two side by side (375 s)
    assert [step.argv[:7] for step in steps] == [["rfy", "run", "semi-unsupervised", "--mode", "full", "--seed", str(s)]
                                                 for s in (0, 1)]
    assert len(chapter_two_steps(campaign, "NVIDIA A100")) == 1  # no estimate for that GPU: one seed


def test_a_step_past_the_budget_is_stopped_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    campaign = Campaign(out=tmp_path, device="cpu", budget_s=3)
    started = time.monotonic()
    step = run_step(campaign, Step("sleeper", ["timeit", "-n", "1", "-r", "1", "import time; time.sleep(60)"], 1))
    assert time.monotonic() - started < 20
    assert step.status.startswith("cut short by the budget") and (tmp_path / step.log).exists()
    late = run_step(campaign, Step("late", ["timeit", "pass"], 1))
    assert late.status == "skipped: the budget is spent" and late.returncode is None


def test_commit_advice_names_every_record_written(tmp_path: Path) -> None:
    campaign = Campaign(out=tmp_path, device="cuda", budget_s=10)
    assert commit_advice(campaign) == "nothing to commit: no step wrote a record"
    for name in ("neural-ode/estimate-full-nvidia-h200.json", "semi-unsupervised/full-seed0.json"):
        (campaign.results / name).parent.mkdir(parents=True, exist_ok=True)
        (campaign.results / name).write_text("{}")
    advice = commit_advice(campaign)
    assert "2 records: neural-ode/estimate-full-nvidia-h200.json, semi-unsupervised/full-seed0.json" in advice


def test_a_cpu_dry_run_with_a_tiny_budget_leaves_a_summary_and_an_archive(tmp_path: Path, capsys) -> None:
    """The whole campaign on the CPU in 25 s: steps run or are cut short or skipped, never silently lost; the
    summary and the archive are written after every step, and the last line says what to commit."""
    import tarfile

    out, archive = tmp_path / "out", tmp_path / "campaign.tar.gz"
    started = time.monotonic()
    assert main(["campaign", "--device", "cpu", "--budget", "25", "--out", str(out), "--archive", str(archive)]) == 0
    assert time.monotonic() - started < 25 + 3 * 10 + 20  # the budget, a grace period per cut, and starting
    summary = json.loads((out / "campaign.json").read_text())
    names = [step["name"] for step in summary["steps"]]
    assert names[0] == "cuda-tests" and names[-1] == "bench-mixmatch" and len(names) >= 11
    assert all(step["status"].startswith(("done", "failed", "cut short", "skipped")) for step in summary["steps"])
    assert summary["steps"][-1]["status"] == "skipped: the budget is spent"
    with tarfile.open(archive) as packed:
        assert "campaign.json" in packed.getnames() and any(n.startswith("logs/") for n in packed.getnames())
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(("to commit:", "nothing to commit"))


def test_a_gpu_campaign_without_a_gpu_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert main(["campaign", "--out", str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "out").exists()
