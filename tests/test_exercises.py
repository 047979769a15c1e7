"""exercises/ is generated from solutions/ (the single source) and stays in sync.

tools/make_exercises.py replaces each ``### BEGIN SOLUTION`` ...
``### END SOLUTION`` region of a solution notebook by a NotImplementedError
stub with the marker's hint, and each ``### BEGIN FIX`` ... ``### BROKEN``
... ``### END FIX`` region (a debugging lab) by its broken lines,
uncommented; ``--check`` fails when exercises/ has drifted.
Also checked here: the shape of every exercise and solution notebook.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from checkout import REPO

from sockserver_lib import grading

NOTEBOOKS = (
    "01_sockets_by_hand", "02_request_loop", "03_tcp_servers", "04_request_handlers",
    "05_udp", "06_unix_servers", "07_serve_forever_shutdown", "08_threads",
    "09_processes", "10_latency_lab", "11_select_server",
    "14_http_server",
    "15_chat_server",
    "16_debugging_labs",
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


# --- FIX markers: the debugging labs ------------------------------------------------

def test_a_fix_region_becomes_its_broken_lines_uncommented():
    source = (
        "def handle(self):\n"
        "    reply = b'x'\n"
        "    ### BEGIN FIX: send it all\n"
        "    self.request.sendall(reply)\n"
        "    ### BROKEN\n"
        "    # self.request.send(reply)\n"
        "    ### END FIX\n"
        "\n"
        "x = 1"
    )
    assert make_exercises.strip_solution(source) == (
        "def handle(self):\n"
        "    reply = b'x'\n"
        "    self.request.send(reply)\n"
        "\n"
        "x = 1"
    )


def test_broken_lines_commented_at_the_start_of_the_line_keep_their_indentation():
    source = (
        "class A:\n"
        "    def f(self):\n"
        "### BEGIN FIX: sendall\n"
        "        self.request.sendall(reply)\n"
        "### BROKEN\n"
        "#         self.request.send(reply)\n"
        "#\n"
        "#        return  # a comment, kept\n"
        "### END FIX"
    )
    assert make_exercises.strip_solution(source) == (
        "class A:\n"
        "    def f(self):\n"
        "        self.request.send(reply)\n"
        "\n"
        "       return  # a comment, kept"
    )


@pytest.mark.parametrize("fixed, broken, exercise", [
    ("    sock.shutdown(SHUT_WR)\n", "", ""),  # the bug: a missing call
    ("", "    # extra()\n", "    extra()\n"),  # the bug: a line too many
])
def test_either_side_of_a_fix_may_be_empty(fixed, broken, exercise):
    source = f"def f():\n    ### BEGIN FIX: a\n{fixed}    ### BROKEN\n{broken}    ### END FIX\n"
    assert make_exercises.strip_solution(source) == f"def f():\n{exercise}"


def test_the_solution_runs_the_fix_and_the_exercise_the_broken_code():
    source = ("def total(a, b):\n"
              "    ### BEGIN FIX: add, not subtract\n"
              "    return a + b\n"
              "    ### BROKEN\n"
              "    # return a - b\n"
              "    ### END FIX\n")
    solution, exercise = {}, {}
    exec(source, solution)  # the markers and the broken lines are comments
    exec(make_exercises.strip_solution(source), exercise)
    assert (solution["total"](3, 2), exercise["total"](3, 2)) == (5, 1)


def test_solution_and_fix_regions_mix_in_one_notebook():
    cell = ("def f():\n"
            "    ### BEGIN SOLUTION: return one\n"
            "    return 1\n"
            "    ### END SOLUTION\n"
            "def g():\n"
            "    ### BEGIN FIX: two\n"
            "    return 2\n"
            "    ### BROKEN\n"
            "    # return 3\n"
            "    ### END FIX")
    regions = make_exercises.regions(cell)
    assert [(r.kind, r.what, r.line, r.solution, r.broken) for r in regions] == [
        ("solution", "return one", 2, ("    return 1",), ()),
        ("fix", "two", 6, ("    return 2",), ("    return 3",)),
    ]
    assert make_exercises.strip_solution(cell) == (
        'def f():\n    raise NotImplementedError("return one")\ndef g():\n    return 3')
    notebook = nbformat.v4.new_notebook(metadata={"sockserver": {"exercise": "ex42"}})
    notebook.cells = [nbformat.v4.new_markdown_cell("### BEGIN FIX: not code"),
                      nbformat.v4.new_code_cell(cell)]
    assert make_exercises.marker_kinds(notebook) == {"solution", "fix"}
    exercise = make_exercises.exercise_from_solution(notebook, "ex42_mixed.ipynb")
    assert exercise.cells[1].source == make_exercises.strip_solution(cell)
    assert exercise.cells[0].source == "### BEGIN FIX: not code"  # markdown is copied


def test_a_notebook_without_regions_is_refused():
    notebook = nbformat.v4.new_notebook(metadata={"sockserver": {"exercise": "ex42"}})
    notebook.cells = [nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(make_exercises.MarkerError, match="no ### BEGIN SOLUTION or ### BEGIN FIX"):
        make_exercises.exercise_from_solution(notebook, "ex42_empty.ipynb")


FIX = "### BEGIN FIX: a\nx = 1\n### BROKEN\n# y = 1\n### END FIX"


@pytest.mark.parametrize("source, problem", [
    (FIX.replace("FIX: a", "FIX"), "line 1: say what the fix does"),
    ("### BEGIN FIX: a\nx = 1\n### END FIX", "line 3: ### END FIX without ### BROKEN"),
    (FIX.rpartition("\n")[0], "### BEGIN FIX without ### END FIX"),
    ("x = 1\n### BROKEN\n# y", "line 2: ### BROKEN without ### BEGIN FIX"),
    ("### END FIX", "line 1: ### END FIX without ### BEGIN FIX"),
    (FIX.replace("# y = 1", "y = 1"), "line 4: a broken line is commented out"),
    ("### BEGIN FIX: a\n\n### BROKEN\n\n### END FIX", "neither fixed nor broken"),
    (FIX.replace("# y = 1", "#   x = 1"), "the same as the fixed"),
    ("### BEGIN FIX: a\n" + FIX, "line 2: ### BEGIN FIX inside another fix region"),
    ("### BEGIN SOLUTION: a\n" + FIX + "\n### END SOLUTION",
     "line 2: ### BEGIN FIX inside another solution region"),
    ("### BEGIN FIX: a\nx\n### BEGIN SOLUTION: b\n### END SOLUTION\n### BROKEN\n### END FIX",
     "line 3: ### BEGIN SOLUTION inside another fix region"),
    (FIX.replace("# y = 1", "# y = 1\n### BROKEN"),
     "line 5: ### BROKEN inside a region opened by ### BEGIN FIX"),
    (FIX.replace("### END FIX", "### END SOLUTION"),
     "line 5: ### END SOLUTION inside a region opened by ### BEGIN FIX"),
    ("### BEGIN SOLUTION: a\nx = 1\n### END FIX",
     "line 3: ### END FIX inside a region opened by ### BEGIN SOLUTION"),
])
def test_malformed_fix_markers_are_refused(source, problem):
    with pytest.raises(make_exercises.MarkerError, match=re.escape(problem)):
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
        assert not any(marker in cell.source for marker in make_exercises.MARKERS)
        ast.parse(cell.source)  # every stub, and all broken code, is valid Python
    kinds = make_exercises.marker_kinds(read("solutions", exercise))
    assert kinds, "nothing for the student to write or fix"
    if make_exercises.SOLUTION in kinds:
        assert any("raise NotImplementedError(" in cell.source for cell in cells)
    if make_exercises.FIX in kinds:
        assert_exercise_has_the_broken_code(read("solutions", exercise), notebook)


def assert_exercise_has_the_broken_code(solution, exercise):
    """Each FIX region's cell has, in the exercise, its broken lines and none of the
    fixed lines that the broken ones do not have too."""
    pairs = zip(code_cells(solution), code_cells(exercise), strict=True)
    for solution_cell, exercise_cell in pairs:
        lines = exercise_cell.source.split("\n")
        for region in make_exercises.regions(solution_cell.source):
            if region.kind != make_exercises.FIX:
                continue
            assert set(region.broken) <= set(lines), region
            only_fixed = {line for line in region.solution if line.strip()} - set(region.broken)
            assert not only_fixed & set(lines), region


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


#: Run in a fresh interpreter: an exercise's code cells but its check(), in order, as
#: Run All would run them; the first exception stops it, as it stops Run All.
_RUN_ALL = """
import os
import sys
import nbformat


