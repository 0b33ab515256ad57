"""`rfy estimate`: real steps of a preset timed here, projected to the whole preset, kept as a record."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rfy.cli import main
from rfy.cost import SMALL_GPU_BYTES, Estimate, PartCost, cost_table, device_slug, read_estimates


def part(seconds: float, steps: int, peak: int = 2**20) -> PartCost:
    return PartCost("model", "step", steps, evaluations=4, seconds_per_step=seconds, seconds_per_evaluation=0.5,
                    peak_memory_bytes=peak)


def estimate_of(parts: list[PartCost], kind: str = "cuda") -> Estimate:
    return Estimate("semi-unsupervised", "full", "cuda", "NVIDIA H200", parts, 10, {}, {}, "abc", "2026-12-04T00:00",
                    kind)


def test_projection_sums_steps_and_evaluations_of_every_part() -> None:
    result = estimate_of([part(0.01, 1000), part(0.02, 500)])
    assert result.projected_s == pytest.approx(0.01 * 1000 + 4 * 0.5 + 0.02 * 500 + 4 * 0.5)


def test_sessions_round_up_to_whole_twelve_hour_sessions() -> None:
    evaluations_s = 4 * 0.5
    assert estimate_of([part(1.0, 12 * 3600 - 2)]).projected_s == 12 * 3600 - 2 + evaluations_s
    assert estimate_of([part(1.0, 12 * 3600 - 2)]).sessions == 1
    assert estimate_of([part(1.0, 12 * 3600 - 1)]).sessions == 2


def test_fits_a_small_gpu_only_says_so_for_cuda_measurements() -> None:
    assert estimate_of([part(0.1, 1, SMALL_GPU_BYTES)]).fits_small_gpu is True
    assert estimate_of([part(0.1, 1, SMALL_GPU_BYTES + 1)]).fits_small_gpu is False
    assert estimate_of([part(0.1, 1)], kind="cpu-rss").fits_small_gpu is None


def test_device_slug() -> None:
    assert device_slug("NVIDIA H200") == "nvidia-h200" and device_slug("CPU (2 cores)") == "cpu-2-cores"


def test_estimate_command_times_real_steps_and_writes_a_record(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["estimate", "semi-unsupervised", "--mode", "reduced", "--device", "cpu", "--steps", "1",
                 "--results", str(tmp_path), "--workdir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "M2 on digits" in out and "GM-DGM on the prototypes stand-in" in out and "12-hour session" in out
    (path,) = (tmp_path / "semi-unsupervised").glob("estimate-reduced-cpu-*.json")
    record = json.loads(path.read_text())
    assert record["mode"] == "reduced" and record["fits_16gb_gpu"] is None and len(record["parts"]) == 4
    assert all(p["seconds_per_step"] > 0 and p["steps"] > 0 for p in record["parts"])
    assert math.isclose(record["projected_s"], sum(PartCost(**p).projected_s for p in record["parts"]))
    (read,) = read_estimates(tmp_path, "semi-unsupervised")
    assert read.projected_s == pytest.approx(record["projected_s"])
    table = cost_table(tmp_path, [SimpleNamespace(slug="semi-unsupervised", heading="2. Semi")], mode="reduced")
    assert "| 2. Semi | CPU (" in table and "(RSS)" in table


def test_estimate_rejects_bad_steps(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["estimate", "semi-unsupervised", "--mode", "reduced", "--device", "cpu", "--steps", "0",
                 "--no-record"]) == 2
    assert "error: --steps must be a positive integer, got 0" in capsys.readouterr().err


def test_cost_table_has_a_row_for_every_chapter_measured_or_not(tmp_path: Path) -> None:
    """A chapter without an estimate record says so in its own row: the table never silently lists fewer chapters."""
    table = cost_table(tmp_path, [SimpleNamespace(slug="mixmatch", heading="7. MixMatch"),
                                  SimpleNamespace(slug="voters", heading="6. Voters")])
    rows = [line for line in table.splitlines()[2:]]
    assert rows == ["| 7. MixMatch | not estimated yet: `python -m rfy estimate mixmatch` | | | | | | | |",
                    "| 6. Voters | not estimated yet: `python -m rfy estimate voters` | | | | | | | |"]


def test_committed_cost_table_has_every_chapter_estimated() -> None:
    """The running page's cost table shows a measured row for each registered chapter's full preset."""
    from rfy import chapters

    table = (Path(__file__).resolve().parents[1] / "book" / "_generated" / "cost_table.md").read_text()
    assert "not estimated yet" not in table
    for chapter in chapters.all_chapters():
        assert f"| {chapter.heading} | " in table, chapter.slug


def test_estimate_reports_every_phase_of_every_part() -> None:
    """A slow part is never silent: each part's build, warm-up, timed steps and evaluation are reported."""
    from rfy.cost import CostPart, Probe, estimate
    import torch

    heard: list[str] = []
    parts = [CostPart(name, 5, lambda device: Probe(step=lambda: None, evaluate=lambda: None))
             for name in ("first", "second")]
    estimate("x", SimpleNamespace(mode="full"), parts, torch.device("cpu"), steps=2, report=heard.append)
    for name, number in (("first", 1), ("second", 2)):
        mine = [line.removeprefix(f"[{number}/2] {name}: ") for line in heard if line.startswith(f"[{number}/2] {name}: ")]
        phases = [re.sub(r"( in|:) [\d.]+ m?s$", "", line) for line in mine]
        assert phases == ["building the preset's model at its true size", "built", "warm-up step 1/1", "timed step 1/2",
                          "timed step 2/2", "evaluation warm-up", "timed evaluation batch 1/1"], mine


def test_committed_cost_table_is_current(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """book/_generated/cost_table.md must be what `rfy results costs` prints from the estimate records."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    assert main(["results", "costs"]) == 0
    assert capsys.readouterr().out == (root / "book" / "_generated" / "cost_table.md").read_text()


def test_estimate_names_a_missing_optional_package(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    from rfy import chapters
    from rfy.cost import CostPart

    def needs_torchvision(device):
        raise ModuleNotFoundError("No module named 'torchvision'", name="torchvision")

    chapter = chapters.chapter("semi-unsupervised")
    monkeypatch.setattr(chapters, "chapter", lambda slug: SimpleNamespace(
        slug=slug, heading="2. Semi", Config=chapter.Config, optional_packages=None,
        cost_parts=lambda config: [CostPart("trunk", 10, needs_torchvision)]))
    assert main(["estimate", "semi-unsupervised", "--device", "cpu", "--no-record"]) == 2
    assert "needs the package 'torchvision': pip install torchvision" in capsys.readouterr().err


def test_a_part_sets_its_own_warmup() -> None:
    from rfy.cost import CostPart, Probe, measure_part
    import torch

    calls = []
    part = CostPart("counted", 5, lambda device: Probe(step=lambda: calls.append(1), evaluate=lambda: None), warmup=4)
    measure_part(part, torch.device("cpu"), steps=3, warmup=1)
    assert len(calls) == 4 + 3



def test_an_estimate_path_that_is_a_pipe_is_skipped_not_waited_on(tmp_path: Path) -> None:
    """A named pipe called estimate-*.json would block a plain read for ever (and `make table` with it)."""
    import os
    import threading

    (tmp_path / "mixmatch").mkdir()
    os.mkfifo(tmp_path / "mixmatch" / "estimate-full-pipe.json")
    found: list = []
    reader = threading.Thread(target=lambda: found.append(read_estimates(tmp_path, "mixmatch")), daemon=True)
    with pytest.warns(UserWarning, match="named pipe"):
        reader.start()
        reader.join(timeout=10)
    assert found == [[]]
