"""check() for a notebook and grade() for the batch grader: the grader's front end.

Both run every test of an exercise (from the registry, EXERCISES) with the
engine (run_isolated), and collect the TestResults in a Result; check()
also prints a line per test and the score.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .engine import TEST_TIME_LIMIT, _stopping_at_stubs, run_isolated
from .model import (
    MISSING,
    NOT_IMPLEMENTED,
    PASSED,
    SKIPPED,
    Exercise,
    Result,
    Students,
    Test,
    TestResult,
)
from .registry import EXERCISES

#: Set by the batch grader while it runs a submission's cells: check() calls
#: in the notebook only record their arguments (in BATCH_CALLS), and the
#: grader calls grade() itself with them once all the cells have run.
BATCH_ENVIRONMENT_VARIABLE = "SOCKSERVER_GRADING_BATCH"
BATCH_CALLS: list[tuple[str, dict[str, Any]]] = []


def check(exercise: str, /, *in_order: Any, **students: Any) -> Result | None:
    """Grade *exercise* against your code and print each test's result.

    Pass your classes and functions by the names the exercise asks for, e.g.
    ``check("ex08", ThreadingMixIn=MyThreadingMixIn, CountingHandler=CountingHandler)``,
    or in that order without the names: ``check("ex03", MyTCPServer)``.
    Prints ``PASS name`` or ``FAIL name: ...`` per test, then the score, and
    returns the Result.  Never raises; each test has a time limit.
    """
    spec = EXERCISES.get(exercise)
    if in_order and spec is not None:
        students = {**dict(zip(spec.names, in_order, strict=False)), **students}
        if len(in_order) > len(spec.names):
            print(f"note: {exercise} takes {len(spec.names)} arguments: "
                  f"{', '.join(spec.names)}; the others are ignored")
    if os.environ.get(BATCH_ENVIRONMENT_VARIABLE):
        BATCH_CALLS.append((exercise, dict(students)))
        print(f"check({exercise!r}) skipped: the batch grader grades this notebook itself")
        return None
    try:
        result = grade(exercise, students, time_limit=TEST_TIME_LIMIT, on_result=_print_line())
    except KeyboardInterrupt:
        print("check() interrupted")
        return None
    except Exception as error:  # a bug in the grader must not look like the student's
        print(f"check() could not run: {type(error).__name__}: {error}")
        return None
    if result.note:
        print(result.note)
    print(result.score_line())
    return result


def _print_line() -> Callable[[TestResult], None]:
    """Print each test's line; a "not implemented" seen before is not repeated."""
    seen: set[str] = set()

    def print_line(test: TestResult) -> None:
        line = test.line()
        if test.status == NOT_IMPLEMENTED:
            if test.message in seen:
                line = f"FAIL {test.name}: not implemented yet (as above)"
            seen.add(test.message)
        print(line, flush=True)

    return print_line


def grade(
    exercise: str,
    students: Students,
    *,
    time_limit: float = TEST_TIME_LIMIT,
    on_result: Callable[[TestResult], None] | None = None,
) -> Result:
    """Run every test of *exercise* against *students*; return the Result.

    Each test runs isolated (see grading/engine.py) with *time_limit*
    seconds; *on_result* is called with each TestResult as it is known.
    """
    spec = EXERCISES.get(exercise)
    if spec is None:
        known = ", ".join(EXERCISES)
        return Result(exercise, note=f"unknown exercise {exercise!r}; the exercises are {known}")
    result = Result(exercise, note=_unexpected_names_note(spec, students))
    missing = [keyword for keyword in spec.names if students.get(keyword) is None]
    students = {keyword: _stopping_at_stubs(value) for keyword, value in students.items()}
    for test in spec.tests:
        outcome = _grade_one(test, students, missing, time_limit)
        result.tests.append(outcome)
        if on_result is not None:
            on_result(outcome)
    return result


def _grade_one(test: Test, students: Students, missing: list[str], time_limit: float) -> TestResult:
    reason = test.unavailable()
    if reason is not None:
        return TestResult(test.name, SKIPPED, 0, 0, reason)
    if missing:
        wanted = ", ".join(f"{keyword}=..." for keyword in missing)
        message = f"missing {wanted}: run the cells that define them, and pass them to check()"
        return TestResult(test.name, MISSING, 0, test.points, message)
    status, message = run_isolated(lambda: test.run(students), time_limit)
    points = test.points if status == PASSED else 0
    return TestResult(test.name, status, points, test.points, message)


def _unexpected_names_note(spec: Exercise, students: Students) -> str:
    unexpected = sorted(set(students) - set(spec.names))
    if not unexpected:
        return ""
    return (
        f"note: {spec.id} does not use {', '.join(unexpected)}; "
        f"it takes {', '.join(spec.names) or 'nothing'}"
    )
