"""Grade one submission in a process of its own, and read back what it proved.

sockserver_lib.grade (the command line) calls grade_submission() for each
notebook, from several threads at once.  Each call starts one worker
(``python -m sockserver_lib.grade_worker``) in a session of its own, in a
temporary folder that is also its TMPDIR, with the limits of ``Limits``;
waits for it up to the whole-submission time limit; kills its whole session
when it ends, for whatever reason; and turns the events the worker wrote
(cells run, tests passed, the test running when it stopped) into a Result.
Only the events of the grader's own worker count: a notebook that forks
cannot report twice.  stop_all_workers() stops every running worker (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import grading
from .grade_worker import DEFAULT_CELL_TIMEOUT
from .grading import EXERCISES, Result, TestResult

#: Seconds a whole submission may take (its cells and its tests).
DEFAULT_TIMEOUT = 120.0
#: Seconds a worker asked to stop (SIGTERM) gets to stop its running test.
STOP_GRACE = 2.0
#: Megabytes of address space a submission may use (0: no limit); generous,
#: because every thread reserves its stack.
DEFAULT_MEMORY_LIMIT_MB = 2048
#: Megabytes any one file written by a submission may grow to (0: no limit).
DEFAULT_FILE_SIZE_LIMIT_MB = 64
_EXERCISE_IN_NAME = re.compile(r"(ex\d\d)")
_KIT_PARENT = Path(__file__).resolve().parent.parent


@dataclass
class Submission:
    """One notebook to grade and what became of it."""

    path: Path
    exercise: str | None = None
    result: Result | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds per test and per cell, megabytes of memory and
    per file."""

    test_timeout: float = grading.TEST_TIME_LIMIT
    cell_timeout: float = DEFAULT_CELL_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_LIMIT_MB
    file_size_mb: int = DEFAULT_FILE_SIZE_LIMIT_MB


def grade_submission(submission: Submission, timeout: float, limits: Limits = Limits(),
                     extra_tests: str | None = None) -> None:
    """Fill in *submission*'s exercise and result; never raises.

    *extra_tests*: the folder of instructor-only tests (load_extra_tests()),
    which the worker loads too.  An error of the grader's own (say, no process
    could be started) scores the submission 0 with the error, so the class
    run goes on.
    """
    try:
        _grade(submission, timeout, limits, extra_tests)
    except Exception as error:  # noqa: BLE001 -- one submission never stops the class
        reason = f"not graded: the grader failed ({type(error).__name__}: {error})"
        exercise = submission.exercise if submission.exercise in EXERCISES else None
        submission.result = (_zero(exercise, [], grading.ERROR, reason) if exercise
                             else Result(submission.exercise or "?", note=reason))


def _grade(submission: Submission, timeout: float, limits: Limits,
           extra_tests: str | None) -> None:
    try:
        notebook = json.loads(submission.path.read_text(encoding="utf-8"))
        problem = _invalid_notebook(notebook)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        notebook, problem = {}, f"not a valid notebook ({type(error).__name__}: {error})"
    submission.exercise = identify_exercise(notebook, submission.path)
    if submission.exercise not in EXERCISES:
        reason = problem or (
            "cannot tell which exercise this is: no sockserver.exercise in its "
            "metadata and no exNN in its file name"
        )
        submission.result = Result(submission.exercise or "?", note=reason)
        submission.notes.append(reason)
        return
    if problem:
        submission.result = _zero(submission.exercise, [], grading.INVALID, problem)
        return
    events = _run_worker(submission, timeout, limits, extra_tests)
    submission.result = _result_from(submission, events)


def identify_exercise(notebook: dict, path: Path) -> str | None:
    """The exercise id from the notebook's metadata, else from its file name."""
    return _declared_exercise(notebook) or _named_exercise(path)


def _declared_exercise(notebook: object) -> str | None:
    """The exercise id the notebook's metadata gives (``sockserver.exercise``), or None."""
    metadata = notebook.get("metadata") if isinstance(notebook, dict) else None
    declared = (metadata if isinstance(metadata, dict) else {}).get("sockserver", {})
    if isinstance(declared, dict) and declared.get("exercise") in EXERCISES:
        return declared["exercise"]
    return None


def _named_exercise(path: Path) -> str | None:
    """The ``exNN`` in the file's name, or None."""
    match = _EXERCISE_IN_NAME.search(path.name)
    return match.group(1) if match else None


