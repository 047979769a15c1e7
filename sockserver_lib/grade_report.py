"""The batch grader's reports: the table, the CSV, a gradebook, feedback, Gradescope's JSON.

Every function takes the graded Submissions (sockserver_lib.grade) and
writes or returns one format:

- table_rows(), print_table(), write_csv(): one row per test of each
  submission (the table printed at the end of a run, and ``--csv``);
- gradebook_rows(), write_gradebook(): one row per student, one column per
  exercise, and a total (``--gradebook``), as spreadsheets and learning
  platforms import;
- write_feedback(): a text file per student: each exercise's points, and
  each test that did not pass with its message (``--feedback``);
- gradescope_results(): Gradescope's results.json for one student's
  submission (``--gradescope``; see sockserver_lib.gradescope).

A student is the folder below the one named on the command line that holds
the notebook (submissions/alice/ex04.ipynb: alice), or the notebook's own
name for a notebook directly in it.  Any file name is written safely, even
one that is not UTF-8 (printable()).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .grading import ERROR, EXERCISES, PASSED, TestResult

COLUMNS = ("submission", "exercise", "test", "status", "points", "max_points", "message")


def table_rows(submissions: Iterable) -> Iterator[dict]:
    """One row per test of each submission."""
    for submission in submissions:
        result = submission.result
        if result is None:
            continue
        if not result.tests:
            yield _row(submission, TestResult("(none)", ERROR, 0, 0, result.note))
        for test in result.tests:
            yield _row(submission, test)


def printable(path: Path) -> str:
    """*path* as text that can be printed and written as UTF-8 whatever its bytes
    (a name from a Windows archive is often not UTF-8): an undecodable byte is
    written as its escape, ``\\xe9``, so two names that differ only there stay apart."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _row(submission, test: TestResult) -> dict:
    return {
        "submission": printable(submission.path), "exercise": submission.result.exercise,
        "test": test.name, "status": test.status, "points": test.points,
        "max_points": test.max_points, "message": test.message,
    }


def print_table(rows: list[dict]) -> None:
    """Print *rows* as aligned columns, messages cut to one short line."""
    shown = [
        (row["submission"], row["exercise"], row["test"], f"{row['points']}/{row['max_points']}",
         row["status"] + (": " + _shorten(row["message"]) if row["message"] else ""))
        for row in rows
    ]
    header = ("submission", "exercise", "test", "points", "result")
    widths = [max(len(line[i]) for line in [header, *shown]) for i in range(4)]
    for line in [header, *shown]:
        columns = [cell.ljust(width) for cell, width in zip(line[:4], widths, strict=True)]
        print("  ".join([*columns, line[4]]))


def _shorten(message: str, width: int = 100) -> str:
    line = " ".join(message.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)




# --------------------------------------------------------------------------
# Per student


def student_of(path: Path, roots: Iterable[Path]) -> str:
    """Who handed *path* in: its folder below one of *roots*, else its own name."""
    resolved = path.resolve()
    for root in roots:
        try:
            relative = resolved.relative_to(Path(root).resolve())
        except ValueError:
            continue
        return printable(Path(relative.parts[0])) if len(relative.parts) > 1 else printable(
            Path(path.name))
    return printable(path.parent) if path.parent.name else printable(Path(path.name))


def by_student(submissions: Iterable, roots: Iterable[Path]) -> dict:
    """{student: [their graded submissions]}, students in order of first appearance."""
    students: dict = {}
    for submission in submissions:
        if submission.result is not None and submission.result.exercise in EXERCISES:
            students.setdefault(student_of(submission.path, roots), []).append(submission)
    return students


def gradebook_rows(submissions: Iterable, roots: Iterable[Path]) -> list[dict]:
    """One row per student: ``student``, one column per exercise (points, blank if not
    handed in), ``total`` and ``max`` (the points of every exercise)."""
    most = sum(spec.total for spec in EXERCISES.values())
    rows = []
    for student, graded in by_student(submissions, roots).items():
        row = {"student": student, **{exercise: "" for exercise in EXERCISES}}
        for submission in graded:
            row[submission.result.exercise] = submission.result.points
        row["total"] = sum(s.result.points for s in graded)
        row["max"] = most
        rows.append(row)
    return rows


def write_gradebook(path: str, submissions: Iterable, roots: Iterable[Path]) -> None:
    columns = ["student", *EXERCISES, "total", "max"]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(gradebook_rows(submissions, roots))


def feedback_text(student: str, graded: list) -> str:
    """A student's feedback: per exercise, the points and what did not pass, and why."""
    lines = [f"Feedback for {student}", ""]
    for submission in graded:
        result = submission.result
        lines.append(f"{result.exercise} ({printable(Path(submission.path.name))}): "
                     f"{result.points}/{result.total} points")
        lines += [f"  note: {note}" for note in submission.notes]
        for test in result.tests:
            if test.status != PASSED:
                lines.append(f"  {test.status.upper()} {test.name}: {test.message}")
        lines.append("")
    return "\n".join(lines)


def write_feedback(folder: str, submissions: Iterable, roots: Iterable[Path]) -> list[Path]:
    """One ``<student>.txt`` per student in *folder*; returns the files written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for student, graded in by_student(submissions, roots).items():
        path = out / (_safe_file_name(student) + ".txt")
        while path in written:  # two names that differ only in characters left out
            path = path.with_name(path.stem + "-again.txt")
        path.write_text(feedback_text(student, graded), encoding="utf-8")
        written.append(path)
    return written


def _safe_file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "student"


# --------------------------------------------------------------------------
# Gradescope


def gradescope_results(submissions: Iterable, note: str = "") -> dict:
    """Gradescope's results.json for one student's submission: a test per graded test.

    Each test is named ``exNN: test``, with its score, max_score and the
    message as output, visible to the student; notes go to the top-level
    output.  A notebook that could not be graded adds its note there too.
    """
    tests, notes = [], [note] if note else []
    for submission in submissions:
        name = printable(Path(submission.path.name))
        notes += [f"{name}: {note}" for note in submission.notes]
        result = submission.result
        if result is None:
            continue
        if not result.tests and result.note:
            notes.append(f"{name}: {result.note}")
        for test in result.tests:
            tests.append({"name": f"{result.exercise}: {test.name}", "score": test.points,
                          "max_score": test.max_points, "output": test.message or test.status,
                          "visibility": "visible"})
    return {"score": sum(test["score"] for test in tests), "tests": tests,
            "output": "\n".join(notes) or "graded by sockserver_lib.grade",
            "visibility": "visible", "stdout_visibility": "hidden"}


def write_gradescope(path: str, submissions: Iterable, note: str = "") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(gradescope_results(submissions, note), file, indent=1)
