"""Command line: run a chapter headless, resumably, and manage data and results.

    python -m rfy run neural-ode --mode full --seed 1 --resume
    torchrun --nproc_per_node 8 -m rfy run mixmatch --mode full
    python -m rfy claims mixmatch --seeds 0-9
    python -m rfy bench mixmatch
    python -m rfy estimate mixmatch --device cuda
    python -m rfy campaign --plan                # what a lent GPU's 15 minutes are spent on
    python -m rfy data download mnist
    python -m rfy results table
    python -m rfy results robustness --output book/_generated/robustness_table.md
    python -m rfy results chapters --output book/_generated/chapters_table.md
    python -m rfy notebooks execute notebooks/01_neural_odes.ipynb
    python -m rfy notebooks student notebooks/*.ipynb --output _build/student
    python -m rfy notebooks records          # the records each notebook shows, brought up to date

Every bad input (an unknown value, a file that cannot be used, a device that is not there) prints
one line ``error: <what>, <what is allowed or what to do>`` and exits with status 2.

Exit codes:
  0    done
  1    a notebook failed to execute (``notebooks execute``: the failing cell is named; the notebook is unchanged)
  2    an ``error:`` line: bad input, a file or folder that cannot be used, a run folder in use by another
       run, a missing optional dependency, a full disk, not enough memory
  130  interrupted (Ctrl-C); a run continues with ``--resume``
  143  terminated (SIGTERM, e.g. ``kill`` or a job scheduler's time limit); a run continues with ``--resume``
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import os
import re
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfy import data
from rfy import chapters
from rfy.checkpoint import STATE_FILE, RunState, read_state_text
from rfy.claims import HELD_OUT_SEEDS, TUNING_SEEDS, seed_range
from rfy.config import MODES, RESUMABLE_CHANGES, RunConfig, brief, config_differences, describe_differences
from rfy.contract import Chapter
from rfy.distributed import process_rank
from rfy.errors import ChecksumError, ConfigError, CorruptFileError, DatasetNotAvailableError
from rfy.files import NAME_RULE, check_name, describe_path, ensure_writable_dir, folder_lock
from rfy.results import (check_results_root, read_record, read_records, record_path, record_run, results_dir,
                         results_source)
from rfy.runtime import MAX_SEED, numeric_differences, seed_everything, select_device
from rfy.tables import (chapters_table, claim_summary, claims_sweep_table, markdown_table, preset_differences,
                        preset_records, reproduction_rows, robustness_table)

#: Errors printed as one ``error:`` line with exit status 2 instead of a traceback.
USER_ERRORS = (ConfigError, DatasetNotAvailableError, ChecksumError, CorruptFileError)
EXIT_CODES = {"notebook failed": 1, "error": 2, "interrupted": 130, "terminated": 143}
EXIT_CODES_HELP = ("exit codes: 0 done; 1 a notebook failed to execute; 2 an error line (bad input, unusable file "
                   "or folder, run folder in use, missing optional dependency, full disk, out of memory); "
                   "130 interrupted (Ctrl-C); 143 terminated (SIGTERM)")
#: The longest ``--set`` value read: a config value is a number, a word or a short tuple.
MAX_SET_CHARACTERS = 1000
#: What the bench command accepts: enough for any chapter's full-mode batch, not a request to fill the memory.
BENCH_LIMITS = {"--steps": 100_000, "--batch-size": 65_536}
RESERVED_FIELDS = {"seed": "--seed", "mode": "--mode", "device": "--device"}


def default_workdir() -> Path:
    """Where checkpoints go: ``RFY_RUNS`` if set, else ``runs`` under the data cache."""
    return Path(os.environ["RFY_RUNS"]) if os.environ.get("RFY_RUNS") else data.data_dir() / "runs"


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with ``value`` read as a Python literal when it is one (``lr=0.1``, ``adjoint=True``)."""
    if "=" not in text:
        raise ConfigError(f"--set takes key=value, got {brief(text)}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if len(raw) > MAX_SET_CHARACTERS:
        shown = key if len(key) <= 40 else key[:40] + "…"
        raise ConfigError(f"--set {shown}=… is {len(raw):,} characters long; a value is at most "
                          f"{MAX_SET_CHARACTERS:,} (a number, a word or a short tuple)")
    if key in RESERVED_FIELDS:
        raise ConfigError(f"--set {key}=… is not allowed: the {key} is given with {RESERVED_FIELDS[key]}, "
                          f"e.g. {RESERVED_FIELDS[key]} {raw or '…'}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = raw
    return key, value


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"``, ``"3"`` or a mix (``"0-2,7"``) as a sorted list of distinct seeds."""
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            low, high = int(first), int(last) if last else int(first)
            if low > high or low < 0 or high > MAX_SEED:
                raise ValueError
            if high - low >= 10_000:
                raise ConfigError(f"--seeds {brief(text)} asks for {high - low + 1:,} seeds; sweep at most 10000 "
                                  f"at once (e.g. 0-9999)")
            seeds.update(range(low, high + 1))
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"--seeds must be seeds from 0 to {MAX_SEED} like 0-9, 0,3,5 or 3, "
                          f"got {brief(text)}") from None
    return sorted(seeds)


@dataclass
class Folders:
    """Where a run keeps its checkpoints and writes its record, both checked before it starts."""

    workdir: Path
    results: Path


def check_folders(args: argparse.Namespace) -> Folders:
    """The work and results folders, each checked to be a writable folder (``RFY_DATA`` too, when set)."""
    if os.environ.get("RFY_DATA") and Path(os.environ["RFY_DATA"]).expanduser().is_file():
        raise ConfigError(f"RFY_DATA must be a folder (the dataset cache), but {os.environ['RFY_DATA']} is a file; "
                          f"point RFY_DATA at a folder")
    if args.workdir:
        workdir = ensure_writable_dir(args.workdir, "--workdir")
    elif os.environ.get("RFY_RUNS"):
        workdir = ensure_writable_dir(os.environ["RFY_RUNS"], "RFY_RUNS")
    else:
        workdir = ensure_writable_dir(default_workdir(), "RFY_DATA" if os.environ.get("RFY_DATA") else "the data cache",
                                      hint=" (checkpoints go to its runs/ folder), or set RFY_RUNS for checkpoints")
    if args.results:
        results = ensure_writable_dir(args.results, "--results")
    elif os.environ.get("RFY_RESULTS"):
        results = ensure_writable_dir(os.environ["RFY_RESULTS"], "RFY_RESULTS")
    else:
        results = ensure_writable_dir(results_dir(), "the results folder", hint=" with --results or RFY_RESULTS")
    ensure_writable_dir(results / args.chapter, f"the results folder of {args.chapter}",
                        hint=f" (the run record is written to {results / args.chapter})")
    return Folders(workdir, results)


def check_optional_packages(chapter: Chapter, config: RunConfig) -> None:
    """``ConfigError`` naming the first optional package ``config`` needs (``chapter.optional_packages``) that
    is not installed, before anything is written."""
    import importlib.util

    for package, hint in chapter.optional_packages(config) if chapter.optional_packages else []:
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"{chapter.slug} in {config.mode} mode needs the optional package {package}, which is "
                              f"not installed; {hint} (the reduced mode needs nothing extra)")


