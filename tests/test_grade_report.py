"""The batch grader's report formats (sockserver_lib.grade_report), on made-up results."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from sockserver_lib import grade_report
from sockserver_lib.grade import Submission
from sockserver_lib.grading import EXERCISES, Result, TestResult


def graded(path: str, exercise: str, passed: int, notes=()) -> Submission:
    """A submission of *exercise* that passed its first *passed* tests."""
    tests = [TestResult(test.name, "passed" if n < passed else "failed",
                        test.points if n < passed else 0, test.points,
                        "" if n < passed else f"why {test.name} failed")
             for n, test in enumerate(EXERCISES[exercise].tests)]
    submission = Submission(Path(path), exercise, notes=list(notes))
    submission.result = Result(exercise, tests)
    return submission


def test_a_student_is_the_folder_below_the_root_or_the_file_itself(tmp_path):
    root = tmp_path / "class"
    assert grade_report.student_of(root / "alice" / "ex04.ipynb", [root]) == "alice"
    assert grade_report.student_of(root / "alice" / "deep" / "ex04.ipynb", [root]) == "alice"
    assert grade_report.student_of(root / "bob_ex04.ipynb", [root]) == "bob_ex04.ipynb"
    not_utf8 = root / os.fsdecode(b"caf\xe9") / "ex04.ipynb"
    assert grade_report.student_of(not_utf8, [root]) == "caf\\xe9"


def test_students_whose_names_differ_only_in_bytes_that_are_not_utf8_get_a_row_each(tmp_path):
    root = tmp_path / "class"
    latin1, cp850 = (root / os.fsdecode(name) for name in (b"caf\xe9", b"caf\x82"))
    submissions = [graded(latin1 / "ex04.ipynb", "ex04", 12), graded(cp850 / "ex04.ipynb", "ex04", 3)]
    rows = grade_report.gradebook_rows(submissions, [root])
    assert [(row["student"], row["ex04"]) for row in rows] == [("caf\\xe9", 12), ("caf\\x82", 3)]


def test_the_gradebook_has_a_row_per_student_a_column_per_exercise_and_a_total(tmp_path):
    root = tmp_path / "class"
    submissions = [graded(root / "alice" / "ex04.ipynb", "ex04", 12),
                   graded(root / "alice" / "ex08.ipynb", "ex08", 5),
                   graded(root / "bob" / "ex04.ipynb", "ex04", 3)]
    out = tmp_path / "gradebook.csv"
    grade_report.write_gradebook(out, submissions, [root])
    with open(out, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["student", *EXERCISES, "total", "max"]
    alice, bob = rows
    assert (alice["student"], alice["ex04"], alice["ex08"], alice["ex01"]) == (
        "alice", "12", "5", "")
    assert (alice["total"], bob["total"], bob["max"]) == ("17", "3", str(
        sum(spec.total for spec in EXERCISES.values())))


def test_feedback_says_each_exercises_points_and_why_each_failed_test_failed(tmp_path):
    root = tmp_path / "class"
    submissions = [graded(root / "alice" / "ex10.ipynb", "ex10", 4, ["cell 3 raised"])]
    (written,) = grade_report.write_feedback(tmp_path / "feedback", submissions, [root])
    text = written.read_text(encoding="utf-8")
    last = EXERCISES["ex10"].tests[-1].name
    assert written.name == "alice.txt"
    assert "ex10 (ex10.ipynb): 4/5 points" in text and "note: cell 3 raised" in text
    assert f"FAILED {last}: why {last} failed" in text
    assert "PASSED" not in text  # only what needs work


def test_gradescope_results_have_a_test_per_graded_test_and_the_total():
    results = grade_report.gradescope_results([graded("ex10.ipynb", "ex10", 2, ["a note"])])
    assert results["score"] == 2 and len(results["tests"]) == len(EXERCISES["ex10"].tests)
    first = results["tests"][0]
    assert first == {"name": f"ex10: {EXERCISES['ex10'].tests[0].name}", "score": 1,
                     "max_score": 1, "output": "passed", "visibility": "visible"}
    assert "ex10.ipynb: a note" in results["output"]


def test_two_students_whose_names_map_to_one_file_name_get_two_feedback_files(tmp_path):
    root = tmp_path / "class"
    submissions = [graded(root / "ana lee" / "ex10.ipynb", "ex10", 5),
                   graded(root / "ana_lee" / "ex10.ipynb", "ex10", 1)]
    written = grade_report.write_feedback(tmp_path / "feedback", submissions, [root])
    assert [path.name for path in written] == ["ana_lee.txt", "ana_lee-again.txt"]
    assert "Feedback for ana lee" in written[0].read_text()
