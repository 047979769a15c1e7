"""The grader's data types: Test, Exercise, TestResult, Result, and a test's statuses.

An Exercise (a notebook, the names it asks for) has Tests; grading it gives
a Result, one TestResult per test.  See sockserver_lib.grading.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: A test's status; only PASSED earns points (SKIPPED: not counted at all).
PASSED, FAILED, NOT_IMPLEMENTED, ERROR, TIMED_OUT, CRASHED, MISSING, SKIPPED, INVALID = (
    "passed", "failed", "not implemented", "error", "timed out", "crashed",
    "missing", "skipped", "invalid notebook",
)
#: The status of every test of a notebook that changed the grading code.
TAMPERED = "grader changed"

#: What a test is given: each name the exercise asks for -> what the student wrote.
Students = Mapping[str, Any]


@dataclass(frozen=True)
class Test:
    """One graded test: ``run(students)`` raises AssertionError to fail.

    *students* maps the exercise's names (``ThreadingMixIn``, ``handler``...)
    to what the student wrote.  *unavailable* returns why the test cannot run
    on this platform (no fork, no AF_UNIX), or None.
    """

    __test__ = False  # not a pytest test class, despite its name

    name: str
    run: Callable[[Students], None]
    points: int = 1
    unavailable: Callable[[], str | None] = lambda: None


@dataclass(frozen=True)
class Exercise:
    """An exercise: its notebook, the names it asks for, the tests that grade it.

    *names* maps each keyword of ``check(id, keyword=...)`` to the name the
    notebook defines for it (the batch grader looks them up in the
    notebook's namespace).
    """

    id: str
    notebook: str
    title: str
    names: Mapping[str, str]
    tests: tuple[Test, ...]

    @property
    def total(self) -> int:
        return sum(test.points for test in self.tests)

    def check_call(self) -> str:
        """The check() call the exercise notebook ends with."""
        arguments = [f'"{self.id}"'] + [f"{key}={name}" for key, name in self.names.items()]
        call = f"check({', '.join(arguments)})"
        if len(call) <= 88:
            return call
        return "check(\n" + "".join(f"    {argument},\n" for argument in arguments) + ")"


@dataclass
class TestResult:
    """What one test proved: its status, the points earned and why."""

    __test__ = False  # not a pytest test class, despite its name

    name: str
    status: str
    points: int
    max_points: int
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def line(self) -> str:
        """One line for a learner: ``PASS name`` or ``FAIL name: why``."""
        if self.status == PASSED:
            return f"PASS {self.name}"
        if self.status == SKIPPED:
            return f"SKIP {self.name}: {self.message}"
        return f"FAIL {self.name}: {self.message}"


@dataclass
class Result:
    """The outcome of grading one exercise."""

    exercise: str
    tests: list[TestResult] = field(default_factory=list)
    note: str = ""

    @property
    def points(self) -> int:
        return sum(test.points for test in self.tests)

    @property
    def total(self) -> int:
        return sum(test.max_points for test in self.tests)

    def score_line(self) -> str:
        return f"{self.exercise}: {self.points}/{self.total} points"

    def __repr__(self) -> str:
        return f"<Result {self.score_line()}>"

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: check() has printed the report already."""