def build_config(chapter: Chapter, mode: str, seed: int, device: str, settings: list[str]) -> RunConfig:
    """The chapter's preset for ``mode`` with the ``--set`` overrides, validated (device availability too)."""
    overrides = dict(parse_override(item) for item in settings)
    config = chapter.Config.for_mode(mode, seed=seed, device=device, **overrides)
    select_device(config.device)  # a device that is not there fails now, before anything is written
    return config


def execute(chapter: Chapter, config: RunConfig, run_name: str, folders: Folders, *,
            resume: bool, quiet: bool = False) -> tuple[Any, Path | None]:
    """Run the experiment in ``<workdir>/<chapter>/<run name>`` and write its record; ``(record, path)``.

    Under torchrun every process trains, and rank 0 alone prints and writes the record.
    """
    check_name("--name", run_name)
    rank = process_rank()
    workdir = folders.workdir / chapter.slug / (run_name + (f"-rank{rank}" if rank else ""))
    if resume and not (workdir / STATE_FILE).exists() and not rank and not quiet:
        print(f"--resume: no earlier run in {workdir}, so this one starts from the beginning")
    state = RunState(workdir, resume=resume, config=config)
    if not rank and not quiet:
        print(f"{chapter.heading}: {config.mode} mode, seed {config.seed}, checkpoints in {workdir}")
    seed_everything(config.seed)
    metrics = chapter.run(config, state)
    if rank:
        return None, None
    record, path = record_run(chapter, run_name, config, metrics, wall_time_s=state.elapsed_s, root=folders.results)
    if not quiet:
        for key, value in sorted(record.metrics.items()):
            print(f"  {key:<40} {value:.6g}")
        for claim in chapter.claims(dict(record.metrics)):
            print(f"  claim: {claim}")
        print(f"run record written to {path} ({record.wall_time_s:.0f} s)")
    return record, path


