"""Grade a class's submissions: ``python -m sockserver_lib.grade PATH...``.

Each PATH is an exercise notebook or a folder searched for them.  Every
submission runs in a process of its own, in a session of its own, with a
time limit (``--timeout``): its code cells run in order (a cell that raises
is noted and the next cells still run, as with "Run all" and errors
allowed), then the exercise's tests run against the names the notebook
defined, each with a time limit of its own (``--test-timeout``).  A
submission that hangs or kills its process is stopped (the whole process
group), keeps the points it proved before, and scores 0 with the reason for
the rest; an invalid notebook scores 0 with the reason.  The others are
graded all the same.

So that one submission cannot stall or break a class's run: where the
platform has them (Linux, macOS), the submission's process and everything
it starts get a memory limit (``--memory-limit``, the address space: an
allocation beyond it raises MemoryError in the cell or test) and a limit on
the size of any file written (``--file-size-limit``: a write beyond it
fails); the submission runs in a temporary folder that is also its TMPDIR,
removed afterwards with every file and Unix socket the submission left;
and when it ends, for whatever reason, its whole session is killed (its
process group, servers it forked, and the process groups its tests ran in).
(A process that leaves the session on purpose, with setsid(), escapes:
grade untrusted code in a container.)

Submissions are graded ``--jobs`` at a time, each result journaled as it
comes (``--journal``, ``--resume``; see sockserver_lib.grade_class, which
also decides which files are graded).  A cell still running after
``--cell-timeout`` seconds is stopped, and the next cells run.

The exercise is read from the notebook's metadata (``sockserver.exercise``,
set by tools/make_exercises.py), else from the file name (``ex04_...``).
Prints a table (submission, exercise, test, points, result), optionally
writes it as CSV (``--csv FILE``), and ends with ``total: P/T points``.
IPython syntax (``%magic``, ``!command``) is not run: such lines are
skipped and noted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from . import grade_class, grade_report, grading
from .grade_one import (  # noqa: F401 (Submission and the defaults: the command's API)
    DEFAULT_FILE_SIZE_LIMIT_MB,
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_TIMEOUT,
    Limits,
    Submission,
    _declared_exercise,
    _named_exercise,
    grade_submission,
    identify_exercise,
    stop_all_workers,
)
from .grade_report import COLUMNS, print_table, printable, table_rows, write_csv  # noqa: F401
from .grade_worker import DEFAULT_CELL_TIMEOUT, limit_resources  # noqa: F401

# --------------------------------------------------------------------------
# The command line


def main(argv: list[str] | None = None) -> int:
    options = _parse(argv)
    if options.extra_tests:
        try:
            added = grading.load_extra_tests(options.extra_tests)
        except Exception as error:  # noqa: BLE001 -- the instructor's module: say what failed
            print(f"--extra-tests {options.extra_tests}: {error}", file=sys.stderr)
            return 2
        print(f"extra tests: {added}", file=sys.stderr)
    submissions = [Submission(path) for path in find_notebooks(options.paths)]
    if not submissions:
        print("no notebooks found in " + " ".join(options.paths), file=sys.stderr)
        if options.gradescope:  # the student sees why their score is 0
            grade_report.write_gradescope(options.gradescope, [],
                                          note="no notebook (.ipynb) was found in the submission")
        return 2
    limits = Limits(test_timeout=options.test_timeout, cell_timeout=options.cell_timeout,
                    memory_mb=options.memory_limit, file_size_mb=options.file_size_limit)
    roots = [Path(path) for path in options.paths if Path(path).is_dir()]
    try:
        _grade_all(submissions, options, limits, roots)
    except ValueError as error:  # a journal graded with other settings
        print(f"cannot resume: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: every worker was stopped; the finished results are in "
              f"{options.journal}: run again with --resume to grade the rest", file=sys.stderr)
        return 130
    _report(submissions, options.csv)
    _write_reports(submissions, options, roots)
    graded = [s for s in submissions if s.result is not None]  # not the older duplicates
    if options.require_all and not (graded and all(s.result.points == s.result.total > 0
                                                   for s in graded)):
        return 1
    return 0


def _grade_all(submissions: list, options: argparse.Namespace, limits: Limits,
               roots: list) -> None:
    """Grade what grade_class.choose() keeps, in parallel, journaling each result."""
    settings = {**vars(limits), "timeout": options.timeout,
                "extra_tests": str(Path(options.extra_tests).resolve()) if options.extra_tests
                else None}
    journal = grade_class.Journal(options.journal, settings)
    recorded = journal.start(options.resume)
    # Gradescope's submission folder is one student's: keep only the newest of an exercise
    chosen = grade_class.choose(submissions, _exercise_names, [] if options.gradescope else roots)
    todo = [s for s in chosen if not grade_class.restore(s, recorded.get(str(s.path)))]
    if len(todo) < len(chosen):
        print(f"resumed: {len(chosen) - len(todo)} result(s) taken from {options.journal}",
              file=sys.stderr)
    counted = iter(range(1, len(todo) + 1))

    def done(submission: Submission) -> None:
        journal.add(submission)
        result = submission.result
        print(f"[{next(counted)}/{len(todo)}] {printable(submission.path)}: "
              f"{result.points}/{result.total} points", file=sys.stderr, flush=True)

    grade_class.grade_class(
        todo, lambda s: grade_submission(s, options.timeout, limits, options.extra_tests),
        options.jobs, done, stop_all_workers)


def _exercise_names(path: Path) -> tuple:
    """(the exercise its metadata names, the exercise its file name names), either None."""
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        notebook = {}
    return _declared_exercise(notebook), _named_exercise(path)


def _write_reports(submissions: list, options: argparse.Namespace, roots: list) -> None:
    """The files asked for: the gradebook, the feedback, Gradescope's results.json."""
    if options.gradebook:
        grade_report.write_gradebook(options.gradebook, submissions, roots)
    if options.feedback:
        written = grade_report.write_feedback(options.feedback, submissions, roots)
        print(f"wrote feedback for {len(written)} student(s) in {options.feedback}")
    if options.gradescope:
        grade_report.write_gradescope(options.gradescope, submissions)


