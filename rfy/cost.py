"""What a chapter's preset costs: real training steps at the preset's true size, timed and projected.

A chapter module exposes ``cost_parts(config) -> list[CostPart]``: every training its preset runs
(each model, method, label count or agent kind), each with

* ``build(device)``: the preset's *unmodified* model, optimiser and precision setting on synthetic data
  of the real shape and dtype (no download), returning a ``Probe`` whose ``step()`` is one real
  optimisation step through the same code the run's training loop calls, and whose ``evaluate()`` is
  one real evaluation batch;
* ``steps`` and ``evaluations``: how many of each the whole preset runs (every seed, model and repeat).

``estimate`` times ``step()`` after warm-up, measures the peak memory, and projects the wall time of
the whole preset as $T = \\sum_i s_i \\cdot n_i + e_i \\cdot m_i$ (seconds per step times steps, plus
seconds per evaluation batch times evaluation batches, for every part $i$), one part after another on
one device. The full-size tests build the same parts and take one step each, so a shape, dtype or
memory-layout error at the real size fails in CI, not on a learner's GPU.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import math
import re
import resource
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rfy.errors import ConfigError
from rfy.files import atomic_write_text, read_small_file
from rfy.results import MAX_RECORD_BYTES, git_commit, library_versions
from rfy.runtime import hardware_info

#: Colab's free GPU (a T4) has 16 GB, of which about 15 GiB can be allocated.
SMALL_GPU_BYTES = 15 * 2**30
#: One Colab session runs at most about 12 hours.
SESSION_HOURS = 12.0


@dataclass
class Probe:
    """One real optimisation step and one real evaluation batch of a part, ready to call."""

    step: Callable[[], Any]
    evaluate: Callable[[], Any]


@dataclass(frozen=True)
class CostPart:
    """One training of a preset: ``build(device)`` makes its probe; the preset runs ``steps`` calls of
    ``step()`` and ``evaluations`` calls of ``evaluate()`` of it in all; ``unit`` names what one
    ``step()`` is (an optimisation step, an epoch, a PPO iteration of 2048 environment steps, …);
    ``warmup``, when set, is how many untimed steps the part needs before its steps take their
    steady time (a step captured as a CUDA graph after a few ordinary ones)."""

    name: str
    steps: int
    build: Callable[[torch.device], Probe]
    evaluations: int = 0
    unit: str = "step"
    warmup: int | None = None


@dataclass(frozen=True)
class PartCost:
    """The measured cost of one part."""

    name: str
    unit: str
    steps: int
    evaluations: int
    seconds_per_step: float
    seconds_per_evaluation: float
    peak_memory_bytes: int

    @property
    def projected_s(self) -> float:
        """$s \\cdot n + e \\cdot m$: this part's share of the preset's wall time."""
        return self.seconds_per_step * self.steps + self.seconds_per_evaluation * self.evaluations


@dataclass(frozen=True)
class Estimate:
    """What a chapter's preset costs on one device, as ``rfy estimate`` measured it."""

    chapter: str
    mode: str
    device: str
    device_name: str
    parts: list[PartCost]
    timed_steps: int
    hardware: dict[str, Any]
    versions: dict[str, str]
    git_commit: str
    measured_at: str
    peak_memory_kind: str

    @property
    def projected_s(self) -> float:
        """The whole preset, its parts one after another on this device."""
        return sum(part.projected_s for part in self.parts)

    @property
    def peak_memory_bytes(self) -> int:
        return max((part.peak_memory_bytes for part in self.parts), default=0)

    @property
    def sessions(self) -> int:
        """How many 12-hour sessions the preset needs, continued with ``--resume``."""
        return max(1, math.ceil(self.projected_s / (SESSION_HOURS * 3600)))

    @property
    def fits_small_gpu(self) -> bool | None:
        """Whether the peak fits a 16 GB GPU; ``None`` when measured on a CPU (RSS is no GPU measure)."""
        return self.peak_memory_bytes <= SMALL_GPU_BYTES if self.peak_memory_kind == "cuda" else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(projected_s=self.projected_s, peak_memory_bytes=self.peak_memory_bytes,
                    sessions=self.sessions, fits_16gb_gpu=self.fits_small_gpu)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Estimate:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["parts"] = [PartCost(**part) for part in data["parts"]]
        return cls(**values)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a host clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_bytes() -> int:
    """The process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


#: Where ``estimate`` says what it is doing: one line per phase of a part (``print`` in the command line).
Report = Callable[[str], None]


def _silent(message: str) -> None:
    """A ``Report`` that says nothing."""


def _timed(call: Callable[[], Any], repeats: int, device: torch.device, report: Report = _silent,
           label: str = "timed step") -> float:
    """Median seconds of ``repeats`` calls, each synchronised; each call's time is reported as it ends."""
    times = []
    for index in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
        report(f"{label} {index + 1}/{repeats}: {format_step(times[-1])}")
    times.sort()
    return times[len(times) // 2]


def measure_part(part: CostPart, device: torch.device, *, steps: int, warmup: int = 1,
                 report: Report = _silent) -> PartCost:
    """Build ``part`` on ``device``, take ``warmup`` untimed steps (the part's own number if it sets one),
    then time ``steps`` steps and one evaluation batch (median of each); the peak memory is CUDA's peak
    allocated, or the process's RSS. ``report`` hears each phase as it starts or ends, so a slow part is
    never silent."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    probe = part.build(device)
    report(f"built in {format_step(time.perf_counter() - started)}")
    warmups = warmup if part.warmup is None else part.warmup
    for index in range(warmups):
        started = time.perf_counter()
        probe.step()
        synchronize(device)
        report(f"warm-up step {index + 1}/{warmups}: {format_step(time.perf_counter() - started)}")
    seconds_per_step = _timed(probe.step, steps, device, report)
    started = time.perf_counter()
    probe.evaluate()  # warm-up of the evaluation path
    synchronize(device)
    report(f"evaluation warm-up: {format_step(time.perf_counter() - started)}")
    seconds_per_evaluation = _timed(probe.evaluate, 1, device, report, "timed evaluation batch")
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_rss_bytes()
    del probe
    gc.collect()
    return PartCost(part.name, part.unit, part.steps, part.evaluations, seconds_per_step,
                    seconds_per_evaluation, int(peak))


def device_name(device: torch.device) -> str:
    """``NVIDIA H200`` for a GPU, ``CPU (2 cores)`` for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({hardware_info(device)['cpu_count']} cores)"


def device_slug(name: str) -> str:
    """A file-name-safe form of a device name: ``NVIDIA H200`` → ``nvidia-h200``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def estimate(chapter: str, config: Any, parts: list[CostPart], device: torch.device, *, steps: int,
             warmup: int = 1, report: Report = _silent) -> Estimate:
    """Measure every part of ``config``'s preset on ``device`` (see ``measure_part``); ``report`` hears
    which part is measured and each of its phases."""
    if steps < 1:
        raise ConfigError(f"--steps must be a positive integer, got {steps}")
    if not parts:
        raise ConfigError(f"chapter {chapter!r} has no trainings to time in {config.mode} mode")
    measured = []
    for number, part in enumerate(parts, 1):
        prefix = f"[{number}/{len(parts)}] {part.name}"
        report(f"{prefix}: building the preset's model at its true size")
        measured.append(measure_part(part, device, steps=steps, warmup=warmup,
                                     report=lambda message, prefix=prefix: report(f"{prefix}: {message}")))
    return Estimate(chapter=chapter, mode=config.mode, device=str(device), device_name=device_name(device),
                    parts=measured, timed_steps=steps, hardware=hardware_info(device),
                    versions=library_versions(), git_commit=git_commit(),
                    measured_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    peak_memory_kind="cuda" if device.type == "cuda" else "cpu-rss")


def estimate_path(chapter: str, mode: str, device_label: str, root: Path) -> Path:
    """``<root>/<chapter>/estimate-<mode>-<device slug>.json``."""
    return root / chapter / f"estimate-{mode}-{device_slug(device_label)}.json"


def write_estimate(result: Estimate, root: Path) -> Path:
    """Save ``result`` as an estimate record (atomically) and return its path."""
    path = estimate_path(result.chapter, result.mode, result.device_name, root)
    return atomic_write_text(path, json.dumps(result.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_estimates(root: Path, chapter: str) -> list[Estimate]:
    """Every readable estimate record of ``chapter`` under ``root``, by device name."""
    estimates = []
    for path in sorted((root / chapter).glob("estimate-*.json")):
        try:  # a regular file of record size only: a named pipe or /dev/zero must not hang the tables
            estimates.append(Estimate.from_dict(json.loads(read_small_file(path, MAX_RECORD_BYTES))))
        except (OSError, ValueError, TypeError, KeyError) as error:
            warnings.warn(f"skipped: {path} is not a valid estimate record ({error})", stacklevel=2)
    return sorted(estimates, key=lambda item: item.device_name)


def format_duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3.4 h`` or ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_step(seconds: float) -> str:
    """``120 ms`` or ``2.4 s``."""
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else \
        f"{seconds * 1000:.2f} ms"


def format_bytes(count: int) -> str:
    """``812 MiB`` or ``14.2 GiB``."""
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def cost_table(root: Path, chapters: list[Any], mode: str = "full") -> str:
    """Markdown table of every ``mode`` estimate record under ``root``: one row per chapter and device,
    in the order of ``chapters`` (``rfy.contract.Chapter``: its ``slug`` and ``heading``)."""
    lines = ["| Chapter | Device | Trainings | Slowest step | Peak memory | Whole preset | 12-hour sessions | "
             "Fits 16 GB | Measured |",
             "|---|---|---|---|---|---|---|---|---|"]
    for chapter in chapters:
        title, slug = chapter.heading, chapter.slug
        measured = [item for item in read_estimates(root, slug) if item.mode == mode]
        if not measured:
            lines.append(f"| {title} | not estimated yet: `python -m rfy estimate {slug}` | | | | | | | |")
        for item in measured:
            slowest = max(item.parts, key=lambda part: part.seconds_per_step)
            fits = {True: "yes", False: "no", None: "—"}[item.fits_small_gpu]
            memory = format_bytes(item.peak_memory_bytes) + ("" if item.peak_memory_kind == "cuda" else " (RSS)")
            lines.append(f"| {title} | {item.device_name} | {len(item.parts)} | "
                         f"{format_step(slowest.seconds_per_step)} ({slowest.name}) | {memory} | "
                         f"{format_duration(item.projected_s)} | {item.sessions} | {fits} | "
                         f"{item.measured_at[:10]}, `{item.git_commit[:10]}` |")
    return "\n".join(lines) + "\n"
