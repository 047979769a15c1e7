"""The debugging labs: exercise 16's ten broken servers and notebook 16.

Each lab's test (sockserver_lib/grading/ex16.py) must tell the broken code
from the fixed code: graded with check()'s grade(), every test fails on the
exercise's code (the broken lines of each ``### BEGIN FIX`` region) with a
message, in time, and passes on the solution's code (the fix).  The code is
taken from the notebooks as the batch grader takes it: every code cell but
the Try-it cells and the check() cell, run in order.

Notebook 16 shows each lab's symptom: a "## Lab N" section per lab, each with
its answer folded under "What was wrong", and it points at exercise 16.
"""

from __future__ import annotations

import importlib.util
import json
import re

import nbformat
import pytest
from checkout import REPO

from sockserver_lib import grading
from sockserver_lib.grading.ex16 import EX16_TESTS

EXERCISE = grading.EXERCISES["ex16"]
LABS = [test.name for test in EX16_TESTS]
NOTEBOOK = REPO / "notebooks" / "16_debugging_labs.ipynb"


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_exercises", REPO / "tools" / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_exercises = _load_generator()


def graded_cells(folder: str) -> list[str]:
    """The sources of the code cells the grader runs, in order."""
    notebook = nbformat.read(REPO / folder / EXERCISE.notebook, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"
            and "try-it" not in cell.metadata.get("tags", []) and "check(" not in cell.source]


def students(folder: str) -> dict:
    """What check("ex16", ...) is given after running *folder*'s notebook."""
    namespace: dict = {"__name__": f"ex16_{folder}"}
    for source in graded_cells(folder):
        exec(compile(source, f"{folder}/{EXERCISE.notebook}", "exec"), namespace)
    return {keyword: namespace[name] for keyword, name in EXERCISE.names.items()}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, grading.TestResult]]:
    """{"exercises" or "solutions": {test name: its result}}, graded as check() does."""
    graded = {}
    for folder in ("exercises", "solutions"):
        result = grading.grade("ex16", students(folder))
        graded[folder] = {test.name: test for test in result.tests}
    return graded


def test_there_is_a_test_for_each_of_the_ten_labs():
    assert len(LABS) == 10 == EXERCISE.total
    assert [name[:5] for name in LABS] == [f"lab{n:02d}" for n in range(1, 11)]


def test_each_lab_has_its_bug_in_one_fix_region():
    solution = nbformat.read(REPO / "solutions" / EXERCISE.notebook, as_version=4)
    regions = [region for cell in solution.cells if cell.cell_type == "code"
               for region in make_exercises.regions(cell.source)]
    assert len(regions) == len(LABS)
    assert {region.kind for region in regions} == {make_exercises.FIX}
    assert graded_cells("exercises") == [make_exercises.strip_solution(source)
                                         for source in graded_cells("solutions")]


@pytest.mark.timeout(110)
@pytest.mark.parametrize("lab", LABS)
def test_the_labs_check_fails_on_the_broken_code(results, lab):
    broken = results["exercises"][lab]
    if broken.status == grading.SKIPPED:
        pytest.skip(broken.message)
    assert broken.status == grading.FAILED, broken  # not an error or a time-out
    assert broken.points == 0 and len(broken.message) > 40  # it says why


@pytest.mark.timeout(110)
@pytest.mark.parametrize("lab", LABS)
def test_the_labs_check_passes_on_the_fixed_code(results, lab):
    fixed = results["solutions"][lab]
    if fixed.status == grading.SKIPPED:
        pytest.skip(fixed.message)
    assert fixed.status == grading.PASSED, fixed


# --- Notebook 16 ----------------------------------------------------------------

def _markdown(notebook: dict) -> str:
    return "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "markdown")


def test_notebook_16_has_a_section_per_lab_with_its_answer_folded():
    text = _markdown(json.loads(NOTEBOOK.read_text(encoding="utf-8")))
    sections = re.split(r"^## Lab (\d+)\b", text, flags=re.M)[1:]
    numbers = [int(number) for number in sections[::2]]
    assert numbers == list(range(1, 11))
    for number, body in zip(numbers, sections[1::2], strict=True):
        body = re.split(r"^## ", body, flags=re.M)[0]
        assert "<summary>What was wrong</summary>" in body, f"lab {number}"
        assert re.search(r"\*\*[^*]*[Ss]ymptom", body), f"lab {number}: no symptom shown"
        assert re.search(r"\*\*[^*]*\b[Tt]ools?\b", body), f"lab {number}: no tool named"
    assert "../exercises/ex16_debugging_labs.ipynb" in text


# --- Lab 2 cannot be dodged ---------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("dodge", [{"timeout": None}, {"report_lines": 1}],
                         ids=["without the handler's timeout", "with a one-line report"])
def test_lab02_fails_send_for_sendall_whatever_the_handler_changes(dodge):
    broken = students("exercises")["ReportHandler"]
    dodging = type("Dodging", (broken,), dodge)
    lab02 = EX16_TESTS[1].run
    with pytest.raises(AssertionError, match="cut short"):
        lab02({"ReportHandler": dodging})
    lab02({"ReportHandler": type("Fixed", (students("solutions")["ReportHandler"],), dodge)})


# --- The exercise as handed out ----------------------------------------------------

@pytest.mark.timeout(120)
def test_the_exercises_try_it_cells_run_to_the_end_on_the_broken_code(capsys):
    """Run All on the exercise must reach check(): every Try-it cell shows its symptom
    and ends, even on the broken code (lab 4's forked children once hung it)."""
    namespace: dict = {"__name__": "ex16_try_it"}
    notebook = nbformat.read(REPO / "exercises" / EXERCISE.notebook, as_version=4)
    for cell in notebook.cells[:-1]:  # all but the check() cell
        if cell.cell_type == "code":
            exec(compile(cell.source, EXERCISE.notebook, "exec"), namespace)
    shown = capsys.readouterr().out
    assert "two more clients get:\nb'served by pid" in shown  # lab 4's symptom