#: The record names a preset run takes (``<mode>-seed<seed>``), which no other run may take.
PRESET_NAME = re.compile(rf"({'|'.join(MODES)})-seed([0-9]+)")
#: The start of the names of cost estimate records (``rfy estimate``), which no run may take.
ESTIMATE_PREFIX = "estimate-"


def check_record_target(path: Path, option: str) -> None:
    """``ConfigError`` unless ``path`` is free or a run record rfy can read (so writing the run's record there
    replaces only an earlier record of the same name): a folder, a pipe or a file that is not a record is
    found before the run starts, and never overwritten. ``option`` names what picks another path."""
    kind = describe_path(path)
    if kind == "missing":
        return
    if kind != "a regular file":
        raise ConfigError(f"the run's record would be written to {path}, which is {kind}; move it away, or {option}")
    try:
        read_record(path)
    except CorruptFileError:
        raise ConfigError(f"{path} exists and is not a run record rfy can read, so the run would overwrite a file "
                          f"it did not write; move it away, or {option}") from None


def check_run_name(chapter: Chapter, run_name: str, config: RunConfig, custom: bool, results: Path) -> None:
    """Refuse, before the run, a ``--name`` whose record would replace or shadow another one: an estimate's
    name (``estimate-…``), a preset record's name (``<mode>-seed<seed>``) for any other run than that preset
    on that seed, a file that is not a run record, and a second record of a preset run and seed that
    already has one under another name (the tables would refuse both)."""
    default = f"{config.mode}-seed{config.seed}" + ("-custom" if custom else "")
    if run_name.startswith(ESTIMATE_PREFIX):
        raise ConfigError(f"--name {run_name} is refused: names starting with {ESTIMATE_PREFIX!r} are the cost "
                          f"estimates' ('rfy estimate'); choose another --name (the default is {default})")
    preset_name = PRESET_NAME.fullmatch(run_name)
    if preset_name and (preset_name[1] != config.mode or int(preset_name[2]) != config.seed or custom):
        this = "a changed config" if custom else f"the {config.mode} preset on seed {config.seed}"
        raise ConfigError(f"--name {run_name} is the name of the {preset_name[1]} preset's record of seed "
                          f"{int(preset_name[2])}, and this run is {this}; choose another --name (the default "
                          f"is {default})")
    path = record_path(chapter.slug, run_name, results)
    check_record_target(path, "choose another --name")
    if custom:
        return
    for record in read_records(chapter.slug, results):
        if (record.run != run_name and record.mode == config.mode and record.seed == config.seed
                and not preset_differences(record, chapter.Config)):
            raise ConfigError(f"{record_path(chapter.slug, record.run, results)} already records the {config.mode} "
                              f"preset on seed {config.seed}; a second record of it as {path.name} would leave the "
                              f"tables two runs of one seed: run it under the name {record.run} (it replaces that "
                              f"record), or move that record away first")