def _invalid_notebook(notebook: object) -> str | None:
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        return "not a valid notebook (no list of cells)"
    if notebook.get("nbformat") != 4:
        return f"not a valid notebook (nbformat {notebook.get('nbformat')!r}, expected 4)"
    for cell in notebook["cells"]:
        if not isinstance(cell, dict) or not isinstance(cell.get("source"), (str, list)):
            return "not a valid notebook (a cell without source)"
    return None


def _run_worker(submission: Submission, timeout: float, limits: Limits,
                extra_tests: str | None = None) -> list[dict]:
    """Run the worker on *submission*; return the events its own process reported.

    The worker runs in a folder of its own, also its TMPDIR, removed
    afterwards with all it holds once every process of the submission has
    been stopped.  The grader's bookkeeping (the events, the output) is in
    another folder, and the grader reads the events through a handle it
    opened before the worker started: a submission that deletes files
    loses nothing of the grader's.  Events from any other process (one the
    submission forked) are left out, with a note.
    """
    with tempfile.TemporaryDirectory(prefix="sk-grade-", ignore_cleanup_errors=True) as folder, \
            tempfile.TemporaryDirectory(prefix="sk-books-", ignore_cleanup_errors=True) as books:
        progress = Path(books) / "progress.jsonl"
        progress.touch()
        scratch = Path(folder) / "tmp"
        scratch.mkdir()
        command = [
            sys.executable, "-m", "sockserver_lib.grade_worker", str(submission.path.resolve()),
            "--progress", str(progress), "--exercise", submission.exercise,
            "--test-timeout", str(limits.test_timeout),
            "--cell-timeout", str(limits.cell_timeout),
            "--memory-limit", str(limits.memory_mb),
            "--file-size-limit", str(limits.file_size_mb),
            *(["--extra-tests", str(Path(extra_tests).resolve())] if extra_tests else []),
        ]
        environment = {
            **os.environ, grading.BATCH_ENVIRONMENT_VARIABLE: "1",
            # the worker runs in a temporary folder: let it import this kit
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(_KIT_PARENT), os.environ.get("PYTHONPATH")])
            ),
            # temporary files and Unix sockets go where they are cleaned up
            "TMPDIR": str(scratch), "TEMP": str(scratch), "TMP": str(scratch),
        }
        with open(Path(books) / "output.txt", "wb") as output, open(progress, "rb") as events:
            process = subprocess.Popen(
                command, cwd=folder, env=environment, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
            with _RUNNING_LOCK:
                _RUNNING.add(process)
                stopping = _STOPPING.is_set()
            try:  # one started just as the run was interrupted is stopped at once
                ending = {"interrupted": True} if stopping else _wait(process, timeout)
            finally:
                _stop(process)
                with _RUNNING_LOCK:
                    _RUNNING.discard(process)
            mine, others = _events_of(process.pid, events.read())
        if others:
            submission.notes.append(
                f"results reported by {len(others)} other process(es) were ignored: the "
                "notebook forked, and only the grader's own worker is counted")
        return [*mine, ending]


def _wait(process: subprocess.Popen, timeout: float) -> dict:
    """How the worker ended: ``{"exit": code}``, or ``{"timeout": seconds}``."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    return {"exit": process.returncode}


#: The workers running now (several when submissions are graded in parallel).
_RUNNING: set = set()
_RUNNING_LOCK = threading.Lock()
#: Set by stop_all_workers(): a worker started after it is stopped at once.
_STOPPING = threading.Event()


def stop_all_workers() -> None:
    """Stop every running worker and all it started (on Ctrl-C: they are in sessions of
    their own, which the terminal's Ctrl-C does not reach)."""
    with _RUNNING_LOCK:
        _STOPPING.set()
        running = list(_RUNNING)
    for process in running:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the worker and everything the submission started; reap the worker.

    The worker leads its own process group (its session, in fact), which
    holds whatever the submission's cells started; a test runs in a group
    of its own, which the worker kills when asked to stop (SIGTERM).
    """
    if not hasattr(os, "killpg"):  # Windows: no process groups to signal
        process.kill()
        process.wait()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for member in _session_members(process.pid):  # tests run in process groups of their own
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
    process.wait()


def _session_members(session: int) -> list[int]:
    """The pids in *session* (the worker's, which holds every group it made); [] without
    /proc.  A process that left the session with setsid() escapes: grade untrusted code
    in a container."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc/self") else ():
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session:  # state, ppid, pgrp, session
                    found.append(int(entry))
    return found


def _events_of(worker: int, text: bytes) -> tuple[list[dict], set[int]]:
    """(the events the *worker* process reported, the pids of other reporters).

    A line that is not a JSON object (cut short by a kill, or garbage) is skipped.
    """
    mine, others = [], set()
    for line in text.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line)
            if not _well_formed(event):
                continue
            if event.get("pid") == worker:
                mine.append(_printable_strings(event))
            else:
                others.add(event.get("pid"))
    return mine, others


#: What each kind of event must hold (the worker's lines may be forged or cut).
_EVENT_FIELDS = {"cell": {"cell": int, "line": str}, "cell_error": {"cell_error": str},
                 "grading": {"grading": str}, "test": {"test": dict},
                 "tampered": {"tampered": str}, "done": {"done": bool}}


def _well_formed(event: object) -> bool:
    """True if *event* is a dict whose kind's fields have the right types."""
    if not isinstance(event, dict):
        return False
    kind = next((kind for kind in _EVENT_FIELDS if kind in event), None)
    return kind is not None and all(isinstance(event.get(name), kind_of)
                                    for name, kind_of in _EVENT_FIELDS[kind].items())


def _printable_strings(value):
    """*value* with every string made writable as UTF-8 (lone surrogates replaced)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {key: _printable_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable_strings(item) for item in value]
    return value


def _result_from(submission: Submission, events: list[dict]) -> Result:
    """Build the Result from the worker's events; unproven tests score 0."""
    tests: list[TestResult] = []
    running_cell = None
    finished = False
    for event in events:
        if "cell" in event:
            running_cell = event
        elif "cell_error" in event:
            submission.notes.append(str(event["cell_error"]))
        elif "grading" in event:
            running_cell = {}
        elif "test" in event:
            tests.extend(_registered(submission.exercise, event["test"], tests))
        elif "tampered" in event:
            return _zero(submission.exercise, [], grading.TAMPERED,
                         f"not graded: the notebook changed the grader ({event['tampered']})")
        elif "done" in event:
            finished = True
            if event.get("note"):
                submission.notes.append(str(event["note"]))
    if finished:
        return _zero(submission.exercise, tests, grading.MISSING,
                     "no result was reported for this test")
    status, reason = _why_unfinished(events[-1], running_cell, tests)
    return _zero(submission.exercise, tests, status, reason)


def _registered(exercise: str, reported: object, so_far: list) -> list[TestResult]:
    """*reported* as a TestResult of *exercise*, with the grader's own points; [] if it is
    not one of the exercise's tests, is reported twice or is malformed."""
    tests = {test.name: test for test in EXERCISES[exercise].tests}
    if not isinstance(reported, dict) or not isinstance(reported.get("name"), str) \
            or reported["name"] not in tests:
        return []
    if any(done.name == reported["name"] for done in so_far):
        return []
    test = tests[reported["name"]]
    status = str(reported.get("status"))
    earned = test.points if status == grading.PASSED else 0
    counted = 0 if status == grading.SKIPPED else test.points  # a skipped test counts for nothing
    return [TestResult(test.name, status, earned, counted, str(reported.get("message", "")))]


def _why_unfinished(ending: dict, running_cell: dict | None, tests: list) -> tuple[str, str]:
    """(status, reason) for a worker that stopped before reporting it was done.

    *running_cell* is the cell last started, {} once the tests had started,
    None if nothing had started.
    """
    if "timeout" in ending:
        status = grading.TIMED_OUT
        what = f"did not finish within {ending['timeout']:g} s and was stopped"
    elif "interrupted" in ending:
        status = grading.CRASHED
        what = "was stopped: the grading run was interrupted"
    else:
        status = grading.CRASHED
        what = f"ended (exit code {ending['exit']}) before grading finished"
    if running_cell is None:
        where = "before running its cells"
    elif running_cell:
        where = f"while running cell {running_cell['cell']}: {running_cell['line']}"
    else:
        where = f"during its tests, {len(tests)} of which had finished"
    return status, f"not graded: the notebook's process {what} ({where})"


def _zero(exercise: str, proven: list[TestResult], status: str, reason: str) -> Result:
    """*proven* as they are, every other test of *exercise* 0 with *status* and *reason*."""
    done = {test.name for test in proven}
    rest = [
        TestResult(test.name, status, 0, test.points, reason)
        for test in EXERCISES[exercise].tests if test.name not in done
    ]
    return Result(exercise, [*proven, *rest])
