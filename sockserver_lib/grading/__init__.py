"""Grade the exercises: ``check()`` for a notebook, and the exercise registry.

In an exercise notebook::

    from sockserver_lib.grading import check
    check("ex08", ThreadingMixIn=MyThreadingMixIn, CountingHandler=CountingHandler)

runs the tests of exercise ex08 against your classes and prints one line per
test (``PASS name`` or ``FAIL name: what was expected, what happened, a
hint``) and the score.  The tests are the contract checks of
``sockserver_lib.contract`` that the reference library passes, run with your
classes put in place of the library's (``contract.implementation(...)``),
plus a few checks specific to an exercise (the echo server by hand, the
shared counter, the allow-list...).

check() never raises and never hangs the notebook: each test runs isolated,
in a child process with a time limit (see grading/engine.py).

The batch grader (``python -m sockserver_lib.grade``) uses the same
registry (``EXERCISES``) and ``grade()``.

The package, one layer per module:

- model.py     the data types: Test, Exercise, TestResult, Result; the statuses
- engine.py    running one test isolated, with a time limit (run_isolated, run_in_child)
- frontend.py  check() for a notebook, grade() for the batch grader
- helpers.py   what the exercises' tests share: _expect, _talking, clients, handlers
- exNN.py      the tests specific to exercise NN (ex01, ex03 ... ex11, ex14, ex15, ex16)
- registry.py  every exercise and its tests (EXERCISES), add_tests(), load_extra_tests()
"""

from .engine import TEST_TIME_LIMIT, run_in_child, run_isolated, stop_running_test
from .ex08 import RACE_WINDOW
from .ex11 import EX11_CLIENTS, EX11_FLOOD_LINES, EX11_SMALL_BUFFER, NO_REPLY_YET
from .frontend import BATCH_CALLS, BATCH_ENVIRONMENT_VARIABLE, check, grade
from .helpers import STOP_TIME
from .model import (
    CRASHED,
    ERROR,
    FAILED,
    INVALID,
    MISSING,
    NOT_IMPLEMENTED,
    PASSED,
    SKIPPED,
    TAMPERED,
    TIMED_OUT,
    Exercise,
    Result,
    Students,
    Test,
    TestResult,
)
from .registry import EXERCISES, add_tests, load_extra_tests

__all__ = [
    "check", "grade", "run_isolated", "run_in_child", "stop_running_test",
    "Test", "Exercise", "TestResult", "Result", "Students",
    "EXERCISES", "add_tests", "load_extra_tests",
    "TEST_TIME_LIMIT", "BATCH_ENVIRONMENT_VARIABLE", "BATCH_CALLS",
    "PASSED", "FAILED", "NOT_IMPLEMENTED", "ERROR", "TIMED_OUT", "CRASHED", "MISSING",
    "SKIPPED", "INVALID", "TAMPERED",
    "STOP_TIME", "RACE_WINDOW", "NO_REPLY_YET", "EX11_CLIENTS", "EX11_FLOOD_LINES",
    "EX11_SMALL_BUFFER",
]
