"""The autograder: check() in a notebook, and the batch grader on whole folders.

The batch grader runs on the real notebooks: every solution scores full
points, the untouched exercises score 0 (and grading them completes), and
the sample submissions in tests/data score exactly what they prove: a
partial one its partial credit; one hanging in a cell, one stuck in a test,
a crashing and an invalid one 0 with the reason; all in the same run.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest
from checkout import REPO

from sockserver_lib import contract, grading
from sockserver_lib.grade import COLUMNS
from sockserver_lib.grading import (
    Exercise,
    Test,
    check,
    engine,
    frontend,
    run_in_child,
    run_isolated,
)

DATA = REPO / "tests" / "data"
TOTAL = sum(exercise.total for exercise in grading.EXERCISES.values())
#: The time limit per submission for tests/data: the two hanging notebooks
#: use all of it; the others need a fraction of it.
HANG_TIMEOUT = 6

#: tests/data/ex08_partial.ipynb: a ThreadingMixIn whose server_close() does
#: not wait for its threads, and a handler that counts without the lock.
PARTIAL_EXPECTED = {
    "echo_round_trip[tcp-threading]": 1,
    "echo_round_trip[udp-threading]": 1,
    "silent_client_does_not_block_concurrent_server[tcp-threading]": 1,
    "handler_exception_goes_to_handle_error[tcp-threading]": 1,
    "no_leaks_after_many_requests[tcp-threading]": 1,
    "server_close_waits_for_request_threads[tcp-threading]": 0,
    "server_close_waits_for_request_threads[udp-threading]": 0,
    "counts_every_request": 1,
    "no_lost_updates": 0,
}


# --- The batch grader on real notebooks -----------------------------------

def run_grader(*arguments: str, timeout: float = 110) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as books:  # its journal: not in the checkout
        return subprocess.run(
            [sys.executable, "-m", "sockserver_lib.grade", *arguments,
             "--journal", os.path.join(books, "journal.jsonl")],
            cwd=REPO, capture_output=True, text=True, timeout=timeout,
        )


def grade_to_csv(tmp_path_factory, *arguments: str) -> tuple[subprocess.CompletedProcess, list]:
    table = tmp_path_factory.mktemp("grades") / "grades.csv"
    completed = run_grader(*arguments, "--csv", str(table))
    assert completed.returncode == 0, completed.stderr
    with open(table, newline="", encoding="utf-8") as file:
        return completed, list(csv.DictReader(file))


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    return grade_to_csv(tmp_path_factory, "solutions")


@pytest.fixture(scope="module")
def exercises(tmp_path_factory):
    return grade_to_csv(tmp_path_factory, "exercises")


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    # Tests may take longer than the submission: ex01_stuck's first test
    # never ends, so its submission's time runs out in the middle of it.
    return grade_to_csv(
        tmp_path_factory, str(DATA), "--timeout", str(HANG_TIMEOUT), "--test-timeout", "60"
    )


def rows_of(rows: list[dict], notebook: str) -> list[dict]:
    return [row for row in rows if Path(row["submission"]).name == notebook]


def last_line(completed: subprocess.CompletedProcess) -> str:
    return completed.stdout.rstrip("\n").splitlines()[-1]


@pytest.mark.timeout(120)
def test_every_solution_scores_full_points(solutions):
    completed, rows = solutions
    for exercise in grading.EXERCISES.values():
        graded = rows_of(rows, exercise.notebook)
        assert [row["test"] for row in graded] == [test.name for test in exercise.tests]
        failed = [(row["test"], row["message"]) for row in graded if row["status"] != "passed"]
        assert failed == [], exercise.id
        assert sum(int(row["points"]) for row in graded) == exercise.total
    assert last_line(completed) == f"total: {TOTAL}/{TOTAL} points"


def untouched_statuses(exercise: Exercise) -> set[str]:
    """How the tests of an untouched exercise end: "not implemented" at a stub (a
    SOLUTION region), "failed" on the broken code of a debugging lab (a FIX region)."""
    spec = importlib.util.spec_from_file_location("make_exercises",
                                                  REPO / "tools" / "make_exercises.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    solution = nbformat.read(REPO / "solutions" / exercise.notebook, as_version=4)
    status = {generator.SOLUTION: "not implemented", generator.FIX: "failed"}
    return {status[kind] for kind in generator.marker_kinds(solution)}


@pytest.mark.timeout(120)
def test_untouched_exercises_score_zero_and_grading_completes(exercises):
    completed, rows = exercises
    for exercise in grading.EXERCISES.values():
        graded = rows_of(rows, exercise.notebook)
        assert len(graded) == len(exercise.tests), exercise.id
        # Each test fails because of a stub (code to write) or of the broken code (a
        # debugging lab's bug to fix), not because the grader broke or a test hung.
        statuses, expected = {row["status"] for row in graded}, untouched_statuses(exercise)
        assert statuses == expected if len(expected) == 1 else statuses <= expected, exercise.id
        assert all(row["points"] == "0" for row in graded)
    assert last_line(completed) == f"total: 0/{TOTAL} points"


@pytest.mark.timeout(120)
def test_partial_submission_scores_exactly_its_partial_credit(samples):
    _, rows = samples
    graded = rows_of(rows, "ex08_partial.ipynb")
    assert {row["test"]: int(row["points"]) for row in graded} == PARTIAL_EXPECTED
    failed = {row["test"]: row["message"] for row in graded if row["points"] == "0"}
    assert "hits_lock" in failed["no_lost_updates"]  # the hint names the fix
    assert all(row["status"] == "failed" for row in graded if row["points"] == "0")


@pytest.mark.timeout(120)
def test_partial_submission_cell_error_is_noted_and_the_rest_graded(samples):
    completed, _ = samples
    assert "ex08_partial.ipynb: cell 5 raised NameError" in completed.stdout


@pytest.mark.timeout(120)
def test_hanging_submission_is_stopped_and_scores_zero_with_reason(samples):
    _, rows = samples
    graded = rows_of(rows, "ex02_hangs.ipynb")
    assert len(graded) == grading.EXERCISES["ex02"].total
    for row in graded:
        assert (row["status"], row["points"]) == ("timed out", "0")
        assert f"did not finish within {HANG_TIMEOUT} s" in row["message"]
        assert "(while running cell 4: # serve for real" in row["message"]
    assert not _processes_running("ex02_hangs.ipynb"), "the hanging notebook's process survived"


@pytest.mark.timeout(120)
def test_submission_stuck_in_a_test_is_stopped_with_the_test(samples):
    _, rows = samples
    graded = rows_of(rows, "ex01_stuck.ipynb")
    assert len(graded) == grading.EXERCISES["ex01"].total
    for row in graded:
        assert (row["status"], row["points"]) == ("timed out", "0")
        assert "(during its tests, 0 of which had finished)" in row["message"]
    # The test ran in a process of its own, with its own group: stopped too.
    assert not _processes_running("ex01_stuck.ipynb"), "the stuck test's process survived"


@pytest.mark.timeout(120)
def test_crashing_submission_scores_zero_with_reason(samples):
    _, rows = samples
    graded = rows_of(rows, "ex10_exits.ipynb")
    assert len(graded) == grading.EXERCISES["ex10"].total
    for row in graded:
        assert (row["status"], row["points"]) == ("crashed", "0")
        assert "ended (exit code 3)" in row["message"]
        assert "while running cell" in row["message"]


@pytest.mark.timeout(120)
def test_invalid_notebook_scores_zero_with_reason(samples):
    _, rows = samples
    graded = rows_of(rows, "ex03_invalid.ipynb")
    assert len(graded) == grading.EXERCISES["ex03"].total
    for row in graded:
        assert (row["status"], row["points"]) == ("invalid notebook", "0")
        assert row["message"].startswith("not a valid notebook (JSONDecodeError")


@pytest.mark.timeout(120)
def test_samples_total_line_counts_every_submission(samples):
    completed, rows = samples
    graded = ("ex01", "ex02", "ex03", "ex08", "ex10")
    maximum = sum(grading.EXERCISES[name].total for name in graded)
    assert last_line(completed) == f"total: {sum(PARTIAL_EXPECTED.values())}/{maximum} points"
    assert sum(int(row["max_points"]) for row in rows) == maximum
    assert list(rows[0]) == list(COLUMNS)


def _processes_running(text: str) -> bool:
    """True if a process with *text* in its command line is still alive.

    A process killed a moment ago may not have died yet: each one found is
    given a few seconds to go (Linux: /proc and pidfd_open).
    """
    if not os.path.isdir("/proc/self") or not hasattr(os, "pidfd_open"):
        pytest.skip("needs /proc and os.pidfd_open() to watch processes")
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read()
        except OSError:
            continue
        if entry.isdigit() and text.encode() in command and not _ends(int(entry)):
            return True
    return False


def _ends(pid: int, within: float = 5.0) -> bool:
    """True if process *pid* is gone, or a zombie, or becomes one *within* seconds."""
    try:
        watch = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([watch], [], [], within)  # readable once it has exited
        return bool(ready)
    finally:
        os.close(watch)


def test_grader_help_and_no_notebooks(tmp_path):
    assert "--timeout" in run_grader("--help").stdout
    completed = run_grader(str(tmp_path))
    assert completed.returncode == 2
    assert "no notebooks found" in completed.stderr


@pytest.mark.timeout(60)
def test_batch_grades_what_check_was_given_and_skips_try_it_cells(tmp_path):
    """A renamed class passed to check() is graded; demos and magics are not run."""
    notebook = nbformat.read(REPO / "solutions" / "ex10_access_control.ipynb", as_version=4)
    for cell in notebook.cells:
        cell.source = cell.source.replace("AllowListServer", "MyAllowList")
    notebook.cells[-1].source = (
        "from sockserver_lib.grading import check\n"
        'check("ex10", AllowListServer=MyAllowList)'
    )
    hang = nbformat.v4.new_code_cell("import threading\nthreading.Event().wait()")
    hang.metadata["tags"] = ["try-it"]
    notebook.cells.insert(-1, hang)
    notebook.cells.insert(-1, nbformat.v4.new_code_cell("%timeit 1 + 1\nmagic_was_skipped = True"))
    nbformat.write(notebook, tmp_path / "renamed.ipynb")

    completed = run_grader(str(tmp_path), "--timeout", "30")
    assert last_line(completed) == "total: 5/5 points", completed.stdout
    assert "IPython lines not run: %timeit 1 + 1" in completed.stdout


def test_unknown_exercise_is_reported_not_graded(tmp_path):
    (tmp_path / "homework.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    completed = run_grader(str(tmp_path))
    assert "cannot tell which exercise this is" in completed.stdout
    assert last_line(completed) == "total: 0/0 points"


# --- check() in a notebook ------------------------------------------------

def _passes(students):
    pass


def _fails(students):
    raise AssertionError("expected 1, got 2; hint: add one")


def _calls_the_stub(students):
    students["value"]()


def _raises_key_error(students):
    {}["missing key"]


def _hangs(students):
    threading.Event().wait()


def _stub_in_a_server_thread(students):
    """A server thread meets the stub while the test waits for its reply."""
    threading.Thread(target=students["value"], daemon=True).start()
    threading.Event().wait()


def stub():
    raise NotImplementedError("write it")


@pytest.fixture
def fake_exercise(monkeypatch):
    """ex99: one test of each outcome; each test may run 1 s."""
    tests = (
        Test("passes", _passes), Test("fails", _fails), Test("stub", _calls_the_stub),
        Test("raises", _raises_key_error), Test("hangs", _hangs),
        Test("stub_in_thread", _stub_in_a_server_thread, points=2),
    )
    exercise = Exercise("ex99", "ex99_fake.ipynb", "Fake", {"value": "value"}, tests)
    monkeypatch.setitem(grading.EXERCISES, "ex99", exercise)
    monkeypatch.setattr(frontend, "TEST_TIME_LIMIT", 1.0)  # the limit check() gives each test
    return exercise


@pytest.mark.timeout(30)
def test_check_prints_each_test_and_the_score(fake_exercise, capsys):
    result = check("ex99", value=stub)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "PASS passes"
    assert lines[1].startswith("FAIL fails: expected 1, got 2; hint: add one (in _fails(), line")
    assert lines[2] == "FAIL stub: not implemented yet (write it)"
    assert lines[3].startswith("FAIL raises: KeyError: 'missing key' (in _raises_key_error(), line")
    assert lines[4].startswith("FAIL hangs: did not finish within 1 s and was stopped")
    # The stub met in a thread ends the test at once, not at the time limit;
    # the same hint is not printed twice.
    assert lines[5] == "FAIL stub_in_thread: not implemented yet (as above)"
    assert result.tests[5].message == "not implemented yet (write it)"
    assert lines[6] == "ex99: 1/7 points"
    assert (result.points, result.total) == (1, 7)
    assert [test.status for test in result.tests] == [
        "passed", "failed", "not implemented", "error", "timed out", "not implemented",
    ]


def test_check_without_the_names_fails_every_test_with_a_hint(fake_exercise, capsys):
    result = check("ex99", valeu=stub)
    out = capsys.readouterr().out
    assert "FAIL passes: missing value=...: run the cells that define them" in out
    assert "note: ex99 does not use valeu; it takes value" in out
    assert result.points == 0 and result.total == 7


def test_check_takes_the_names_in_order_too(fake_exercise, capsys):
    result = check("ex99", stub)
    assert [test.status for test in result.tests][:3] == ["passed", "failed", "not implemented"]
    assert "missing value=" not in capsys.readouterr().out


def test_check_of_an_unknown_exercise_says_which_exist(capsys):
    result = check("ex42")
    assert "unknown exercise 'ex42'; the exercises are ex01, ex02" in capsys.readouterr().out
    assert result.total == 0


def test_check_is_skipped_while_the_batch_grader_runs_the_cells(monkeypatch, capsys):
    monkeypatch.setenv(grading.BATCH_ENVIRONMENT_VARIABLE, "1")
    assert check("ex01") is None
    assert "skipped" in capsys.readouterr().out


def test_check_reports_a_grader_failure_instead_of_raising(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("grader bug")

    monkeypatch.setattr(frontend, "grade", broken)
    assert check("ex01") is None
    assert "check() could not run: RuntimeError: grader bug" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs os.pidfd_open() (Linux)")
@pytest.mark.timeout(30)
def test_a_test_that_times_out_is_stopped_with_everything_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"

    def start_a_process_then_hang():
        pid = os.fork()
        if pid == 0:  # a server's child that would run forever
            signal.pause()
            os._exit(0)
        pid_file.write_text(str(pid))
        threading.Event().wait()

    status, message = run_isolated(start_a_process_then_hang, 0.5)
    assert status == "timed out" and "0.5 s" in message
    assert _ends(int(pid_file.read_text())), "the test's own child process survived"


@pytest.mark.timeout(30)
def test_a_test_that_kills_its_process_is_reported_as_crashed():
    status, message = run_isolated(lambda: os._exit(7), 5)
    assert status == "crashed" and "died before reporting" in message


@pytest.mark.timeout(30)
def test_run_in_child_returns_the_output_or_raises_the_reason():
    assert run_in_child(lambda: print("from the child", os.getpid() != PARENT_PID)) == (
        "from the child True\n"
    )
    with pytest.raises(RuntimeError, match="error: ZeroDivisionError") as raised:
        run_in_child(lambda: 1 / 0)
    assert raised.type is RuntimeError


@pytest.mark.timeout(30)
def test_run_in_child_raises_not_implemented_at_a_stub_with_what_it_printed():
    def stub():
        print("before the stub")
        raise NotImplementedError("reap the children")

    with pytest.raises(NotImplementedError, match="reap the children") as raised:
        run_in_child(stub)
    assert raised.value.args[0].endswith("before the stub")


@pytest.mark.timeout(30)
def test_run_in_child_that_times_out_still_shows_what_it_printed():
    def hang():
        print("waiting for a reply that never comes")
        threading.Event().wait()

    with pytest.raises(RuntimeError, match="did not finish within 1 s") as raised:
        run_in_child(hang, time_limit=1)
    assert raised.value.args[0].endswith("waiting for a reply that never comes")


@pytest.mark.timeout(30)
def test_a_test_printing_in_a_loop_keeps_a_small_output_file_and_its_end(tmp_path):
    output = engine._WrittenThrough(str(tmp_path / "printed"))
    for number in range(100_000):
        output.write(f"line {number}\n")
    assert (tmp_path / "printed").stat().st_size <= engine._FILE_LIMIT
    assert (tmp_path / "printed").read_text().endswith("line 99998\nline 99999\n")
    assert output.getvalue().startswith("line 0\n")


PARENT_PID = os.getpid()


# --- The registry ---------------------------------------------------------

def test_exercises_are_in_learning_order_with_their_notebooks():
    # Notebooks 12 (pools) and 13 (hardening) end with open-ended Try this, not an exercise.
    numbers = [*range(1, 12), 14, 15, 16]
    assert list(grading.EXERCISES) == [f"ex{number:02d}" for number in numbers]
    for exercise_id, exercise in grading.EXERCISES.items():
        assert exercise.notebook.startswith(exercise_id + "_")
        assert exercise.tests and exercise.names
        assert len({test.name for test in exercise.tests}) == len(exercise.tests)


def test_contract_tests_name_existing_checks_for_kinds_they_apply_to():
    kinds = {kind.id: kind for kind in contract.ALL_KINDS}
    for exercise in grading.EXERCISES.values():
        for test in exercise.tests:
            name, _, kind_id = test.name.partition("[")
            if not kind_id:
                continue  # a test specific to the exercise
            assert name in contract.CHECKS, test.name
            assert contract.CHECKS[name].applies_to(kinds[kind_id.rstrip("]")]), test.name


def test_readme_gives_the_registrys_points_total():
    total = sum(spec.total for spec in grading.EXERCISES.values())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"{total}\n  points in all" in readme or f"{total} points in all" in readme


def _student_asserts(message: str):
    """A function compiled as a student's notebook cell is (no pytest rewriting)."""
    namespace = {"MESSAGE": message}
    exec(compile("def student_code():\n    assert 1 + 1 == 3, MESSAGE\n", "<cell>", "exec"),
         namespace)
    return namespace["student_code"]


