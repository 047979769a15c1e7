"""Running one test, isolated and with a time limit: the grader's engine.

check() never raises and never hangs the notebook.  Each test runs in a
child process forked from the notebook's kernel (from the thread running
the cell), in a process group of its own: when the test ends or runs out of
time (``TEST_TIME_LIMIT``) the whole group is killed, so every server,
thread and process the test started is gone too, and nothing it did can
change the kernel.  Why a process and not a thread: a thread stuck in your
code cannot be stopped, a process can.  The child starts with that one
thread; a forking server under test then forks from its serve_forever()
thread inside this short-lived child, never from the kernel, whose other
threads (and the locks they hold) a fork would copy.  What the tests print
(handle_error() tracebacks, your own prints) is captured in the child, not
shown.  Where there is no fork() (Windows), tests run in a thread with the
same time limit; a thread that times out is left running in the background.

A test that meets one of your ``raise NotImplementedError(...)`` stubs, even
in a server's thread or process, ends at once as "not implemented yet"
(with the stub's hint) instead of waiting for a reply until a timeout.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import os
import select
import shutil
import signal
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
import types
import warnings
from collections.abc import Callable
from typing import Any

import sockserver_lib

from .model import CRASHED, ERROR, FAILED, NOT_IMPLEMENTED, PASSED, TIMED_OUT

#: Seconds one test may take before it is stopped and scored 0.
TEST_TIME_LIMIT = 10.0

#: Code in these folders is the kit's, Python's or an installed package's;
#: code anywhere else (a notebook cell, a test file) is the student's.
_NOT_STUDENT_FOLDERS = tuple(
    {os.path.dirname(os.path.abspath(sockserver_lib.__file__))}
    | {os.path.abspath(sysconfig.get_paths()[name]) for name in ("stdlib", "purelib", "platlib")}
)
#: Characters of a test's message and captured output that are reported.
_MESSAGE_LIMIT, _OUTPUT_LIMIT = 1500, 1000


def run_isolated(function: Callable[[], None], time_limit: float) -> tuple[str, str]:
    """Run *function*; return (status, message) within *time_limit* seconds.

    In a forked child in its own process group where fork() exists (the
    group is killed afterwards, so nothing the test started survives, and
    the temporary folder it wrote in is removed), else in a daemon thread.
    """
    status, message, _ = _isolated(function, time_limit)
    return status, message


def run_in_child(function: Callable[[], Any], time_limit: float = TEST_TIME_LIMIT) -> str:
    """Run ``function()`` in a child process, as check() runs its tests; return its output.

    For trying code that forks, or that might hang, from a notebook: the
    child has a time limit and everything it started is stopped with it.
    Raises NotImplementedError if it stopped at a stub, RuntimeError with
    the reason if it raised anything else, timed out or crashed (the output
    follows the reason).  Where there is no fork(), it runs in a thread instead.
    """
    status, message, output = _isolated(function, time_limit)
    if status != PASSED:
        reason = message if message.startswith(status) else f"{status}: {message}"
        error = NotImplementedError if status == NOT_IMPLEMENTED else RuntimeError
        raise error(f"{reason}\n{output}".rstrip())
    return output


def _isolated(function: Callable[[], Any], time_limit: float) -> tuple[str, str, str]:
    if hasattr(os, "fork"):
        return _run_in_child(function, time_limit)
    return _run_in_thread(function, time_limit)


def _run_in_child(function: Callable[[], Any], time_limit: float) -> tuple[str, str, str]:
    # The child's temporary files go in a folder removed here, after the child
    # is gone: a test killed at its time limit, or stopped by os._exit(), runs
    # no cleanup of its own.  (The child never returns here: it leaves with
    # os._exit().)
    scratch = tempfile.mkdtemp(prefix="skt-")
    try:
        return _fork_and_wait(function, time_limit, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fork_and_wait(function: Callable[[], Any], time_limit: float,
                   scratch: str) -> tuple[str, str, str]:
    """Run *function* in a forked child whose temporary folder is *scratch*."""
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns when a process with threads (a notebook kernel)
        # forks; the child only runs the test and leaves with os._exit().
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: run the test, report one JSON line, leave
        global _RESULT_PIPE
        try:
            os.close(reader)
            os.setpgid(0, 0)
            tempfile.tempdir = os.environ["TMPDIR"] = scratch
            _RESULT_PIPE = writer
            _stop_test_now(*_outcome_in_child(function, _output_file(scratch)))
        finally:
            os._exit(0)
    os.close(writer)
    global _RUNNING_TEST
    _RUNNING_TEST = pid
    try:
        reply = _read_line(reader, time_limit)
    finally:
        os.close(reader)
        _kill_group_and_reap(pid)
        _RUNNING_TEST = None
    if reply is None:
        return TIMED_OUT, (
            f"did not finish within {time_limit:g} s and was stopped; look for a "
            "recv(), accept(), join() or loop that waits forever (every wait "
            "needs a timeout or an end)"
        ), _printed_before_the_kill(scratch)
    try:
        status, message, output = json.loads(reply.split(b"\n", 1)[0])
    except ValueError:  # nothing, or not a report
        return CRASHED, "the test process died before reporting (os._exit() or a crash?)", ""
    return status, message, output


def _read_line(fd: int, time_limit: float) -> bytes | None:
    """Read one line from *fd*; b"" at end of file, None after *time_limit*."""
    deadline = time.monotonic() + time_limit
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            data += chunk
    return data


#: The process (group) of the test running now, in the process that runs it.
_RUNNING_TEST: int | None = None


def stop_running_test() -> None:
    """Kill the test running now, and all it started (for a grader being stopped)."""
    if _RUNNING_TEST is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(_RUNNING_TEST, signal.SIGKILL)


def _kill_group_and_reap(pid: int) -> None:
    # Kill before reaping: while the child is unreaped its group id cannot be
    # reused, so this never hits someone else's processes.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _output_file(scratch: str) -> str:
    return os.path.join(scratch, ".printed-by-the-test")


def _printed_before_the_kill(scratch: str) -> str:
    """The end of what a test killed at its time limit had printed."""
    try:
        with open(_output_file(scratch), encoding="utf-8", errors="replace") as printed:
            return printed.read()[-_OUTPUT_LIMIT:]
    except OSError:  # the test removed it, or printed nothing
        return ""


class _WrittenThrough(io.StringIO):
    """Captured output, also written at once to a file: the parent reads it
    there if the test has to be killed before it can report.  The file keeps
    the end of the output and never grows past about _FILE_LIMIT bytes, so a
    test printing in a loop cannot fill the disk."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._tail, self._in_file = "", 0

    def write(self, text: str) -> int:
        self._tail = (self._tail + text)[-_OUTPUT_LIMIT:]
        data = text.encode("utf-8", "replace")
        with contextlib.suppress(OSError):
            if self._in_file + len(data) > _FILE_LIMIT:  # start again from the tail
                os.ftruncate(self._fd, 0)
                data = self._tail.encode("utf-8", "replace")
                self._in_file = 0
            os.write(self._fd, data)
            self._in_file += len(data)
        return super().write(text)