class Bounded:
    # stdout that ends the process once it has printed more than its limit

    def __init__(self, stream, limit):
        self.stream, self.left = stream, limit

    def write(self, text):
        self.left -= len(text)
        if self.left < 0:
            os.write(2, b"printed too much: a loop that never ends?")
            os._exit(3)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


sys.stdout = Bounded(sys.stdout, int(sys.argv[2]))
notebook = nbformat.read(sys.argv[1], as_version=4)
namespace = {"__name__": "__main__"}
try:
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell is not notebook.cells[-1]:
            exec(compile(cell.source, f"cell {number}", "exec"), namespace)
except Exception as stop:
    # The exception's name goes in its own file: the message (and other
    # threads' output) can end stderr with any line.
    with open(sys.argv[3], "w") as stopped_at:
        stopped_at.write(type(stop).__name__)
    raise
"""
#: Seconds Run All on an untouched exercise may take, its stops and timeouts included.
RUN_ALL_LIMIT = 90
#: Characters of output it may print: a loop that prints forever is a hang too.
RUN_ALL_OUTPUT = 100_000


@pytest.mark.timeout(RUN_ALL_LIMIT + 30)
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda exercise: exercise.id)
def test_run_all_on_the_untouched_exercise_ends_instead_of_hanging(exercise, tmp_path):
    """A learner's first Run All stops at a stub, or shows a symptom, in bounded time."""
    path = REPO / "exercises" / exercise.notebook
    assert code_cells(read("exercises", exercise))[-1].source.endswith(exercise.check_call())
    stopped_at = tmp_path / "stopped_at"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RUN_ALL, str(path), str(RUN_ALL_OUTPUT), str(stopped_at)],
            cwd=path.parent, capture_output=True, text=True, timeout=RUN_ALL_LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Run All on {exercise.notebook} did not end in {RUN_ALL_LIMIT} s")
    assert done.returncode != 3, done.stderr[-300:]  # it printed without end
    if done.returncode != 0:  # it stopped at an exception: a stub, or the code's own error
        assert stopped_at.exists(), done.stderr[-300:]  # not an exception: a crash
        assert stopped_at.read_text() in ("NotImplementedError", "TimeoutError",
                                          "BrokenPipeError", "ConnectionRefusedError"), (
            done.stderr[-300:])