@pytest.mark.parametrize("message, shown", [("boom", "boom"), ("", "an assertion failed")])
def test_an_assertion_in_the_students_code_says_where_with_or_without_a_message(message, shown):
    status, text = grading.run_isolated(_student_asserts(message), 5)
    assert (status, text) == (grading.FAILED, f"{shown} (in student_code(), line 2)")


def _writes_a_temporary_file_then(ending: str):
    """A test that leaves a 1 MB temporary file, then hangs or leaves at once."""

    def test():
        folder = tempfile.mkdtemp(prefix="leak-")
        Path(folder, "big.bin").write_bytes(bytes(1 << 20))
        print(folder)
        if ending == "hangs":
            threading.Event().wait()
        os._exit(0)  # like a stub met in a server thread: no cleanup runs

    return test


@pytest.mark.skipif(not hasattr(os, "fork"), reason="tests run in threads without fork()")
@pytest.mark.timeout(30)
@pytest.mark.parametrize("ending", ["hangs", "exits"])
def test_a_tests_temporary_files_are_removed_even_when_it_is_killed(
        ending, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the caller's temp dir
    status, _ = run_isolated(_writes_a_temporary_file_then(ending), 1)
    assert status == (grading.TIMED_OUT if ending == "hangs" else grading.CRASHED)
    assert tempfile.gettempdir() == str(tmp_path)  # the caller's setting is untouched
    assert os.listdir(tmp_path) == []