def run_chapter(args: argparse.Namespace) -> int:
    """``rfy run``: one run of a chapter; a config other than the preset is named and marked as such."""
    chapter = chapters.chapter(args.chapter)
    config = build_config(chapter, args.mode, args.seed, args.device, args.set)
    if args.name is not None:
        check_name("--name", args.name)
    check_optional_packages(chapter, config)
    folders = check_folders(args)
    changed = config_differences(config.preset().to_dict(), config.to_dict())
    differences = {**changed, **numeric_differences()}
    run_name = args.name or f"{config.mode}-seed{config.seed}" + ("-custom" if differences else "")
    # A run resumed under other torch settings (a float64 default dtype) is looked for under the name it
    # started with, so that its folder's check refuses the settings instead of a new run starting unasked.
    started = f"{config.mode}-seed{config.seed}" + ("-custom" if changed else "")
    resumed_elsewhere = (args.resume and not args.name and started != run_name
                         and (folders.workdir / chapter.slug / started / STATE_FILE).exists())
    if resumed_elsewhere:
        run_name = started
    check_run_name(chapter, run_name, config, bool(changed if resumed_elsewhere else differences), folders.results)
    if differences and not process_rank() and not resumed_elsewhere:
        print(f"warning: this config differs from the {config.mode} preset ({describe_differences(differences)}); "
              f"the record {run_name}.json says preset: false, and the reproduction table and the robustness "
              f"page leave it out", file=sys.stderr)
    execute(chapter, config, run_name, folders, resume=args.resume)
    return 0


def claims_command(args: argparse.Namespace) -> int:
    """``rfy claims``: the reduced preset on each seed (one record per seed), then each claim's pass count.

    One sweep of a chapter at a time: a second one (same checkpoint folder) is refused before it runs anything.
    """
    chapter = chapters.chapter(args.chapter)
    seeds = parse_seeds(args.seeds)
    configs = {seed: build_config(chapter, "reduced", seed, args.device, []) for seed in seeds}
    folders = check_folders(args)
    for seed in seeds:
        check_record_target(record_path(args.chapter, f"reduced-seed{seed}", folders.results),
                            "leave its seed out of --seeds")
    sweep = folders.workdir / args.chapter
    sweep.mkdir(parents=True, exist_ok=True)
    with folder_lock(sweep, wait=False) if not process_rank() else contextlib.nullcontext(True) as locked:
        if not locked:
            raise ConfigError(f"another 'rfy claims {args.chapter}' sweep is running with its checkpoints in {sweep}; "
                              f"wait for it to finish or stop it, then run this command again (it skips the seeds "
                              f"already recorded and resumes an interrupted one)")
        _run_seeds(chapter, configs, folders, force=args.force)
    if process_rank():
        return 0
    chosen, _ = preset_records(args.chapter, "reduced", folders.results, config_class=chapter.Config)
    chosen = [record for record in chosen if record.seed in configs]
    print(f"\n{chapter.heading}: claims over seeds {args.seeds} (reduced preset)\n")
    print(claims_sweep_table(claim_summary(chosen, chapter.claims)), end="")
    held_out = [seed for seed in seeds if seed in HELD_OUT_SEEDS]
    if held_out:
        print(f"\nSeeds {seed_range(HELD_OUT_SEEDS)} are held out: the thresholds were set on seeds "
              f"{seed_range(TUNING_SEEDS)} and frozen before these ran. Do not change a claim after seeing them; "
              f"each record stores its claims' digests, and the robustness page marks a claim changed since.")
    return 0


