"""Grading a class (sockserver_lib.grade_class): which files, in parallel, journaled, resumed."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from checkout import REPO

from sockserver_lib import grade_class
from sockserver_lib.grade import Submission
from sockserver_lib.grading import Result, TestResult

SOLUTIONS, EXERCISES = REPO / "solutions", REPO / "exercises"


def names(path: Path) -> tuple:
    """identify() for tests: the metadata's exercise is the file's first word, its name's
    the second (e.g. "ex04-ex05.ipynb": metadata ex04, name ex05)."""
    declared, named = (path.stem.split("-") + [None])[:2]
    return declared, named or declared


def touch(path: Path, when: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, ns=(when, when))
    return path


# --- which files are graded ------------------------------------------------------


def test_of_two_files_of_one_exercise_in_a_students_folder_the_newest_is_graded(tmp_path):
    old = Submission(touch(tmp_path / "alice" / "ex04.ipynb", 1_000))
    new = Submission(touch(tmp_path / "alice" / "ex04-ex04.ipynb", 2_000))
    other = Submission(touch(tmp_path / "bob" / "ex04.ipynb", 1_000))
    chosen = grade_class.choose([old, new, other], names, roots=[tmp_path])
    assert chosen == [new, other]
    assert old.notes == ["not graded: ex04-ex04.ipynb is a newer file of ex04 in the same "
                         "folder, and only the newest is"]
    assert new.notes == other.notes == []


def test_files_directly_in_a_folder_named_on_the_command_line_are_each_graded(tmp_path):
    flat = [Submission(touch(tmp_path / f"ex04-{n}.ipynb", n)) for n in (1, 2)]
    assert grade_class.choose(flat, lambda path: ("ex04", None), roots=[tmp_path]) == flat


def test_a_name_that_disagrees_with_the_metadata_is_graded_by_the_metadata_with_a_note(tmp_path):
    submission = Submission(touch(tmp_path / "alice" / "ex04-ex05.ipynb", 1))
    assert grade_class.choose([submission], names, roots=[tmp_path]) == [submission]
    assert submission.notes == ["its metadata says ex04 but its name says ex05: graded as "
                                "ex04, as its metadata says"]


# --- the journal ------------------------------------------------------------------


def graded(path: Path, points: int) -> Submission:
    submission = Submission(path, "ex04", notes=["a note"])
    submission.result = Result("ex04", [TestResult("a", "passed", points, 1, "")], "")
    return submission


def test_the_journal_gives_back_an_unchanged_files_result_and_grades_a_changed_one(tmp_path):
    path = touch(tmp_path / "ex04.ipynb", 1_000)
    journal = grade_class.Journal(tmp_path / "journal.jsonl")
    assert journal.start(resume=False) == {}
    journal.add(graded(path, 1))
    records = grade_class.Journal(tmp_path / "journal.jsonl").start(resume=True)
    again = Submission(path)
    assert grade_class.restore(again, records[str(path)])
    assert (again.exercise, again.notes, again.result.points) == ("ex04", ["a note"], 1)
    touch(path, 2_000)  # handed in again
    assert not grade_class.restore(Submission(path), records[str(path)])


def test_a_cut_line_is_skipped_when_a_run_resumes(tmp_path):
    journal = grade_class.Journal(tmp_path / "journal.jsonl")
    journal.start(resume=False)
    journal.add(graded(touch(tmp_path / "ex04.ipynb", 1), 1))
    with open(journal.path, "a") as file:
        file.write('{"path": "cut short')  # a run stopped in the middle of a line
    assert list(journal.start(resume=True)) == [str(tmp_path / "ex04.ipynb")]


# --- the queue --------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_every_submission_is_graded_once_by_the_jobs_at_once():
    running, most, lock = [0], [0], threading.Lock()
    both_running = threading.Barrier(2, timeout=10)

    def grade_one(submission):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if submission.path.name in ("0", "1"):
            both_running.wait()  # the first two are graded at the same time
        with lock:
            running[0] -= 1

    done = []
    submissions = [Submission(Path(str(n))) for n in range(6)]
    grade_class.grade_class(submissions, grade_one, 2, done.append, lambda: None)
    assert sorted(done, key=lambda s: s.path.name) == submissions
    assert most[0] == 2


@pytest.mark.timeout(30)
def test_an_interrupted_run_stops_the_workers_and_keeps_what_finished_before():
    stopped = threading.Event()
    both_busy_again = threading.Barrier(3, timeout=10)  # the two jobs and the Ctrl-C

    def grade_one(submission):
        if submission.path.name not in ("0", "1"):  # "0" and "1" come back at once
            both_busy_again.wait()  # so both jobs have handed in "0" and "1"
            stopped.wait(10)  # still running, until stop_workers()

    reported = []

    def done(submission):
        reported.append(submission.path.name)
        if len(reported) == 1:
            both_busy_again.wait()
            raise KeyboardInterrupt  # Ctrl-C with "1" finished but not yet passed on

    with pytest.raises(KeyboardInterrupt):
        grade_class.grade_class([Submission(Path(str(n))) for n in range(4)], grade_one, 2,
                                done, stopped.set)
    assert stopped.is_set()
    assert sorted(reported) == ["0", "1"]  # "1" kept; "2" and "3" were stopped, not reported


# --- the command ------------------------------------------------------------------


def grade(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockserver_lib.grade", *args],
                          capture_output=True, text=True, timeout=200, cwd=cwd)


def rows(path: Path) -> list:
    with open(path, newline="", encoding="utf-8") as file:
        return sorted(tuple(row.values()) for row in csv.DictReader(file))


@pytest.fixture(scope="module")
def small_class(tmp_path_factory) -> Path:
    """Two students: a full solution, an untouched exercise, a partial one each."""
    folder = tmp_path_factory.mktemp("small-class")
    for student, (solved, untouched) in {"alice": ("ex08", "ex04"),
                                         "bob": ("ex04", "ex08")}.items():
        (folder / student).mkdir()
        for exercise, source in ((solved, SOLUTIONS), (untouched, EXERCISES)):
            notebook = next(source.glob(f"{exercise}_*.ipynb"))
            shutil.copy(notebook, folder / student / notebook.name)
    shutil.copy(REPO / "tests" / "data" / "ex08_partial.ipynb", folder / "carol_ex08.ipynb")
    return folder


@pytest.mark.timeout(240)
def test_grading_in_parallel_gives_the_same_grades_as_one_at_a_time(small_class, tmp_path):
    serial = grade(str(small_class), "--jobs", "1", "--csv", "serial.csv", cwd=tmp_path)
    parallel = grade(str(small_class), "--jobs", "2", "--csv", "parallel.csv", cwd=tmp_path)
    assert serial.returncode == parallel.returncode == 0, parallel.stderr
    assert rows(tmp_path / "serial.csv") == rows(tmp_path / "parallel.csv")
    assert serial.stdout.splitlines()[-1] == parallel.stdout.splitlines()[-1]
    assert [line.split("]")[0] for line in parallel.stderr.splitlines()] == [
        f"[{n}/5" for n in range(1, 6)]  # a progress line as each one finishes


@pytest.mark.timeout(240)
def test_a_resumed_run_grades_only_what_the_journal_lacks(small_class, tmp_path):
    first = grade(str(small_class), "--csv", "first.csv", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    journal = tmp_path / "grading-journal.jsonl"
    lines = journal.read_text().splitlines()
    assert len(lines) == 1 + 5  # the settings, then a line per result
    journal.write_text("\n".join(lines[:1 + 3]) + "\n")  # as if stopped after three
    resumed = grade(str(small_class), "--resume", "--csv", "resumed.csv", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: 3 result(s) taken from grading-journal.jsonl" in resumed.stderr
    assert "[2/2]" in resumed.stderr and "[3/" not in resumed.stderr
    assert rows(tmp_path / "first.csv") == rows(tmp_path / "resumed.csv")
    assert len(journal.read_text().splitlines()) == 1 + 5


def test_the_class_generator_makes_five_notebooks_per_student_of_every_kind(tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tools"))
    import make_class

    assert make_class.main([str(tmp_path / "class"), "--students", "30", "--seed", "7"]) == 0
    students = sorted((tmp_path / "class").iterdir())
    assert len(students) == 30
    notebooks = [path for student in students for path in student.glob("*.ipynb")]
    assert len(notebooks) <= 30 * make_class.PER_STUDENT
    written = capsys.readouterr().out.splitlines()[0]
    for kind in (*make_class.KIND_WEIGHTS, *make_class.KIND_COUNTS):
        assert f" {kind}" in written, kind
    with pytest.raises(SystemExit):  # it never writes into a folder that holds something
        make_class.main([str(tmp_path / "class")])


@pytest.mark.timeout(120)
def test_require_all_fails_the_command_unless_every_point_was_earned(tmp_path):
    full = grade(str(SOLUTIONS / "ex10_access_control.ipynb"), "--require-all", cwd=tmp_path)
    none = grade(str(EXERCISES / "ex10_access_control.ipynb"), "--require-all", cwd=tmp_path)
    without = grade(str(EXERCISES / "ex10_access_control.ipynb"), cwd=tmp_path)
    assert (full.returncode, none.returncode, without.returncode) == (0, 1, 0), none.stderr


# --- instructor-only tests ----------------------------------------------------------

EXTRA = REPO / "tests" / "data" / "extra_tests"


@pytest.mark.timeout(120)
def test_extra_tests_are_graded_and_counted_like_the_exercises_own(tmp_path):
    done = grade(str(SOLUTIONS / "ex10_access_control.ipynb"),
                 str(EXERCISES / "ex10_access_control.ipynb"),
                 "--extra-tests", str(EXTRA), "--csv", "grades.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "extra tests: ex10: 1 test(s)" in done.stderr
    graded = rows(tmp_path / "grades.csv")
    extra = [row for row in graded if row[2] == "single_address_allowed"]
    assert [(Path(row[0]).parent.name, row[3], row[4]) for row in sorted(extra)] == [
        ("exercises", "not implemented", "0"), ("solutions", "passed", "1")]
    assert done.stdout.splitlines()[-1] == "total: 6/12 points"  # 5 + 1 each


@pytest.mark.timeout(60)
def test_a_bad_extra_tests_folder_is_refused_with_what_to_change(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no *.py module" in grade(str(SOLUTIONS), "--extra-tests", str(tmp_path / "empty"),
                                     cwd=tmp_path).stderr
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "tests.py").write_text("X = 1\n")
    refused = grade(str(SOLUTIONS), "--extra-tests", str(tmp_path / "none"), cwd=tmp_path)
    assert refused.returncode == 2 and "tests.py defines no EXTRA_TESTS" in refused.stderr
    (tmp_path / "twice").mkdir()
    (tmp_path / "twice" / "tests.py").write_text(
        "from sockserver_lib.grading import Test\n"
        "EXTRA_TESTS = {'ex10': [Test('threading_server', lambda students: None)]}\n")
    twice = grade(str(SOLUTIONS), "--extra-tests", str(tmp_path / "twice"), cwd=tmp_path)
    assert twice.returncode == 2 and "two tests named threading_server" in twice.stderr


def test_the_classroom_workflow_in_docs_is_the_one_the_registry_makes(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tools"))
    import make_classroom_workflow

    committed = (REPO / "docs" / "classroom.yml").read_text(encoding="utf-8")
    assert committed == make_classroom_workflow.workflow(), (
        "run: python tools/make_classroom_workflow.py > docs/classroom.yml")
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load(committed)["jobs"]["run-autograding-tests"]["steps"]
    graders = {step["id"]: step["with"] for step in steps if "id" in step}
    from sockserver_lib.grading import EXERCISES as REGISTRY

    assert {name: int(given["max-score"]) for name, given in graders.items()} == {
        name: spec.total for name, spec in REGISTRY.items()}
    assert all(given["command"].endswith("--require-all") for given in graders.values())


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_grader_error_in_one_submission_does_not_hang_the_run():
    def grade_one(submission):
        if submission.path.name == "1":
            raise RuntimeError("the grader's own bug")

    done = []
    submissions = [Submission(Path(str(n))) for n in range(4)]
    grade_class.grade_class(submissions, grade_one, 2, done.append, lambda: None)
    assert sorted(s.path.name for s in done) == ["0", "1", "2", "3"]  # every one came back


def test_grade_submission_turns_a_grader_error_into_a_zero_with_the_reason(monkeypatch,
                                                                          tmp_path):
    from sockserver_lib import grade_one

    def no_process(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(grade_one, "_run_worker", no_process)
    submission = Submission(SOLUTIONS / "ex10_access_control.ipynb")
    grade_one.grade_submission(submission, 10)
    assert submission.result.points == 0
    assert "the grader failed (BlockingIOError" in submission.result.tests[0].message


def test_a_new_run_empties_the_journal_only_when_its_first_result_comes(tmp_path):
    journal = grade_class.Journal(tmp_path / "journal.jsonl")
    journal.path.write_text('{"path": "from the interrupted run"}\n')
    assert journal.start(resume=False) == {}
    assert "interrupted run" in journal.path.read_text()  # a run that grades nothing keeps it
    journal.add(graded(touch(tmp_path / "ex04.ipynb", 1), 1))
    assert journal.path.read_text().count("\n") == 2 and "interrupted" not in \
        journal.path.read_text()  # the settings and one result


def test_a_resumed_journal_ends_a_cut_line_before_adding(tmp_path):
    journal = grade_class.Journal(tmp_path / "journal.jsonl")
    journal.start(resume=False)
    journal.add(graded(touch(tmp_path / "a" / "ex04.ipynb", 1), 1))
    with open(journal.path, "a") as file:
        file.write('{"path": "cut sh')
    again = grade_class.Journal(journal.path)
    assert len(again.start(resume=True)) == 1
    again.add(graded(touch(tmp_path / "b" / "ex04.ipynb", 2), 1))
    assert len(grade_class.Journal(journal.path).start(resume=True)) == 2  # nothing glued


def test_a_journal_graded_with_other_settings_cannot_be_resumed(tmp_path):
    first = grade_class.Journal(tmp_path / "journal.jsonl", {"test_timeout": 10})
    first.start(resume=False)
    first.add(graded(touch(tmp_path / "ex04.ipynb", 1), 1))
    assert len(grade_class.Journal(first.path, {"test_timeout": 10}).start(resume=True)) == 1
    with pytest.raises(ValueError, match="graded with other settings"):
        grade_class.Journal(first.path, {"test_timeout": 2}).start(resume=True)


@pytest.mark.timeout(120)
def test_resuming_with_other_extra_tests_is_refused(small_class, tmp_path):
    assert grade(str(small_class / "alice"), cwd=tmp_path).returncode == 0
    refused = grade(str(small_class / "alice"), "--resume", "--extra-tests",
                    str(REPO / "tests" / "data" / "extra_tests"), cwd=tmp_path)
    assert refused.returncode == 2 and "cannot resume" in refused.stderr
