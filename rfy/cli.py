"""Command line: run a chapter headless, resumably, and manage data and results.

    python -m rfy run neural-ode --mode full --seed 1 --resume
    torchrun --nproc_per_node 8 -m rfy run mixmatch --mode full
    python -m rfy bench mixmatch
    python -m rfy data download mnist
    python -m rfy results table
    python -m rfy notebooks execute notebooks/01_neural_odes.ipynb
    python -m rfy notebooks student notebooks/*.ipynb --output _build/student
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path
from typing import Any

from rfy import data
from rfy.chapters import BENCHMARKS, CHAPTER_MODULES, CHAPTER_TITLES, chapter_module
from rfy.checkpoint import RunState
from rfy.config import MODES
from rfy.distributed import process_rank
from rfy.errors import ChecksumError, ConfigError, DatasetNotAvailableError
from rfy.results import make_record, markdown_table, reproduction_rows, results_dir, write_record
from rfy.runtime import seed_everything, select_device


def default_workdir() -> Path:
    """Where checkpoints go: ``RFY_RUNS`` if set, else ``runs`` under the data cache."""
    return Path(os.environ["RFY_RUNS"]) if os.environ.get("RFY_RUNS") else data.data_dir() / "runs"


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with ``value`` read as a Python literal when it is one (``lr=0.1``, ``adjoint=True``)."""
    if "=" not in text:
        raise ConfigError(f"--set takes key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def run_chapter(args: argparse.Namespace) -> int:
    """Run a chapter's experiment; under torchrun every process trains, and rank 0 alone prints and writes the record."""
    module = chapter_module(args.chapter)
    overrides = dict(parse_override(item) for item in args.set)
    config = module.Config.for_mode(args.mode, seed=args.seed, device=args.device, **overrides)
    run_name = args.name or f"{config.mode}-seed{config.seed}"
    rank = process_rank()
    workdir = Path(args.workdir or default_workdir()) / args.chapter / (run_name + (f"-rank{rank}" if rank else ""))
    state = RunState(workdir, resume=args.resume)
    if not rank:
        print(f"{CHAPTER_TITLES[args.chapter]}: {config.mode} mode, seed {config.seed}, checkpoints in {workdir}")
    seed_everything(config.seed)
    metrics = module.run_experiment(config, state)
    if rank:
        return 0
    record = make_record(args.chapter, run_name, config, metrics, wall_time_s=state.elapsed_s,
                         device=select_device(config.device))
    path = write_record(record, Path(args.results) if args.results else None)
    for key, value in sorted(record.metrics.items()):
        print(f"  {key:<40} {value:.6g}")
    print(f"run record written to {path} ({record.wall_time_s:.0f} s)")
    return 0


def bench_command(args: argparse.Namespace) -> int:
    result = chapter_module(args.chapter).benchmark(device=args.device, steps=args.steps, batch_size=args.batch_size)
    for key, value in result.items():
        print(f"  {key:<16} {value:.4g}" if isinstance(value, float) else f"  {key:<16} {value}")
    return 0


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
    paths = data.fetch_dataset(args.name)
    print("\n".join(str(path) for path in paths.values()))
    return 0


def results_command(args: argparse.Namespace) -> int:
    rows = [row for slug in CHAPTER_MODULES
            for row in reproduction_rows(slug, chapter_module(slug).PAPER_NUMBERS, results_dir())]
    table = markdown_table(rows)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(table)
    else:
        print(table, end="")
    return 0


def notebooks_command(args: argparse.Namespace) -> int:
    from rfy.notebooks import execute_in_place, write_student_copies

    if args.action == "student":
        for path in write_student_copies([Path(p) for p in args.paths], Path(args.output)):
            print(f"student copy written to {path}")
        return 0
    for path in args.paths:
        seconds = execute_in_place(Path(path))
        print(f"executed {path} in {seconds:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rfy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a chapter's experiment and write a run record")
    run.add_argument("chapter", choices=tuple(CHAPTER_MODULES))
    run.add_argument("--mode", choices=MODES, default="reduced")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument("--resume", action="store_true",
                     help="continue from the last checkpoint (without it the run starts over and clears them)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set epochs=10 (repeatable)")
    run.add_argument("--name", help="run name (default: <mode>-seed<seed>)")
    run.add_argument("--workdir", help="checkpoint folder (default: $RFY_RUNS or <data dir>/runs)")
    run.add_argument("--results", help="results folder (default: $RFY_RESULTS or ./results)")
    run.set_defaults(handler=run_chapter)

    bench = commands.add_parser("bench", help="measure a chapter's full-mode training speed on this machine")
    bench.add_argument("chapter", choices=BENCHMARKS)
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    bench.add_argument("--steps", type=int, default=50, help="timed training steps (after 5 warm-up steps)")
    bench.add_argument("--batch-size", type=int, default=64)
    bench.set_defaults(handler=bench_command)

    data_parser = commands.add_parser("data", help="list, locate or download datasets")
    data_parser.add_argument("action", choices=("list", "path", "download"))
    data_parser.add_argument("name", nargs="?")
    data_parser.set_defaults(handler=data_command)

    results = commands.add_parser("results", help="print the reproduction table from results/")
    results.add_argument("action", choices=("table",))
    results.add_argument("--output", help="write the Markdown table to this file")
    results.set_defaults(handler=results_command)

    notebooks = commands.add_parser(
        "notebooks", help="execute notebooks in place (reduced mode), or write student copies without solutions")
    notebooks.add_argument("action", choices=("execute", "student"))
    notebooks.add_argument("paths", nargs="+")
    notebooks.add_argument("--output", default="_build/student", help="folder for student copies")
    notebooks.set_defaults(handler=notebooks_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, DatasetNotAvailableError, ChecksumError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
