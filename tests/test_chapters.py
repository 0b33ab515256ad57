"""The chapter contract: every registered chapter declares the same things, and the book lists them all.

One test per property, run for every chapter in ``rfy.chapters``; a new chapter is checked by
these tests as soon as its registry line exists.
"""
import importlib
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from rfy.chapters import CHAPTER_MODULES, all_chapters, chapter, slugs
from rfy.checkpoint import RunState
from rfy.claims import Claim
from rfy.config import MODES
from rfy.contract import Chapter, slug_of
from rfy.errors import ConfigError
from rfy.runtime import torch_threads

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = all_chapters()
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve")


def test_the_registry_lists_each_chapter_once_numbered_in_book_order():
    assert [c.number for c in CHAPTERS] == list(range(1, len(CHAPTER_MODULES) + 1))
    assert [c.slug for c in CHAPTERS] == [slug_of(name) for name in CHAPTER_MODULES] == list(slugs())
    assert len(set(slugs())) == len(CHAPTERS) and len({c.notebook for c in CHAPTERS}) == len(CHAPTERS)
    with pytest.raises(ConfigError, match=r"chapter must be one of \('neural-ode'"):
        chapter("neural_ode")


def test_a_chapter_whose_notebook_number_disagrees_is_refused():
    first = CHAPTERS[0]
    with pytest.raises(ConfigError, match="notebook must start with '02_'"):
        Chapter(first.slug, 2, first.title, first.notebook, first.Config, first.run, first.claims, [])
    with pytest.raises(ConfigError, match="slug must be lower-case words"):
        Chapter("Neural ODE", 1, first.title, first.notebook, first.Config, first.run, first.claims, [])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_the_chapter_has_a_valid_preset_per_mode(chapter):
    for mode in MODES:
        config = chapter.Config.for_mode(mode, seed=3)
        assert config.mode == mode and config.is_preset()
    assert chapter.Config.full().to_dict() != chapter.Config.reduced().to_dict()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_paper_numbers_pair_values_only_on_the_same_data(chapter):
    assert chapter.paper_numbers
    for number in chapter.paper_numbers:
        assert number.mode in MODES and number.data
        assert number.paper_value is None or number.mode == "full", f"{number.quantity}: a paper value on our data"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_run_returns_flat_metrics_whose_claims_all_evaluate(chapter, tmp_path, monkeypatch):
    """A tiny reduced run, sized by ``CONTRACT_SETTINGS`` in the chapter's own test module."""
    monkeypatch.setattr("rfy.parallel.cpu_cores", lambda: 1)  # in this process: spawning workers costs more here
    tests = importlib.import_module("test_" + CHAPTER_MODULES[chapter.number - 1].rsplit(".", 1)[-1])
    config = chapter.Config.reduced(device="cpu", **tests.CONTRACT_SETTINGS)
    with torch_threads(1):
        metrics = chapter.run(config, RunState(tmp_path, resume=False, config=config))
    assert metrics and all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                           for k, v in metrics.items())
    found = chapter.claims(dict(metrics))
    assert found and all(isinstance(claim, Claim) for claim in found)
    assert len({claim.key for claim in found}) == len(found)


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c.study is not None], ids=lambda c: c.slug)
def test_the_study_the_notebook_calls_gives_run_s_metrics_for_the_same_seed(chapter, tmp_path, monkeypatch):
    monkeypatch.setattr("rfy.parallel.cpu_cores", lambda: 1)
    tests = importlib.import_module("test_" + CHAPTER_MODULES[chapter.number - 1].rsplit(".", 1)[-1])
    config = chapter.Config.reduced(device="cpu", **tests.CONTRACT_SETTINGS)
    with torch_threads(1):
        metrics = chapter.run(config, RunState(tmp_path / "run", resume=False))
        study = chapter.study(config, RunState(tmp_path / "study", resume=False))
    timings = re.compile(r"seconds|per_s")  # wall-clock measurements, the only values two runs may differ in
    comparable = lambda values: {k: "nan" if v != v else v for k, v in values.items() if not timings.search(k)}
    assert comparable(study.metrics) == comparable(metrics)  # NaN (an undefined correlation) equals NaN
    assert study.metrics.keys() == metrics.keys()


