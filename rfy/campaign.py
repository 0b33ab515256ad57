"""All the work of a short GPU slot, in order, inside a time budget: ``python -m rfy campaign``.

A GPU is lent now and then for about fifteen minutes. The campaign spends one call of it on, in order:

1. the CUDA-only tests (``pytest -m cuda``: the CUDA graph of chapter 2's step against eager steps, ...);
2. ``rfy estimate --device cuda`` for every chapter: each full preset's real steps at its true size;
3. chapter 2's full preset, as many seeds side by side on the one GPU as the estimate says fit in what is
   left (at least one);
4. ``rfy bench mixmatch`` on the GPU.

Each step is a child process with its own log under ``--out``, given at most what is left of the budget; its
records (estimates, run records) are written under ``--out``/results as soon as it ends, and ``campaign.json``
is rewritten after every step, so a campaign cut short still leaves everything finished so far. A run cut
short keeps its checkpoints under ``--out``/runs (continue it with ``rfy run … --resume --workdir``).
``--archive`` also packs the records and logs into one ``.tar.gz`` after every step, for a machine that
returns only a few files. The last line printed says what to commit.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rfy.contract import Chapter
from rfy.cost import device_slug, read_estimates
from rfy.errors import ConfigError
from rfy.files import atomic_write_text, ensure_writable_dir

#: The default budget: a 15-minute lease, less the machine's start, the transfers and a margin to rerun.
DEFAULT_BUDGET_S = 540
#: Planned seconds of the fixed steps (a Python start and import of torch is part of each).
CUDA_TESTS_S = 90
ESTIMATE_S = 25
BENCH_S = 45
#: Chapter 2's seeds side by side: at most this many, each slowed by this share per extra run on the GPU.
MAX_SIDE_BY_SIDE = 3
SHARING_SLOWDOWN = 0.25
#: A child gets this long to end after SIGTERM (it saves its checkpoint) before it is killed.
GRACE_S = 10
SEMI_UNSUPERVISED = "semi-unsupervised"
#: The checkout's tests (the campaign runs in a copy of the working tree, where ``rfy`` is not installed).
TESTS = Path(__file__).resolve().parents[1] / "tests"


@dataclass
class Step:
    """One child process of the campaign: ``argv`` after ``python -m``, its planned seconds, its outcome."""

    name: str
    argv: list[str]
    planned_s: float
    status: str = "not run"
    seconds: float = 0.0
    returncode: int | None = None
    log: str = ""


@dataclass
class Campaign:
    """The folders and budget of one campaign, and its steps so far."""

    out: Path
    device: str
    budget_s: float
    started: float = field(default_factory=time.monotonic)
    steps: list[Step] = field(default_factory=list)
    archive: Path | None = None

    @property
    def results(self) -> Path:
        return self.out / "results"

    @property
    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def folder_options(self) -> list[str]:
        return ["--results", str(self.results), "--workdir", str(self.out / "runs")]


def fixed_steps(chapters: Sequence[Chapter], device: str, folder_options: list[str]) -> tuple[list[Step], Step]:
    """The CUDA tests and one estimate per chapter (in book order), and the bench that ends the campaign."""
    tests = Step("cuda-tests", ["pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", str(TESTS)], CUDA_TESTS_S)
    estimates = [Step(f"estimate-{chapter.slug}", ["rfy", "estimate", chapter.slug, "--device", device,
                                                   *folder_options], ESTIMATE_S)
                 for chapter in chapters if chapter.cost_parts is not None]
    bench = Step("bench-mixmatch", ["rfy", "bench", "mixmatch", "--device", device], BENCH_S)
    return [tests, *estimates], bench


def seeds_that_fit(projected_s: float | None, left_s: float) -> int:
    """How many seeds of chapter 2's full preset to run side by side in ``left_s`` seconds: the most ``k`` (at
    most ``MAX_SIDE_BY_SIDE``) with ``projected_s · (1 + SHARING_SLOWDOWN · (k − 1)) ≤ left_s``, at least 1
    (one run that does not finish still leaves checkpoints to resume)."""
    if projected_s is None or projected_s <= 0:
        return 1
    fitting = [k for k in range(1, MAX_SIDE_BY_SIDE + 1) if projected_s * (1 + SHARING_SLOWDOWN * (k - 1)) <= left_s]
    return max(fitting, default=1)


def chapter_two_steps(campaign: Campaign, device_name: str | None) -> list[Step]:
    """Chapter 2's full preset on seeds 0 … k−1, with ``k`` from the estimate this campaign just wrote."""
    projected = None
    if device_name is not None:
        measured = [e for e in read_estimates(campaign.results, SEMI_UNSUPERVISED)
                    if e.mode == "full" and device_slug(e.device_name) == device_slug(device_name)]
        projected = measured[0].projected_s if measured else None
    left = campaign.left_s - BENCH_S
    seeds = seeds_that_fit(projected, left)
    planned = left if projected is None else min(left, projected * (1 + SHARING_SLOWDOWN * (seeds - 1)))
    return [Step(f"{SEMI_UNSUPERVISED}-full-seed{seed}",
                 ["rfy", "run", SEMI_UNSUPERVISED, "--mode", "full", "--seed", str(seed), "--device", campaign.device,
                  *campaign.folder_options()], planned) for seed in range(seeds)]