def _run_seeds(chapter: Chapter, configs: dict[int, RunConfig], folders: Folders, *, force: bool) -> None:
    """Run each seed's reduced preset (``configs``) unless its preset record exists (or ``force``), resuming
    an interrupted one, and print each seed's claims."""
    for seed, config in configs.items():
        run_name = f"reduced-seed{seed}"
        path = record_path(chapter.slug, run_name, folders.results)
        if path.exists() and not force and _is_preset_record_of(path, config):
            print(f"seed {seed}: {path} exists with the preset config, skipped (--force runs it again)")
            continue
        workdir = folders.workdir / chapter.slug / run_name
        resume = not force and _can_resume(workdir, config)
        print(f"seed {seed}: running{' (resuming)' if resume else ''}, checkpoints in {workdir}", flush=True)
        try:
            record, path = execute(chapter, config, run_name, folders, resume=resume, quiet=True)
        except CorruptFileError as error:
            if not resume:
                raise
            print(f"warning: {error}; seed {seed} starts over", file=sys.stderr)
            record, path = execute(chapter, config, run_name, folders, resume=False, quiet=True)
        if record is not None:
            verdicts = ", ".join(f"{c['key']} {'holds' if c['holds'] else 'FAILS'}" for c in record.claims)
            print(f"seed {seed}: {verdicts or 'no claims'}; record {path}", flush=True)


def _is_preset_record_of(path: Path, config: RunConfig) -> bool:
    """True when the record at ``path`` (checked readable by ``check_record_target``) is of ``config``'s seed
    and its config is the current preset."""
    record = read_record(path)
    return record.seed == config.seed and not config_differences(record.config, config.to_dict(),
                                                                 ignore=RESUMABLE_CHANGES)


def _can_resume(workdir: Path, config: RunConfig) -> bool:
    """True when ``workdir`` holds a readable run state of this config (so a sweep continues where it stopped)."""
    import json

    try:
        saved = json.loads(read_state_text(workdir / STATE_FILE))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and isinstance(saved.get("config"), dict) and not config_differences(
        saved["config"], config.to_dict(), ignore=RESUMABLE_CHANGES)


def bench_command(args: argparse.Namespace) -> int:
    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if not 1 <= value <= BENCH_LIMITS[option]:
            raise ConfigError(f"{option} must be a positive integer up to {BENCH_LIMITS[option]}, got {value}")
    chapter = chapters.chapter(args.chapter)
    if chapter.benchmark is None:
        raise ConfigError(f"chapter {args.chapter!r} has no benchmark; chapters with one: "
                          f"{tuple(c.slug for c in chapters.all_chapters() if c.benchmark is not None)}")
    select_device(args.device)
    result = chapter.benchmark(device=args.device, steps=args.steps, batch_size=args.batch_size)
    for key, value in result.items():
        print(f"  {key:<16} {value:.4g}" if isinstance(value, float) else f"  {key:<16} {value}")
    return 0


def estimate_command(args: argparse.Namespace) -> int:
    """``rfy estimate``: time the preset's real steps at its true size here, project its cost, write a record."""
    from rfy.cost import estimate, format_bytes, format_duration, write_estimate

    chapter = chapters.chapter(args.chapter)
    if chapter.cost_parts is None:
        raise ConfigError(f"chapter {args.chapter!r} cannot be estimated yet; chapters that can: "
                          f"{tuple(c.slug for c in chapters.all_chapters() if c.cost_parts is not None)}")
    config = build_config(chapter, args.mode, 0, args.device, [])
    check_optional_packages(chapter, config)
    device = select_device(config.device)
    on_gpu = device.type == "cuda"
    steps = args.steps if args.steps is not None else (10 if on_gpu else 2)
    results = None if args.no_record else check_folders(args).results
    print(f"{chapter.heading}: timing the {args.mode} preset's real steps on {device} ...", flush=True)
    try:
        measured = estimate(args.chapter, config, chapter.cost_parts(config), device, steps=steps,
                            warmup=2 if on_gpu else 1, report=lambda line: print(f"  {line}", flush=True))
    except ImportError as error:  # an optional package of the full preset (torchvision's ResNets, MuJoCo)
        reason = f"it needs the package {error.name!r}: pip install {error.name}" if error.name \
            else str(error).strip().splitlines()[0]
        raise ConfigError(f"the {args.mode} preset of {args.chapter!r} cannot be built here: {reason}") from None
    print(f"\n  {'training':<44} {'per step':>10} {'steps':>12} {'projected':>10}")
    for part in measured.parts:
        unit = "" if part.unit == "step" else f" ({part.unit})"
        print(f"  {part.name + unit:<44} {part.seconds_per_step * 1000:>8.2f}ms {part.steps:>12,} "
              f"{format_duration(part.projected_s):>10}")
    memory = "CUDA peak allocated" if on_gpu else "peak RSS of this process"
    fits = {True: "yes", False: "no", None: "unknown (measured on a CPU; run estimate on a GPU)"}[measured.fits_small_gpu]
    print(f"\n  device: {measured.device_name}; median of {steps} timed steps per training")
    print(f"  peak memory: {format_bytes(measured.peak_memory_bytes)} ({memory}); fits a 16 GB GPU: {fits}")
    print(f"  whole {args.mode} preset: {format_duration(measured.projected_s)}, its trainings one after another; "
          f"{measured.sessions} 12-hour session(s) with --resume")
    if results is not None:
        print(f"estimate record written to {write_estimate(measured, results)}")
    return 0