def _report(submissions: list, csv_path: str | None) -> None:
    """The notes, the table, the CSV if asked, and the total."""
    rows = list(table_rows(submissions))
    for submission in submissions:
        for note in submission.notes:
            print(f"note: {printable(submission.path)}: {note}")
    print_table(rows)
    if csv_path:
        write_csv(csv_path, rows)
    points = sum(s.result.points for s in submissions if s.result)
    total = sum(s.result.total for s in submissions if s.result)
    print(f"total: {points}/{total} points")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sockserver_lib.grade",
        description="Grade exercise notebooks, each in its own process with a time limit.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a notebook, or a folder searched for *.ipynb")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV to FILE")
    parser.add_argument("--gradebook", metavar="FILE",
                        help="also write a gradebook CSV: a row per student (their folder), a "
                             "column per exercise, a total")
    parser.add_argument("--feedback", metavar="FOLDER",
                        help="also write a feedback file per student: points, and each test "
                             "that did not pass with its message")
    parser.add_argument("--gradescope", metavar="FILE",
                        help="also write Gradescope's results.json for what was graded (one "
                             "student's submission; see python -m sockserver_lib.gradescope)")
    parser.add_argument("--require-all", action="store_true",
                        help="exit with status 1 unless every notebook earned all its points "
                             "(for CI and GitHub Classroom, which award points to a command "
                             "that succeeds)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit per submission (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--test-timeout", type=float, default=grading.TEST_TIME_LIMIT,
                        metavar="SECONDS",
                        help=f"time limit per test (default {grading.TEST_TIME_LIMIT:g})")
    parser.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                        metavar="SECONDS",
                        help="time limit per code cell: a cell still running then is stopped, "
                             "noted, and the next cells run; 0: none (default "
                             f"{DEFAULT_CELL_TIMEOUT:g})")
    parser.add_argument("--memory-limit", type=int, default=DEFAULT_MEMORY_LIMIT_MB,
                        metavar="MB",
                        help="address space per submission, in megabytes, where the "
                             f"platform has such a limit; 0: none (default "
                             f"{DEFAULT_MEMORY_LIMIT_MB})")
    parser.add_argument("--file-size-limit", type=int, default=DEFAULT_FILE_SIZE_LIMIT_MB,
                        metavar="MB",
                        help="largest file a submission may write, in megabytes; 0: none "
                             f"(default {DEFAULT_FILE_SIZE_LIMIT_MB})")
    parser.add_argument("--jobs", type=int, default=grade_class.default_jobs(), metavar="N",
                        help="grade N submissions at once (default: the usable cores, "
                             f"{grade_class.default_jobs()} here)")
    parser.add_argument("--journal", default=grade_class.DEFAULT_JOURNAL, metavar="FILE",
                        help="append each finished result to FILE as it comes, so that an "
                             "interrupted run loses nothing (default: "
                             f"{grade_class.DEFAULT_JOURNAL} in the current folder)")
    parser.add_argument("--resume", action="store_true",
                        help="take the results of files unchanged since --journal recorded "
                             "them instead of grading them again")
    parser.add_argument("--extra-tests", metavar="FOLDER",
                        help="also grade with the instructor-only tests of every *.py in FOLDER "
                             "(each defines EXTRA_TESTS; see tests/data/extra_tests)")
    return parser.parse_args(argv)


def find_notebooks(paths: Iterable[str]) -> Iterator[Path]:
    """Every notebook named by *paths*, folders searched recursively, in order."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(
                found for found in path.rglob("*.ipynb")
                if ".ipynb_checkpoints" not in found.parts
            )
        else:
            yield path


if __name__ == "__main__":
    sys.exit(main())