#: Bytes of a test's output kept in its file (see _WrittenThrough).
_FILE_LIMIT = 64 * 1024


def _outcome_in_child(function: Callable[[], Any], output_file: str) -> tuple[str, str, str]:
    """Run *function* with its output captured; return (status, message, output)."""
    global _CAPTURED
    _CAPTURED = _WrittenThrough(output_file)
    with open(os.devnull, "w") as devnull:  # output written to the descriptors is dropped
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    sys.stdout = sys.stderr = _CAPTURED
    status, message = _outcome(function)
    output = _CAPTURED.getvalue()
    if status == FAILED:
        # A stub raising NotImplementedError inside a server thread shows up
        # as a missing reply; say what really happened.
        hint = _not_implemented_in(output)
        if hint is not None:
            status, message = NOT_IMPLEMENTED, hint
    return status, message, output


#: In a test's child process: the pipe its one result line goes to, and
#: what the test printed.
_RESULT_PIPE: int | None = None
_CAPTURED: io.StringIO | None = None


def _stop_test_now(status: str, message: str, output: str | None = None) -> None:
    """In a test's child process (or its descendants): report and exit at once."""
    if _RESULT_PIPE is not None:
        if output is None:
            output = _CAPTURED.getvalue() if _CAPTURED is not None else ""
        # Short enough for one atomic write (PIPE_BUF): a forked grandchild
        # reporting at the same time cannot interleave with it.
        report = [status, message[:_MESSAGE_LIMIT], output[-_OUTPUT_LIMIT:]]
        os.write(_RESULT_PIPE, (json.dumps(report) + "\n").encode())
        os._exit(0)


