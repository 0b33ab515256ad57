"""Every chapter notebook runs to the end on a seed other than 0, as a learner who changes ``seed`` runs it.

nbval checks the stored outputs, which come from seed 0 only; a notebook that indexes its results by a
seed the run did not use (the run's repeats use seeds ``seed·repeats + i``) passes there and crashes on
any other seed. Here papermill executes each notebook once on its own non-zero seed (the chapter number
plus 10, so eight seeds are covered), with the parameters cell's knobs turned down so that all eight take a
few minutes on two cores. Such a run is too small for the claims, so it sets ``check_claims = False``:
the verdicts are still computed and printed, only the assert is skipped.

Every notebook must declare ``check_claims`` and the knobs below in its parameters cell. Run with ``make smoke`` (part of ``make test``).
"""
from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

#: Per notebook: the knobs of the smoke run, beyond ``seed`` and ``check_claims``. Repeats (and agents) stay at
#: two or more: with one, the only run seed ``seed·1 + 0`` is the seed itself, and a notebook that indexes its
#: runs by ``config.seed`` instead of ``config.seeds`` would pass.
SMOKE_KNOBS: dict[str, dict[str, Any]] = {
    "01_neural_odes": {"epochs": 1, "cnf_iters": 20, "latent_iters": 20},
    "02_semi_unsupervised": {"repeats": 2},
    "03_debiasing": {"repeats": 2, "alphas": [0.01]},
    "04_preferences": {"agents": 2, "comparisons": [20], "timesteps": 10_240},
    "05_randwire": {"graph_seeds": 1, "epochs": 1},
    "06_voter_model": {"repeats": 2, "steps": 50},
    "07_mixmatch": {"repeats": 2, "steps": 20},
    "08_divide_conquer": {"repeats": 2, "epochs": 3},
}
RUN_COUNTS = ("repeats", "agents")  # knobs that set how many run seeds a notebook draws


def smoke_seed(name: str) -> int:
    """The notebook's smoke seed: its chapter number plus 10 (chapter 8 → 18)."""
    return int(name.split("_")[0]) + 10


def declared_parameters(notebook: nbformat.NotebookNode) -> set[str]:
    """The names the notebook's ``parameters`` cell assigns."""
    cell = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    return {target.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def test_every_notebook_has_smoke_knobs():
    assert sorted(SMOKE_KNOBS) == sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))


def test_smoke_seeds_are_distinct_and_not_zero():
    seeds = [smoke_seed(name) for name in SMOKE_KNOBS]
    assert 0 not in seeds and len(set(seeds)) == len(seeds)


@pytest.mark.parametrize("name", sorted(SMOKE_KNOBS))
def test_smoke_runs_draw_run_seeds_other_than_the_seed(name: str):
    declared = declared_parameters(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4))
    for knob in set(RUN_COUNTS) & declared:
        assert SMOKE_KNOBS[name].get(knob, 0) >= 2, f"{name}: set {knob} to 2 or more in its smoke run"


def test_declared_parameters_reads_the_parameters_cell():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    notebook.cells.append(nbformat.v4.new_code_cell('seed = 0  # s\nmode, y = "reduced", 2\nz: int = 3',
                                                    metadata={"tags": ["parameters"]}))
    assert declared_parameters(notebook) == {"seed"}  # plain `name = value` lines only, as papermill documents


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(SMOKE_KNOBS))
def test_notebook_runs_on_a_nonzero_seed(name: str, tmp_path: Path):
    import papermill

    path = NOTEBOOKS / f"{name}.ipynb"
    declared = declared_parameters(nbformat.read(path, as_version=4))
    parameters = {"seed": smoke_seed(name), "check_claims": False, **SMOKE_KNOBS[name]}
    assert set(parameters) <= declared, f"{name} declares none of {set(parameters) - declared}"
    began = time.perf_counter()
    papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters=parameters, cwd=str(NOTEBOOKS),
                               progress_bar=False, execution_timeout=600)
    print(f"{name}: seed {parameters['seed']}, {time.perf_counter() - began:.0f} s")
