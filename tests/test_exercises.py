"""exercises/ is generated from solutions/ (the single source) and stays in sync.

tools/make_exercises.py replaces each ``### BEGIN SOLUTION`` ...
``### END SOLUTION`` region of a solution notebook by a NotImplementedError
stub with the marker's hint; ``--check`` fails when exercises/ has drifted.
Also checked here: the shape of every exercise and solution notebook.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil

import nbformat
import pytest
from checkout import REPO

from sockserver_lib import grading

NOTEBOOKS = (
    "01_sockets_by_hand", "02_request_loop", "03_tcp_servers", "04_request_handlers",
    "05_udp", "06_unix_servers", "07_serve_forever_shutdown", "08_threads",
    "09_processes", "10_latency_lab", "11_select_server",
)


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_exercises", REPO / "tools" / "make_exercises.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_exercises = _load_generator()
EXERCISES = list(grading.EXERCISES.values())


def read(folder: str, exercise: grading.Exercise) -> nbformat.NotebookNode:
    return nbformat.read(REPO / folder / exercise.notebook, as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


# --- Single source ----------------------------------------------------------

def test_exercises_are_in_sync_with_solutions(capsys):
    assert make_exercises.main(["--check"]) == 0, capsys.readouterr().out


def test_drift_is_detected(tmp_path):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(REPO / "solutions", solutions)
    shutil.copytree(REPO / "exercises", exercises)
    assert make_exercises.drift(solutions, exercises) == []

    edited = exercises / EXERCISES[0].notebook
    edited.write_text(edited.read_text().replace("NotImplementedError", "NotImplemented"))
    (exercises / EXERCISES[1].notebook).unlink()
    shutil.copy(exercises / EXERCISES[2].notebook, exercises / "ex42_orphan.ipynb")
    assert make_exercises.drift(solutions, exercises) == [
        f"{EXERCISES[0].notebook}: differs from its solution",
        f"{EXERCISES[1].notebook}: missing from {exercises}",
        "ex42_orphan.ipynb: has no solution in " + str(solutions),
    ]
    assert make_exercises.main(
        ["--check", "--solutions", str(solutions), "--exercises", str(exercises)]
    ) == 1
    assert make_exercises.main(["--solutions", str(solutions), "--exercises", str(exercises)]) == 0
    assert make_exercises.drift(solutions, exercises) == ["ex42_orphan.ipynb: has no solution in "
                                                          + str(solutions)]


def test_a_region_becomes_a_stub_with_its_hint_at_its_indentation():
    source = (
        "def get_request(self):\n"
        "    ### BEGIN SOLUTION: accept() a connection\n"
        "    return self.socket.accept()\n"
        "    ### END SOLUTION\n"
        "\n"
        "x = 1"
    )
    assert make_exercises.strip_solution(source) == (
        "def get_request(self):\n"
        '    raise NotImplementedError("accept() a connection")\n'
        "\n"
        "x = 1"
    )


def test_a_hint_with_double_quotes_is_quoted_without_escapes():
    source = '### BEGIN SOLUTION: bind to ("127.0.0.1", 0)\nx = 1\n### END SOLUTION'
    assert make_exercises.strip_solution(source) == (
        """raise NotImplementedError('bind to ("127.0.0.1", 0)')"""
    )


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION: a\n### BEGIN SOLUTION: b\n### END SOLUTION", "inside another"),
    ("### END SOLUTION", "without ### BEGIN"),
    ("### BEGIN SOLUTION: a\nx = 1", "without ### END"),
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "write a hint"),
    # Hints longer than a line belong in the markdown, folded in tiers.
    ("### BEGIN SOLUTION: a\n### b\nx = 1\n### END SOLUTION", "line 2: a hint is the one line"),
    ("    ### BEGIN SOLUTION: " + "x" * 70 + "\nx = 1\n### END SOLUTION", "shorten the hint"),
    ('### BEGIN SOLUTION: split at b"\\n"\nx = 1\n### END SOLUTION', "no backslash"),
    ("### BEGIN SOLUTION: \"it's\"\nx = 1\n### END SOLUTION", "not both"),
])
def test_malformed_markers_are_refused(source, problem):
    with pytest.raises(make_exercises.MarkerError, match=problem):
        make_exercises.strip_solution(source)


# --- The notebooks ----------------------------------------------------------

@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda exercise: exercise.id)
def test_exercise_notebook_states_the_task_and_ends_with_its_check(exercise):
    notebook = read("exercises", exercise)
    assert notebook.metadata["sockserver"] == {"exercise": exercise.id}
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    intro = notebook.cells[0].source
    assert intro.startswith(f"# Exercise {exercise.id[2:]}: {exercise.title}")
    links = re.findall(r"\.\./notebooks/(\w+)\.ipynb", intro)
    assert links and set(links) <= set(NOTEBOOKS), links
    assert f"**Points:** {exercise.total}" in intro
    cells = code_cells(notebook)
    assert cells[-1].source.endswith(exercise.check_call())
    for cell in cells:
        assert cell.outputs == [] and cell.execution_count is None
        assert "### BEGIN SOLUTION" not in cell.source
        ast.parse(cell.source)  # every stub is valid Python
    assert any("raise NotImplementedError(" in cell.source for cell in cells)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda exercise: exercise.id)
def test_solution_notebook_was_executed_and_scored_full_points(exercise):
    notebook = read("solutions", exercise)
    cells = code_cells(notebook)
    assert all(cell.execution_count is not None for cell in cells), "run it top to bottom"
    errors = [output for cell in cells for output in cell.outputs
              if output.output_type == "error"]
    assert errors == []
    printed = "".join(output.get("text", "") for output in cells[-1].outputs)
    assert f"{exercise.id}: {exercise.total}/{exercise.total} points" in printed
    assert "FAIL" not in printed


@pytest.mark.parametrize("folder", ["exercises", "solutions"])
def test_readme_lists_every_exercise_with_its_points(folder):
    rows = (REPO / folder / "README.md").read_text().splitlines()
    for exercise in EXERCISES:
        row = next((row for row in rows if f"[{exercise.notebook}]" in row), "")
        assert row.endswith(f"| {exercise.total} |"), (exercise.notebook, row)