def _stopping_at_stubs(value: Any) -> Any:
    """*value* with the student's functions ending the test at a NotImplementedError.

    A stub that raises in a server's thread would otherwise make the test
    wait for a reply until the client's timeout; this reports "not
    implemented yet" at once.  Classes get a subclass of the same name
    whose methods (the student's own, inherited ones included) are wrapped.
    """
    if isinstance(value, types.FunctionType):
        return _reporting_stub(value) if _written_by_student(value) else value
    if not isinstance(value, type):
        return value
    wrapped = {}
    for name in dir(value):
        method = inspect.getattr_static(value, name)
        if isinstance(method, types.FunctionType) and _written_by_student(method):
            wrapped[name] = _reporting_stub(method)
    if not wrapped:
        return value
    namespace = {**wrapped, "__module__": value.__module__, "__qualname__": value.__qualname__}
    try:
        return type(value)(value.__name__, (value,), namespace)
    except Exception:  # an unusual metaclass: grade the class as it is
        return value


def _reporting_stub(function: Callable) -> Callable:
    @functools.wraps(function)
    def stopping_at_stub(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except NotImplementedError as error:
            _stop_test_now(NOT_IMPLEMENTED, _not_implemented_message(str(error)))
            raise

    return stopping_at_stub


def _written_by_student(function: types.FunctionType) -> bool:
    return not _is_kit_or_stdlib(function.__code__.co_filename)


def _is_kit_or_stdlib(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_NOT_STUDENT_FOLDERS)


def _run_in_thread(function: Callable[[], Any], time_limit: float) -> tuple[str, str, str]:
    outcome: list[tuple[str, str]] = []
    output = io.StringIO()

    def run() -> None:
        with contextlib.redirect_stdout(output):
            outcome.append(_outcome(function))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(time_limit)
    if not outcome:
        return TIMED_OUT, (
            f"did not finish within {time_limit:g} s; it may still be running in "
            "the background (restart the kernel if the notebook misbehaves)"
        ), ""
    return (*outcome[0], output.getvalue())


def _outcome(function: Callable[[], None]) -> tuple[str, str]:
    try:
        function()
    except NotImplementedError as error:
        return NOT_IMPLEMENTED, _not_implemented_message(str(error))
    except AssertionError as error:
        return FAILED, (str(error) or "an assertion failed") + _where(error)
    except BaseException as error:  # anything the student's code raised
        return ERROR, f"{type(error).__name__}: {error}{_where(error)}"
    return PASSED, ""


def _not_implemented_message(hint: str) -> str:
    return "not implemented yet" + (f" ({hint})" if hint else "")


def _not_implemented_in(output: str) -> str | None:
    for line in reversed(output.splitlines()):
        if line.startswith("NotImplementedError"):
            return _not_implemented_message(line.partition(":")[2].strip())
    return None


def _where(error: BaseException) -> str:
    """Where in the student's code *error* was raised, if it was."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__)
        if not _is_kit_or_stdlib(frame.filename)
    ]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    return f" (in {frame.name}(), line {frame.lineno}{code})"