#: Functions that build a record's metrics from trained runs: a notebook gets its metrics from ``run``
#: (or the chapter's ``study``) instead of calling these itself.
METRIC_BUILDERS = ("comparison_metrics(", "sweep_metrics(", "experiment_metrics(", "summarise(", "_metrics(")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_the_notebook_takes_its_metrics_from_the_chapter_s_run(chapter):
    path = ROOT / "notebooks" / f"{chapter.notebook}.ipynb"
    code = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
    alias = re.search(rf"^import {re.escape(CHAPTER_MODULES[chapter.number - 1])} as (\w+)$", code, re.M).group(1)
    entry = [f"{alias}.{function.__name__}(" for function in (chapter.run, chapter.study) if function is not None]
    calls = sum(code.count(name) for name in entry)
    assert calls == 1, f"{path.name} calls {entry} {calls} times; call the experiment once"
    assert not [name for name in METRIC_BUILDERS if name in code], f"{path.name} rebuilds metrics; use the run's"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_the_notebook_exists_under_its_heading_and_names_its_chapter_once(chapter):
    path = ROOT / "notebooks" / f"{chapter.notebook}.ipynb"
    assert path.exists(), f"{chapter.slug}: no notebook {path.name}"
    code = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
    package = chapter.run.__module__.rsplit(".", 1)[0]
    imports = re.findall(rf"^import {re.escape(package)} as \w+$", code, re.M)
    assert len(imports) == 1, f"{path.name} imports {package} as a name {len(imports)} times; import it once"
    assert f'"{chapter.slug}"' not in code and f"'{chapter.slug}'" not in code, \
        f"{path.name} types its slug; use {package}.CHAPTER.slug"


def test_the_table_of_contents_lists_the_notebooks_in_chapter_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = next(part for part in toc["parts"] if part.get("numbered"))
    assert [entry["file"] for entry in part["chapters"]] == [f"notebooks/{c.notebook}" for c in CHAPTERS]
    assert sorted(path.stem for path in (ROOT / "notebooks").glob("*.ipynb")) == [c.notebook for c in CHAPTERS]


def test_the_landing_page_shows_the_generated_table_of_chapters(capsys, monkeypatch):
    from rfy.cli import main

    assert "{include} _generated/chapters_table.md" in (ROOT / "book" / "intro.md").read_text()
    monkeypatch.chdir(ROOT)
    assert main(["results", "chapters"]) == 0
    table = capsys.readouterr().out
    assert table == (ROOT / "book" / "_generated" / "chapters_table.md").read_text(), "run `make table`"
    rows = re.findall(r"^\| (\d+) \| \{doc\}`\.\./notebooks/(\w+)` \{cite:p\}`(\w+)` \| (.+) \|$", table, re.M)
    assert [row[:2] for row in rows] == [(str(c.number), c.notebook) for c in CHAPTERS]
    bibliography = (ROOT / "references.bib").read_text()
    assert all(f"{{{c.citation}," in bibliography and c.summary for c in CHAPTERS)


@pytest.mark.parametrize("page", ["README.md", "pyproject.toml", "rfy/__init__.py", "book/intro.md", "book/running.md",
                                  "CONTRIBUTING.md"])
def test_a_chapter_count_in_words_is_the_registry_s(page):
    text = (ROOT / page).read_text()
    counts = re.findall(r"\b(\w+) (?:chapters|chapter notebooks|2019 machine-learning papers)\b", text)
    spelled = {word.lower() for word in counts} & set(NUMBER_WORDS)
    assert spelled <= {NUMBER_WORDS[len(CHAPTERS)]}, f"{page} says {spelled}, the registry has {len(CHAPTERS)}"


def rfy_imports(path: Path, module: str) -> set[str]:
    """The ``rfy`` modules that ``module`` (file ``path``) imports when it runs, at the top or inside functions.

    Imports under ``if TYPE_CHECKING:`` are for annotations only and never run, so they are left out.
    """
    import ast

    tree = ast.parse(path.read_text())
    skipped = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If)
               and getattr(guard.test, "id", "") == "TYPE_CHECKING" for body in guard.body for node in ast.walk(body)}
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "rfy"}


def module_graph() -> dict[str, set[str]]:
    """Every module of ``rfy/`` and the ``rfy`` modules it imports (names that are not modules dropped)."""
    files = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
             for path in (ROOT / "rfy").rglob("*.py")}
    return {module: rfy_imports(path, module) & set(files) - {module} for module, path in files.items()}


def test_the_core_never_imports_a_chapter_and_the_import_graph_has_no_cycle():
    graph = module_graph()
    chapter_packages = tuple(CHAPTER_MODULES)
    above_the_chapters = {"rfy.chapters", "rfy.cli", "rfy.__main__"}
    core = [m for m in graph if not m.startswith(chapter_packages) and m not in above_the_chapters]
    leaks = {m: sorted(i for i in graph[m] if i.startswith(chapter_packages) or i in above_the_chapters) for m in core}
    assert not {m: i for m, i in leaks.items() if i}, "the core must receive chapters, not import them or the registry"

    def cycle_from(module, path):
        if module in path:
            return path[path.index(module):] + [module]
        for imported in sorted(graph[module] - finished):
            found = cycle_from(imported, path + [module])
            if found:
                return found
        finished.add(module)
        return None

    finished: set[str] = set()
    for module in sorted(graph):
        assert cycle_from(module, []) is None, f"import cycle: {' -> '.join(cycle_from(module, []))}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_sweep_seeds_zero_to_nine_never_share_an_inner_run(chapter):
    inner = [chapter.Config.reduced(seed=seed).seeds for seed in range(10)]
    assert all(inner) and len({s for block in inner for s in block}) == sum(len(block) for block in inner)