def campaign_command(args: argparse.Namespace) -> int:
    """``rfy campaign``: the GPU slot's work in order, within ``--budget`` seconds (``rfy.campaign``)."""
    from rfy.campaign import run_campaign

    return run_campaign(chapters.all_chapters(), out=Path(args.out), device=args.device, budget_s=args.budget,
                        plan=args.plan, archive=Path(args.archive) if args.archive else None)


def data_command(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, spec in data.REGISTRY.items():
            print(f"{name:<15} {spec.description}")
        return 0
    if args.action == "path":
        print(data.data_dir())
        return 0
    if not args.name:
        raise ConfigError(f"'rfy data download' needs a dataset name, one of {tuple(data.REGISTRY)}")
    data.get_spec(args.name)
    try:  # a complete system copy or cache needs no write
        paths = data.fetch_dataset(args.name, download=False)
    except DatasetNotAvailableError:
        ensure_writable_dir(data.data_dir(),
                            "RFY_DATA" if os.environ.get("RFY_DATA") else "the dataset cache (RFY_DATA)")
        paths = data.fetch_dataset(args.name)
    print("\n".join(str(path) for path in paths.values()))
    return 0


def results_command(args: argparse.Namespace) -> int:
    check_results_root(results_dir(), results_source(), chapters.slugs())
    if args.action == "robustness":
        table = robustness_table(chapters.all_chapters())
    elif args.action == "chapters":
        table = chapters_table(chapters.all_chapters())
    elif args.action == "costs":
        from rfy.cost import cost_table

        table = cost_table(results_dir(), chapters.all_chapters())
    else:
        rows = [row for chapter in chapters.all_chapters() for row in reproduction_rows(chapter, results_dir())]
        table = markdown_table(rows)
    if args.output:
        from rfy.files import atomic_write_text

        atomic_write_text(Path(args.output), table)
    else:
        print(table, end="")
    return 0


def notebooks_command(args: argparse.Namespace) -> int:
    from rfy.notebooks import NotebookFailed, execute_in_place, refresh_records_outputs, write_student_copies

    if args.action == "records":
        folder = Path(args.paths[0]) if args.paths else Path("notebooks")
        check_results_root(results_dir(), results_source(), chapters.slugs())
        for path in refresh_records_outputs(chapters.all_chapters(), folder, results_dir()):
            print(f"records shown in {path} brought up to date")
        return 0
    if not args.paths:
        raise ConfigError(f"notebooks {args.action} needs at least one notebook path, e.g. notebooks/01_neural_odes.ipynb")
    if args.action == "student":
        for path in write_student_copies([Path(p) for p in args.paths], Path(args.output), overwrite=args.overwrite):
            print(f"student copy written to {path}")
        return 0
    for path in args.paths:
        try:
            seconds = execute_in_place(Path(path))
        except NotebookFailed as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_CODES["notebook failed"]
        print(f"executed {path} in {seconds:.0f} s")
    return 0


def _add_folder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (checked before the run)")
    parser.add_argument("--workdir", help="checkpoint folder (default: $RFY_RUNS or <data dir>/runs)")
    parser.add_argument("--results", help="results folder (default: $RFY_RESULTS, else results/ of the checkout)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rfy", description=__doc__.splitlines()[0],
                                     epilog=EXIT_CODES_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run a chapter's experiment and write a run record",
        description="Run a chapter's experiment and write results/<chapter>/<run name>.json. A config changed "
                    "with --set is named <mode>-seed<seed>-custom and marked preset: false, so it never passes "
                    "for the preset in the reproduction table.")
    run.add_argument("chapter", choices=chapters.slugs())
    run.add_argument("--mode", choices=MODES, default="reduced")
    run.add_argument("--seed", type=int, default=0, help=f"0 to {MAX_SEED}")
    run.add_argument("--resume", action="store_true",
                     help="continue from the last checkpoint; refused when the config differs from the run's "
                          f"(only {', '.join(RESUMABLE_CHANGES)} may change). Without it the run starts over and "
                          "deletes the checkpoints it made earlier (nothing else)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set epochs=10 or --set hidden=(64,) (repeatable; "
                          "seed, mode and device have their own options)")
    run.add_argument("--name", help=f"run name (default: <mode>-seed<seed>[-custom]); {NAME_RULE}")
    _add_folder_options(run)
    run.set_defaults(handler=run_chapter)

    claims = commands.add_parser(
        "claims", help="run the reduced preset on several seeds and count where each claim holds",
        description="For each seed, run the chapter's reduced preset exactly as 'rfy run' does (record "
                    "results/<chapter>/reduced-seed<s>.json), skipping seeds whose record already exists with the "
                    "current preset config, and resuming a seed that was interrupted. Then print, for each claim, "
                    "the seeds passed / seeds run and the median and range of the measured value.")
    claims.add_argument("chapter", choices=chapters.slugs())
    claims.add_argument("--seeds", default=seed_range(TUNING_SEEDS),
                        help=f"seeds to run: 0-9, 0,3,5 or 3 (default {seed_range(TUNING_SEEDS)}, the seeds the "
                             f"thresholds were set on; {seed_range(HELD_OUT_SEEDS)} are the held-out seeds)")
    claims.add_argument("--force", action="store_true", help="run every seed again, even when its record exists")
    _add_folder_options(claims)
    claims.set_defaults(handler=claims_command)

    bench = commands.add_parser("bench", help="measure a chapter's full-mode training speed on this machine")
    bench.add_argument("chapter", choices=chapters.slugs(), help="a chapter with a benchmark (mixmatch)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    bench.add_argument("--steps", type=int, default=50,
                       help=f"timed training steps (after 5 warm-up steps), 1 to {BENCH_LIMITS['--steps']}")
    bench.add_argument("--batch-size", type=int, default=64, help=f"1 to {BENCH_LIMITS['--batch-size']}")
    bench.set_defaults(handler=bench_command)

    estimate_parser = commands.add_parser(
        "estimate", help="time a chapter's preset at its true size on this device and project what it costs",
        description="Build the preset exactly as 'rfy run' would, on synthetic data of the real shape (no download), "
                    "time real training steps of each of its trainings after warm-up, and print seconds per step, "
                    "peak memory, the projected wall time of the whole preset, how many 12-hour sessions that is "
                    "with --resume, and whether it fits a 16 GB GPU. Writes results/<chapter>/estimate-<mode>-<device>.json.")
    estimate_parser.add_argument("chapter", choices=chapters.slugs())
    estimate_parser.add_argument("--mode", choices=MODES, default="full")
    estimate_parser.add_argument("--steps", type=int, help="timed steps per training (default: 10 on a GPU, 2 on a CPU)")
    estimate_parser.add_argument("--no-record", action="store_true", help="print only; write no estimate record")
    _add_folder_options(estimate_parser)
    estimate_parser.set_defaults(handler=estimate_command)

    from rfy.campaign import DEFAULT_BUDGET_S

    campaign = commands.add_parser(
        "campaign", help="all the work of a short GPU slot in a time budget: CUDA tests, estimates, chapter 2, bench",
        description="In order: the CUDA-only tests (pytest -m cuda), 'rfy estimate' of every chapter, chapter 2's "
                    "full preset on as many seeds side by side as fit, 'rfy bench mixmatch'. Every step writes its "
                    "records and log under --out as soon as it ends; the last line says what to commit.")
    campaign.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                          help=f"seconds the whole campaign may take (default {DEFAULT_BUDGET_S})")
    campaign.add_argument("--out", default="_build/campaign", help="folder for records, logs and checkpoints")
    campaign.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a dry run")
    campaign.add_argument("--plan", action="store_true", help="print the steps and their planned seconds; run nothing")
    campaign.add_argument("--archive", help="also pack records and logs into this .tar.gz after every step")
    campaign.set_defaults(handler=campaign_command)

    data_parser = commands.add_parser("data", help="list, locate or download datasets")
    data_parser.add_argument("action", choices=("list", "path", "download"))
    data_parser.add_argument("name", nargs="?")
    data_parser.set_defaults(handler=data_command)

    results = commands.add_parser(
        "results",
        help="print the reproduction, claims-over-seeds or cost table (from results/), or the chapters' table",
        description="table: the paper's numbers beside our preset runs on the same data. robustness: each "
                    "claim's seeds passed / seeds run on the seeds its threshold was set on (0-9) and on the "
                    "held-out seeds (10-19), from the preset reduced-mode records, with their commits. "
                    "costs: what each chapter's full preset costs, from the estimate records ('rfy estimate'). "
                    "chapters: the landing page's table of chapters, from the registry.")
    results.add_argument("action", choices=("table", "robustness", "costs", "chapters"))
    results.add_argument("--output", help="write the Markdown table to this file")
    results.set_defaults(handler=results_command)

    notebooks = commands.add_parser(
        "notebooks", help="execute notebooks in place (reduced mode), write student copies without solutions, or "
                          "bring the run records each notebook shows up to date without executing it")
    notebooks.add_argument("action", choices=("execute", "student", "records"))
    notebooks.add_argument("paths", nargs="*", help="notebooks (execute, student) or their folder (records; "
                                                    "default notebooks/)")
    notebooks.add_argument("--output", default="_build/student",
                           help="folder for student copies (never a source notebook's folder)")
    notebooks.add_argument("--overwrite", action="store_true",
                           help="student: replace a notebook in --output that is not an unchanged student copy "
                                "(a student's answers); without it such a notebook is refused, named")
    notebooks.set_defaults(handler=notebooks_command)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