def plan_text(steps: Sequence[Step], budget_s: float) -> str:
    """The steps with their planned seconds, as ``--plan`` prints them."""
    lines = [f"campaign plan, budget {budget_s:.0f} s (steps run in this order, each given at most what is left):"]
    for number, step in enumerate(steps, 1):
        lines.append(f"  {number:>2}. {step.name:<36} ~{step.planned_s:>5.0f} s   python -m {' '.join(step.argv)}")
    lines.append(f"  planned in all: ~{sum(step.planned_s for step in steps):.0f} s")
    return "\n".join(lines)


def run_step(campaign: Campaign, step: Step, reserve_s: float = 0.0) -> Step:
    """Run ``step`` as a child with its output in ``logs/<name>.log``, for at most what is left of the budget
    less ``reserve_s`` (kept for the steps after it); past that it gets SIGTERM (runs save their checkpoint and
    exit), then SIGKILL after ``GRACE_S``."""
    log = campaign.out / "logs" / f"{step.name}.log"
    step.log = str(log.relative_to(campaign.out))
    allowed = campaign.left_s - reserve_s
    if allowed < 1:
        step.status = "skipped: the budget is spent"
        return step
    start = time.monotonic()
    with log.open("w") as sink:
        child = subprocess.Popen([sys.executable, "-m", *step.argv], stdout=sink, stderr=subprocess.STDOUT,
                                 env={**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"},
                                 start_new_session=True)
        try:
            step.returncode = child.wait(timeout=allowed)
            step.status = "done" if step.returncode == 0 else f"failed (exit {step.returncode})"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                step.returncode = child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                step.returncode = child.wait()
            step.status = f"cut short by the budget after {allowed:.0f} s"
    step.seconds = time.monotonic() - start
    return step


def run_side_by_side(campaign: Campaign, steps: Sequence[Step], reserve_s: float) -> None:
    """Run ``steps`` at the same time (one GPU, several processes), each as ``run_step`` runs one."""
    with ThreadPoolExecutor(max_workers=max(len(steps), 1)) as pool:
        list(pool.map(lambda step: run_step(campaign, step, reserve_s=reserve_s), steps))


def save_progress(campaign: Campaign) -> None:
    """Rewrite ``campaign.json`` (and the archive, if asked for) with every step so far."""
    summary = {"device": campaign.device, "budget_s": campaign.budget_s,
               "spent_s": round(time.monotonic() - campaign.started, 1),
               "git_commit": os.environ.get("RFY_GIT_COMMIT", ""),
               "steps": [dataclasses.asdict(step) for step in campaign.steps]}
    atomic_write_text(campaign.out / "campaign.json", json.dumps(summary, indent=2) + "\n")
    if campaign.archive is not None:
        partial = campaign.archive.with_name(campaign.archive.name + ".part")
        with tarfile.open(partial, "w:gz") as archive:
            for name in ("campaign.json", "logs", "results"):
                if (campaign.out / name).exists():
                    archive.add(campaign.out / name, arcname=name)
        partial.replace(campaign.archive)


def gpu_name(device: str) -> str | None:
    """The name of the CUDA device ``device`` names (``None`` for a CPU)."""
    import torch

    from rfy.runtime import select_device

    selected = select_device(device)
    return torch.cuda.get_device_name(selected) if selected.type == "cuda" else None


def commit_advice(campaign: Campaign) -> str:
    """The last line: which records to copy into ``results/`` and commit."""
    records = sorted(str(path.relative_to(campaign.results)) for path in campaign.results.rglob("*.json"))
    if not records:
        return "nothing to commit: no step wrote a record"
    return (f"to commit: copy {campaign.results}/* into results/ ({len(records)} records: {', '.join(records)}), "
            f"then `make table` and commit them with the numbers from {campaign.out / 'campaign.json'}")


def run_campaign(chapters: Sequence[Chapter], *, out: Path, device: str, budget_s: float, plan: bool,
                 archive: Path | None = None, say: Callable[[str], None] = print) -> int:
    """``rfy campaign``: print the plan, or run it within ``budget_s`` seconds (see the module docstring)."""
    if not math.isfinite(budget_s) or budget_s <= 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {budget_s}")
    campaign = Campaign(out=out, device=device, budget_s=budget_s, archive=archive)
    fixed, bench = fixed_steps(chapters, device, campaign.folder_options())
    if plan:
        left = budget_s - sum(step.planned_s for step in fixed) - bench.planned_s
        chapter_two = Step(f"{SEMI_UNSUPERVISED}-full-seed0..", ["rfy", "run", SEMI_UNSUPERVISED, "--mode", "full",
                                                                  "--seed", "S", "--device", device],
                           max(left, 0.0))
        say(plan_text([*fixed, chapter_two, bench], budget_s))
        say(f"  chapter 2: as many seeds side by side as its estimate says fit in what is left (1 to "
            f"{MAX_SIDE_BY_SIDE}); nothing was run (--plan)")
        return 0
    name = gpu_name(device)  # an absent device fails here, before anything is written
    ensure_writable_dir(out, "--out")
    (out / "logs").mkdir(exist_ok=True)
    for step in fixed:
        say(f"[{campaign.left_s:>4.0f} s left] {step.name} ...")
        campaign.steps.append(run_step(campaign, step))
        save_progress(campaign)
        say(f"  {step.status} in {step.seconds:.0f} s (log: {step.log})")
    chapter_two = chapter_two_steps(campaign, name)
    say(f"[{campaign.left_s:>4.0f} s left] chapter 2's full preset, {len(chapter_two)} seed(s) side by side ...")
    campaign.steps.extend(chapter_two)
    run_side_by_side(campaign, chapter_two, reserve_s=BENCH_S)
    save_progress(campaign)
    for step in chapter_two:
        say(f"  {step.name}: {step.status} in {step.seconds:.0f} s (log: {step.log})")
    say(f"[{campaign.left_s:>4.0f} s left] {bench.name} ...")
    campaign.steps.append(run_step(campaign, bench))
    save_progress(campaign)
    say(f"  {bench.status} in {bench.seconds:.0f} s (log: {bench.log})")
    say(commit_advice(campaign))
    return 0


__all__ = ["run_campaign", "seeds_that_fit", "plan_text", "Step", "Campaign", "DEFAULT_BUDGET_S"]