#: What to do after Ctrl-C, by command.
AFTER_INTERRUPT = {"run": "; continue with --resume", "claims": "; run the same command again to continue "
                   "(finished seeds are kept, the interrupted one resumes)"}
OUT_OF_MEMORY = ("can't allocate memory", "out of memory", "Cannot allocate memory")


class Terminated(BaseException):
    """SIGTERM arrived (``kill``, a scheduler's time limit): raised where the process is, so that ``finally``
    blocks and atomic writes clean up as after Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_raises() -> Any:
    """While the block runs, SIGTERM raises ``Terminated`` (in the main thread, where the default is to die)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv``; return its exit code (``EXIT_CODES``), every failure as one line."""
    args = build_parser().parse_args(argv)
    previous = warnings.showwarning
    warnings.showwarning = _warning_line
    try:
        with _sigterm_raises():
            return args.handler(args)
    except KeyboardInterrupt:
        print(f"error: interrupted{AFTER_INTERRUPT.get(args.command, '')}", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    except Terminated:
        print(f"error: terminated (SIGTERM){AFTER_INTERRUPT.get(args.command, '')}", file=sys.stderr)
        return EXIT_CODES["terminated"]
    except (*USER_ERRORS, OSError) as error:  # OSError: the machine said no (disk full, permission)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CODES["error"]
    except (MemoryError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, RuntimeError) and not any(text in reason for text in OUT_OF_MEMORY):
            raise
        print(f"error: not enough memory ({reason[:200]}); use a smaller batch_size or model "
              f"(--set), or another --device", file=sys.stderr)
        return EXIT_CODES["error"]
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
