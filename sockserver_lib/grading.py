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

The batch grader (``python -m sockserver_lib.grade``) uses the same
registry (``EXERCISES``) and ``grade()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import importlib.util
import inspect
import io
import json
import os
import select
import signal
import socket
import sys
import sysconfig
import threading
import time
import traceback
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sockserver_lib

from . import contract, lab

#: Seconds one test may take before it is stopped and scored 0.
TEST_TIME_LIMIT = 10.0
#: Set by the batch grader while it runs a submission's cells: check() calls
#: in the notebook only record their arguments (in BATCH_CALLS), and the
#: grader calls grade() itself with them once all the cells have run.
BATCH_ENVIRONMENT_VARIABLE = "SOCKSERVER_GRADING_BATCH"
BATCH_CALLS: list[tuple[str, dict[str, Any]]] = []

#: A test's status; only PASSED earns points (SKIPPED: not counted at all).
PASSED, FAILED, NOT_IMPLEMENTED, ERROR, TIMED_OUT, CRASHED, MISSING, SKIPPED, INVALID = (
    "passed", "failed", "not implemented", "error", "timed out", "crashed",
    "missing", "skipped", "invalid notebook",
)
#: The status of every test of a notebook that changed the grading code.
TAMPERED = "grader changed"

#: Code in these folders is the kit's, Python's or an installed package's;
#: code anywhere else (a notebook cell, a test file) is the student's.
_NOT_STUDENT_FOLDERS = tuple(
    {os.path.dirname(os.path.abspath(__file__))}
    | {os.path.abspath(sysconfig.get_paths()[name]) for name in ("stdlib", "purelib", "platlib")}
)
#: Characters of a test's message and captured output that are reported.
_MESSAGE_LIMIT, _OUTPUT_LIMIT = 1500, 1000


# --------------------------------------------------------------------------
# Exercises, tests and results

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


# --------------------------------------------------------------------------
# check() and grade()


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

    Each test runs isolated (see the module docstring) with *time_limit*
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


# --------------------------------------------------------------------------
# Running one test, isolated and with a time limit


def run_isolated(function: Callable[[], None], time_limit: float) -> tuple[str, str]:
    """Run *function*; return (status, message) within *time_limit* seconds.

    In a forked child in its own process group where fork() exists (the
    group is killed afterwards, so nothing the test started survives), else
    in a daemon thread.
    """
    status, message, _ = _isolated(function, time_limit)
    return status, message


def run_in_child(function: Callable[[], Any], time_limit: float = TEST_TIME_LIMIT) -> str:
    """Run ``function()`` in a child process, as check() runs its tests; return its output.

    For trying code that forks, or that might hang, from a notebook: the
    child has a time limit and everything it started is stopped with it.
    Raises RuntimeError with the reason if the function raised, timed out
    or crashed.  Where there is no fork(), it runs in a thread instead.
    """
    status, message, output = _isolated(function, time_limit)
    if status != PASSED:
        reason = message if message.startswith(status) else f"{status}: {message}"
        raise RuntimeError(f"{reason}\n{output}".rstrip())
    return output


def _isolated(function: Callable[[], Any], time_limit: float) -> tuple[str, str, str]:
    if hasattr(os, "fork"):
        return _run_in_child(function, time_limit)
    return _run_in_thread(function, time_limit)


def _run_in_child(function: Callable[[], Any], time_limit: float) -> tuple[str, str, str]:
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
            _RESULT_PIPE = writer
            _stop_test_now(*_outcome_in_child(function))
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
        ), ""
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


def _outcome_in_child(function: Callable[[], Any]) -> tuple[str, str, str]:
    """Run *function* with its output captured; return (status, message, output)."""
    global _CAPTURED
    _CAPTURED = io.StringIO()
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
        return FAILED, str(error) or "an assertion failed" + _where(error)
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


# --------------------------------------------------------------------------
# Helpers for the tests below


def _expect(condition: object, message: str) -> None:
    """Fail the test with *message* unless *condition* holds."""
    if not condition:
        raise AssertionError(message)


@contextlib.contextmanager
def _talking(
    what: str, hint: str, server_errors: list[BaseException] | None = None
) -> Iterator[None]:
    """Turn a client's socket error into a test failure that says *what* and *hint*.

    If the server under test died first (its exception is in
    *server_errors*), that exception is what the student needs to see.
    """
    try:
        yield
    except OSError as error:
        if server_errors:
            raise server_errors[0] from None
        if isinstance(error, TimeoutError):
            raise AssertionError(
                f"{what}: no reply within {lab.CLIENT_TIMEOUT:g} s; {hint}"
            ) from None
        raise AssertionError(f"{what}: {type(error).__name__}: {error}; {hint}") from None


def _exchange(address: Any, payload: bytes) -> bytes:
    """Send *payload* while reading the reply (so neither side's buffer fills)."""
    with lab.connect(address) as sock:
        sender = lab.run_in_thread(lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        reply = lab.recv_all(sock)
        sender.join(lab.CLIENT_TIMEOUT)
        return reply


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _recording_handler() -> tuple[type, threading.Event]:
    """An echo-one-line handler and the Event it sets when it runs."""
    served = threading.Event()

    class RecordingEcho(sockserver_lib.StreamRequestHandler):
        def handle(self):
            served.set()
            self.wfile.write(self.rfile.readline())

    return RecordingEcho, served


# --------------------------------------------------------------------------
# ex01: an echo server by hand (no library class: specific tests)

#: Seconds after which serve_echo() must have returned once stop is set.
STOP_TIME = 2.0


@contextlib.contextmanager
def _echo_by_hand(students: Students) -> Iterator[tuple[Any, threading.Event, list]]:
    """Run the student's serve_echo() in a thread; yield (address, stop, errors)."""
    listener = students["open_listener"]()
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            students["serve_echo"](listener, stop)
        except BaseException as error:
            errors.append(error)
            listener.close()  # waiting clients fail at once instead of timing out

    address = listener.getsockname()
    thread = lab.run_in_thread(serve, "serve_echo")
    try:
        yield address, stop, errors
    finally:
        stop.set()
        thread.join(STOP_TIME)
        listener.close()


def _ex01_listener(students: Students) -> None:
    listener = students["open_listener"]()
    _expect(isinstance(listener, socket.socket),
            f"open_listener() should return a socket.socket, it returned {listener!r}")
    with listener:
        _expect(listener.family == socket.AF_INET and listener.type == socket.SOCK_STREAM,
                f"expected a TCP socket (AF_INET, SOCK_STREAM), got {listener!r}")
        host, port = listener.getsockname()
        _expect(port != 0, 'the socket is not bound: bind(("127.0.0.1", 0)) before listen()')
        _expect(host == "127.0.0.1", f"expected it bound to 127.0.0.1, got {host}")
        with _talking("connecting to it", "call listen() after bind()"):
            lab.connect((host, port)).close()


def _ex01_echo(students: Students) -> None:
    with _echo_by_hand(students) as (address, _, errors):
        with _talking("echo of b'hello'", "close the connection once recv() returns b''", errors):
            reply = lab.tcp_request(address, b"hello")
        _expect(reply == b"hello", f"sent b'hello', expected it back, got {reply!r}")


def _ex01_echo_in_pieces(students: Students) -> None:
    hint = "send back each piece as soon as recv() returns it, do not wait for the end"
    with _echo_by_hand(students) as (address, _, errors):
        with _talking("a conversation", hint, errors), lab.connect(address) as sock:
            for piece in (b"one ", b"two ", b"three"):
                sock.sendall(piece)
                reply = _recv_exactly(sock, len(piece))
                _expect(reply == piece, f"sent {piece!r} and waited, got back {reply!r}; {hint}")


def _ex01_large_message(students: Students) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB, far more than one recv() returns
    hint = "loop on recv() until it returns b'', and use sendall(), not send()"
    with _echo_by_hand(students) as (address, _, errors):
        with _talking("echo of 256 KiB", hint, errors):
            reply = _exchange(address, payload)
        _expect(reply == payload,
                f"sent {len(payload)} bytes, got {len(reply)} back"
                + ("" if len(reply) != len(payload) else " but different") + f"; {hint}")


def _ex01_silent_client(students: Students) -> None:
    hint = ("give each connection a timeout (settimeout) and catch the error, "
            "so one client cannot stop the server")
    with _echo_by_hand(students) as (address, _, errors):
        with lab.connect(address):  # connects and never sends
            try:
                with _talking("a client after a silent one", hint):
                    reply = lab.tcp_request(address, b"still there?")
            except AssertionError:
                if not errors:
                    raise
                raise AssertionError(f"serve_echo() stopped with {errors[0]!r}"
                                     f"{_where(errors[0])} because of a silent client; "
                                     f"{hint}") from None
            _expect(reply == b"still there?", f"expected b'still there?' back, got {reply!r}")


def _ex01_stops(students: Students) -> None:
    with students["open_listener"]() as listener:
        _expect_stops(students["serve_echo"], listener, "serve_echo", "accept()")


def _expect_stops(serve: Callable, sock: socket.socket, name: str, call: str) -> None:
    """serve(sock, stop) must return soon after stop is set, and close *sock*."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(sock, stop)
        except BaseException as error:
            errors.append(error)

    thread = lab.run_in_thread(run, name)
    stop.set()
    thread.join(STOP_TIME)
    if errors:
        raise errors[0]
    _expect(not thread.is_alive(),
            f"{name}() still runs {STOP_TIME:g} s after stop.set(); give the socket a "
            f"timeout so {call} wakes up to look at stop")
    _expect(sock.fileno() == -1, f"{name}() returned but left its socket open; close it "
            "in a finally")


@contextlib.contextmanager
def _udp_echo_by_hand(students: Students) -> Iterator[tuple[socket.socket, threading.Event, list]]:
    """Run the student's serve_udp_echo() on a fresh UDP socket; yield (sock, stop, errors)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(lab.LOCALHOST)
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            students["serve_udp_echo"](sock, stop)
        except BaseException as error:
            errors.append(error)

    thread = lab.run_in_thread(serve, "serve_udp_echo")
    try:
        yield sock, stop, errors
    finally:
        stop.set()
        thread.join(STOP_TIME)
        sock.close()


def _ex01_udp_echo(students: Students) -> None:
    hint = "recvfrom() one datagram, then sendto() it back to the address it came from"
    with _udp_echo_by_hand(students) as (sock, _, errors):
        address = sock.getsockname()
        for message in (b"first datagram", b"second datagram"):
            with _talking(f"echo of {message!r}", hint, errors):
                reply = lab.udp_request(address, message)
            _expect(reply == message, f"sent {message!r}, got {reply!r}; {hint}")


def _ex01_udp_stops(students: Students) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(lab.LOCALHOST)
        _expect_stops(students["serve_udp_echo"], sock, "serve_udp_echo", "recvfrom()")


# --------------------------------------------------------------------------
# ex10: access control with verify_request (an application of the hook)


@contextlib.contextmanager
def _allow_list_server(students: Students, networks: tuple, threading_: bool = False):
    """Serve a recording echo handler on the student's AllowListServer."""
    bases = (students["AllowListServer"],)
    if threading_:
        bases = (sockserver_lib.ThreadingMixIn, *bases)
    server_type = type("AllowListUnderTest", bases, {"allowed_networks": networks})
    handler, served = _recording_handler()
    with lab.background_server(server_type(lab.LOCALHOST, handler)) as server:
        yield server, served


def _ask_line(address: Any, line: bytes = b"hello\n") -> bytes:
    """Send *line*, return the reply; b"" if the server just closed the connection."""
    with _talking("a client's request", "verify_request() must return True or False"):
        try:
            return lab.tcp_request(address, line)
        except (ConnectionResetError, BrokenPipeError):
            return b""  # closed before reading what we sent: the system resets
        except OSError as error:
            if error.errno == errno.ENOTCONN:  # closed before our shutdown(SHUT_WR)
                return b""
            raise


def _ex10_allowed(students: Students) -> None:
    for networks in (("127.0.0.0/8",), ("10.0.0.0/8", "127.0.0.1/32")):
        with _allow_list_server(students, networks) as (server, served):
            reply = _ask_line(server.server_address)
            _expect(reply == b"hello\n" and served.is_set(),
                    f"with allowed_networks = {networks}, a client from 127.0.0.1 should be "
                    f"served; it got {reply!r}. Hint: ipaddress.ip_address(client_address[0]) "
                    "in ipaddress.ip_network(network)")


def _ex10_refused(students: Students) -> None:
    for networks in (("10.0.0.0/8",), ()):
        with _allow_list_server(students, networks) as (server, served):
            reply = _ask_line(server.server_address)
            _expect(not served.is_set(),
                    f"with allowed_networks = {networks}, a client from 127.0.0.1 must be "
                    "refused before its handler runs, but the handler ran")
            _expect(reply == b"", f"a refused client should just see the connection "
                    f"closed, it got {reply!r}")


def _ex10_counts_refusals(students: Students) -> None:
    with _allow_list_server(students, ("10.0.0.0/8",)) as (server, _):
        _expect(server.refused == 0, f"refused should start at 0, it is {server.refused!r}")
        for _ in range(2):
            _ask_line(server.server_address)
        _expect(server.refused == 2, f"2 clients were refused, refused is {server.refused!r}; "
                "add 1 to self.refused each time verify_request() says no")


def _ex10_serves_after_refusal(students: Students) -> None:
    with _allow_list_server(students, ("10.0.0.0/8",)) as (server, served):
        _ask_line(server.server_address)
        server.allowed_networks = ("127.0.0.0/8",)
        reply = _ask_line(server.server_address)
        _expect(reply == b"hello\n", "after a refusal, and allowed_networks changed to "
                f"allow 127.0.0.0/8, the next client should be served; it got {reply!r}. "
                "Read self.allowed_networks on every call")


def _ex10_threading(students: Students) -> None:
    with _allow_list_server(students, ("10.0.0.0/8",), threading_=True) as (server, served):
        reply = _ask_line(server.server_address)
        _expect(reply == b"" and not served.is_set(),
                f"mixed with ThreadingMixIn the refused client got {reply!r} and its handler "
                f"{'ran' if served.is_set() else 'did not run'}; verify_request() must only "
                "decide, the server does the rest")


# --------------------------------------------------------------------------
# ex03: TCPServer's construction (beyond the contract checks)


def _line_echo_handler() -> type:
    class LineEcho(sockserver_lib.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    return LineEcho


def _ex03_bind_and_activate_false(students: Students) -> None:
    server = students["TCPServer"](lab.LOCALHOST, _line_echo_handler(), bind_and_activate=False)
    try:
        _expect(isinstance(getattr(server, "socket", None), socket.socket),
                "with bind_and_activate=False the constructor still creates self.socket")
        _expect(server.socket.getsockname()[1] == 0,
                "with bind_and_activate=False the constructor must not bind: the caller "
                "calls server_bind() and server_activate() itself")
        server.server_bind()
        server.server_activate()
        _expect(server.server_address[1] != 0,
                f"after server_bind(), server_address is {server.server_address!r}; set it "
                "to self.socket.getsockname() so it has the port the system chose")
        call = threading.Thread(target=server.handle_request, daemon=True)
        call.start()
        with _talking("a request after server_bind() and server_activate()",
                      "server_activate() calls listen(request_queue_size)"):
            reply = lab.tcp_request(server.server_address, b"late start\n")
        call.join(lab.CLIENT_TIMEOUT)
        _expect(reply == b"late start\n", f"expected b'late start\\n', got {reply!r}")
    finally:
        server.server_close()


def _ex03_allow_reuse_address(students: Students) -> None:
    for allow in (False, True):
        server_type = type("Reuse", (students["TCPServer"],), {"allow_reuse_address": allow})
        server = server_type(lab.LOCALHOST, _line_echo_handler())
        try:
            option = server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        finally:
            server.server_close()
        _expect(bool(option) == allow,
                f"with allow_reuse_address = {allow}, SO_REUSEADDR is {option}; in "
                "server_bind(), before bind(): if self.allow_reuse_address: "
                "self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)")


# --------------------------------------------------------------------------
# ex04: a line protocol on the student's StreamRequestHandler


def _shout_server(students: Students):
    return lab.background_server(sockserver_lib.TCPServer(lab.LOCALHOST, students["ShoutHandler"]))


def _ex04_shout_lines(students: Students) -> None:
    with _shout_server(students) as server:
        for sent, expected in ((b"hello\n", b"HELLO\n"), (b"a\r\nb\n", b"A\nB\n"),
                               (b"no newline at the end", b"NO NEWLINE AT THE END\n")):
            with _talking(f"sending {sent!r}", "answer each line, then end at b''"):
                reply = lab.tcp_request(server.server_address, sent)
            _expect(reply == expected, f"sent {sent!r}, expected {expected!r}, got {reply!r}; "
                    "each line is answered in capitals, without its line ending, plus b'\\n'")


def _ex04_shout_conversation(students: Students) -> None:
    hint = "answer each line as soon as it has arrived: readline(), write(), repeat"
    with _shout_server(students) as server, lab.connect(server.server_address) as sock:
        reader = sock.makefile("rb")
        with reader, _talking("a conversation", hint):
            for line in (b"one\n", b"two\n", b"three\n"):
                sock.sendall(line)
                reply = reader.readline()
                _expect(reply == line.upper(),
                        f"sent {line!r} and waited, got {reply!r}; {hint}")


def _ex04_shout_quit(students: Students) -> None:
    hint = "after quit, say BYE and return from handle(), without reading more"
    with _shout_server(students) as server, lab.connect(server.server_address) as sock:
        sock.sendall(b"one\nQuit\n")  # and stays connected: quit alone must end it
        with _talking("after b'one\\nQuit\\n', the end of the conversation", hint):
            reply = lab.recv_all(sock)
        _expect(reply == b"ONE\nBYE\n",
                f"expected b'ONE\\nBYE\\n' (quit, in any case, says BYE and ends the "
                f"connection), got {reply!r}")


def _ex04_shout_many_lines(students: Students) -> None:
    lines = b"".join(b"line %d\n" % number for number in range(500))
    with _shout_server(students) as server:
        with _talking("500 lines at once", "loop on readline() until it returns b''"):
            reply = _exchange(server.server_address, lines)
        _expect(reply == lines.upper(), f"sent 500 lines in one go, got {len(reply.splitlines())} "
                "lines back; rfile.readline() returns one line at a time, however the "
                "bytes arrived")


def _ex04_timeout_setting(students: Students) -> None:
    class Timed(students["StreamRequestHandler"]):
        timeout = 0.25

        def handle(self):
            self.wfile.write(repr(self.connection.gettimeout()).encode())

    with lab.background_server(sockserver_lib.TCPServer(lab.LOCALHOST, Timed)) as server:
        with _talking("a handler with timeout = 0.25", "setup() applies self.timeout"):
            reply = lab.tcp_request(server.server_address, b"")
    _expect(reply == b"0.25", f"a handler class with timeout = 0.25 saw its connection's "
            f"timeout as {reply!r}; in setup(): if self.timeout is not None: "
            "self.connection.settimeout(self.timeout)")


# --------------------------------------------------------------------------
# ex05: UDPServer's max_packet_size


def _ex05_max_packet_size(students: Students) -> None:
    class Echo(students["DatagramRequestHandler"]):
        def handle(self):
            self.wfile.write(self.rfile.read())

    server_type = type("Small", (students["UDPServer"],), {"max_packet_size": 8})
    with lab.background_server(server_type(lab.LOCALHOST, Echo)) as server:
        with _talking("a datagram of 20 bytes", "get_request() uses recvfrom()"):
            reply = lab.udp_request(server.server_address, b"0123456789abcdefghij")
    _expect(reply == b"01234567", f"with max_packet_size = 8, a 20-byte datagram should be "
            f"cut to its first 8 bytes, got {reply!r}; get_request() reads "
            "recvfrom(self.max_packet_size)")


# --------------------------------------------------------------------------
# ex06: Unix servers that remove their socket file; a Unix datagram client


def _no_unix_sockets() -> str | None:
    return None if hasattr(socket, "AF_UNIX") else "this platform has no AF_UNIX"


def _ex06_keeps_other_servers_file(students: Students) -> None:
    handler = _line_echo_handler()
    with lab.temporary_socket_path() as path:
        first = students["UnixStreamServer"](path, handler)
        try:
            os.unlink(path)  # someone removed our file and started another server
            second = students["UnixStreamServer"](path, handler)
        except BaseException:
            first.server_close()
            raise
        with lab.background_server(second):
            first.server_close()
            _expect(os.path.exists(path), "closing a server removed the socket file of "
                    "another server that now uses the same path; remove the file only if "
                    "it is still yours (compare os.stat(path).st_ino with the one you saw "
                    "after bind)")
            reply = lab.tcp_request(path, b"still mine\n")
            _expect(reply == b"still mine\n", f"the other server should still answer, "
                    f"got {reply!r}")
        _expect(not os.path.exists(path), "server_close() of the server whose file it is "
                "should remove it")


def _datagram_echo_at(path: str):
    class Echo(sockserver_lib.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read())

    return lab.background_server(sockserver_lib.UnixDatagramServer(path, Echo))


def _ex06_datagram_client(students: Students) -> None:
    with lab.temporary_socket_path() as path, lab.temporary_socket_path("client") as mine:
        with _datagram_echo_at(path):
            with _talking("unix_datagram_request()", "bind the client to client_path before "
                          "sendto(), so the server has an address to answer"):
                reply = students["unix_datagram_request"](path, b"hello, unix", mine)
        _expect(reply == b"hello, unix", f"expected the echo b'hello, unix', got {reply!r}")
        _expect(not os.path.exists(mine), "unix_datagram_request() left its client socket "
                "file behind; os.unlink(client_path) in a finally")


def _ex06_datagram_client_cleans_up(students: Students) -> None:
    with lab.temporary_socket_path() as path, lab.temporary_socket_path("client") as mine:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as silent:
            silent.bind(path)  # receives, never answers
            try:
                students["unix_datagram_request"](path, b"anyone?", mine, timeout=0.1)
            except TimeoutError:
                pass
            else:
                raise AssertionError("a server that never answers should make "
                                     "unix_datagram_request() raise socket.timeout; give "
                                     "the socket settimeout(timeout)")
        _expect(not os.path.exists(mine), "after a timeout, the client socket file was "
                "left behind; remove it in a finally")


# --------------------------------------------------------------------------
# ex07: serve_forever() and shutdown() (beyond the contract checks)


def _ex07_server(students: Students, handler: type | None = None, **attributes: Any):
    base = type("Loop", (students["ServeForeverMixIn"], sockserver_lib.TCPServer), attributes)
    return base(lab.LOCALHOST, handler or _line_echo_handler())


def _ex07_service_actions(students: Students) -> None:
    turns = threading.Semaphore(0)
    server = _ex07_server(students, service_actions=lambda self: turns.release())
    loop = lab.run_in_thread(lambda: server.serve_forever(0.01), "serve_forever")
    try:
        for turn in range(3):
            _expect(turns.acquire(timeout=lab.CLIENT_TIMEOUT),
                    f"service_actions() was called {turn} times in {lab.CLIENT_TIMEOUT:g} s "
                    "with poll_interval=0.01 and no client; call it after every wake-up "
                    "of the loop, timeouts included")
    finally:
        _stop_loop(server, loop)


def _ex07_shutdown_at_once(students: Students) -> None:
    server = _ex07_server(students)
    loop = lab.run_in_thread(lambda: server.serve_forever(60), "serve_forever")
    try:
        with _talking("a request", "serve_forever() handles ready requests"):
            reply = lab.tcp_request(server.server_address, b"up?\n")
        _expect(reply == b"up?\n", f"expected b'up?\\n', got {reply!r}")
        stopper = lab.run_in_thread(server.shutdown, "shutdown")
        stopper.join(STOP_TIME)
        loop.join(STOP_TIME)  # shutdown() returns as the loop ends; its thread then exits
        _expect(not stopper.is_alive() and not loop.is_alive(),
                f"with poll_interval=60, shutdown() had not stopped the loop after "
                f"{STOP_TIME:g} s; wake the loop up at once: register the reading end of "
                "a socket.socketpair() with the selector and write a byte to the other end")
    finally:
        server.server_close()


def _stop_loop(server: Any, loop: threading.Thread) -> None:
    stopper = lab.run_in_thread(server.shutdown, "shutdown")
    stopper.join(STOP_TIME)
    loop.join(STOP_TIME)
    server.server_close()


# --------------------------------------------------------------------------
# ex08: a shared counter that must not race

#: Seconds the counter test's first reader waits for a second one (only a
#: server that is not concurrent makes it wait that long).
RACE_WINDOW = 4.0


class _ContentionDetectingLock:
    """A Lock that breaks *barrier* when a second thread has to wait for it.

    The first reader of ``hits`` waits at the barrier for a second reader:
    with a lock held around read-and-write, the second thread blocks on the
    lock instead, which breaks the barrier, and the first goes on at once.
    """

    def __init__(self, barrier: threading.Barrier) -> None:
        self._lock = threading.Lock()
        self._barrier = barrier

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self._barrier.abort()  # someone holds the lock: no race to expose
        return self._lock.acquire(True, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def _counting_server(barrier: threading.Barrier | None = None) -> type:
    """A threading server with hits and hits_lock; with *barrier*, a race detector."""

    class Counting(sockserver_lib.ThreadingMixIn, sockserver_lib.TCPServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.hits = 0
            self.hits_lock = (
                threading.Lock() if barrier is None else _ContentionDetectingLock(barrier)
            )
            super().__init__(*args, **kwargs)

    if barrier is None:
        return Counting

    class RaceDetecting(Counting):
        @property
        def hits(self) -> int:
            value = self._hits
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(RACE_WINDOW)  # let a second reader read the same value
            return value

        @hits.setter
        def hits(self, value: int) -> None:
            self._hits = value

    return RaceDetecting


def _ex08_counts(students: Students) -> None:
    server = _counting_server()(lab.LOCALHOST, students["CountingHandler"])
    with lab.background_server(server):
        replies = [lab.tcp_request(server.server_address, b"") for _ in range(3)]
    _expect(replies == [b"1\n", b"2\n", b"3\n"],
            f"3 clients one after the other got {replies!r}, expected [b'1\\n', b'2\\n', "
            "b'3\\n']: add 1 to self.server.hits and reply with the new count")
    _expect(server.hits == 3, f"after 3 requests server.hits is {server.hits!r}")


def _ex08_no_lost_updates(students: Students) -> None:
    barrier = threading.Barrier(2)
    server = _counting_server(barrier)(lab.LOCALHOST, students["CountingHandler"])
    replies: list[bytes] = []
    with lab.background_server(server):
        clients = [
            lab.run_in_thread(lambda: replies.append(lab.tcp_request(server.server_address, b"")))
            for _ in range(2)
        ]
        for client in clients:
            client.join(lab.CLIENT_TIMEOUT + RACE_WINDOW)
    _expect(server._hits == 2 and sorted(replies) == [b"1\n", b"2\n"],
            f"two clients at the same time left hits = {server._hits} and got {replies!r}: "
            "both threads read hits before either wrote it back, so one update was lost. "
            "Hold self.server.hits_lock (with ...:) around reading and writing hits")


# --------------------------------------------------------------------------
# ex11: an event loop over a table of connections (select(), one thread)

#: Seconds a check waits before concluding that no reply is coming.
NO_REPLY_YET = 0.2
#: Clients connected at once in the many-connections test (two descriptors each).
EX11_CLIENTS = 100
#: Lines in the reply to b"flood\n" (8 bytes each, numbered so that a byte sent twice
#: or lost shows): far more than the kernel buffers of a connection hold.
EX11_FLOOD_LINES = 512 * 1024
#: Send/receive buffer (bytes) set on both ends of the flooded connection.
EX11_SMALL_BUFFER = 65536


class _GreetingLineEcho(sockserver_lib.LineEchoHandler):
    """Greets each client with b"ready\\n", then echoes its lines."""

    def connection_made(self):
        return b"ready\n"


@contextlib.contextmanager
def _event_loop(students: Students, handler: type, **attributes: Any):
    """Serve *handler* on the student's SelectorMixIn; yield (server, errors of the loop)."""
    server_type = type(
        "SelectorUnderTest", (students["SelectorMixIn"], sockserver_lib.TCPServer), attributes
    )
    server = server_type(lab.LOCALHOST, handler)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve_forever(0.05)
        except BaseException as error:
            errors.append(error)

    loop = lab.run_in_thread(serve, "serve_forever")
    try:
        yield server, errors
    finally:
        lab.run_in_thread(server.shutdown, "shutdown").join(STOP_TIME)
        loop.join(STOP_TIME)
        server.server_close()


def _reply_so_far(sock: socket.socket) -> bytes:
    """What *sock* receives within NO_REPLY_YET seconds (b"" if nothing)."""
    sock.settimeout(NO_REPLY_YET)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""
    finally:
        sock.settimeout(lab.CLIENT_TIMEOUT)


#: After b"hel" (no reply yet): a line's end, then lines in one piece, then a line's end.
_SPLIT_AND_MERGED = (b"lo\n", b"one\ntwo\nthr", b"ee\n")


def _converse(client: socket.socket, arrived: threading.Semaphore, replies: tuple) -> None:
    """Send half a line, then _SPLIT_AND_MERGED; expect no reply, then *replies*.

    The rest is sent only once the server has read b"hel" (*arrived* is
    released by the handler's data_received()), so the line really is split.
    """
    client.sendall(b"hel")
    _expect(arrived.acquire(timeout=lab.CLIENT_TIMEOUT), "the server never read b'hel'")
    early = _reply_so_far(client)
    _expect(early == b"", f"b'hel' (half a line) was answered at once with {early!r}; keep "
            "the start of a line until its b'\\n' arrives")
    for sent, expected in zip(_SPLIT_AND_MERGED, replies, strict=True):
        client.sendall(sent)
        reply = _recv_exactly(client, len(expected))
        _expect(reply == expected, f"after b'hel', sent {sent!r}, expected {expected!r} "
                f"back, got {reply!r}")


def _telling(handler: type, arrived: threading.Semaphore) -> type:
    """*handler* that releases *arrived* each time data_received() has run."""
    class Telling(handler):
        def data_received(self, data):
            try:
                return super().data_received(data)
            finally:
                arrived.release()

    return Telling


def _numbered(line_handler: type) -> type:
    """The student's LineHandler answering each line with its number on the connection."""
    class Numbered(line_handler):
        lines = 0

        def line_received(self, line):
            self.lines += 1
            return b"%d " % self.lines + line

    return Numbered


def _ex11_line_handler_split_and_merged(students: Students) -> None:
    arrived = threading.Semaphore(0)
    handler = _telling(_numbered(students["LineHandler"]), arrived)
    hint = ("data_received() gets whatever arrived: split self.partial_line + data at "
            "b'\\n', pass each complete line to line_received(), keep the rest")
    server = sockserver_lib.SelectorTCPServer(lab.LOCALHOST, handler)
    with lab.background_server(server), lab.connect(server.server_address) as client:
        with _talking("a line in pieces, then lines in one piece", hint):
            _converse(client, arrived, (b"1 hello\n", b"2 one\n3 two\n", b"4 three\n"))


def _ex11_line_handler_last_line(students: Students) -> None:
    handler = _numbered(students["LineHandler"])
    hint = ("at end-of-file, eof_received() passes what is left of the input, if anything, "
            "to line_received() as a last line")
    with lab.background_server(sockserver_lib.SelectorTCPServer(lab.LOCALHOST, handler)) as server:
        for sent, expected in ((b"a\nb", b"1 a\n2 b"), (b"x\n", b"1 x\n"), (b"", b"")):
            with _talking(f"sending {sent!r} then end-of-file", hint):
                reply = lab.tcp_request(server.server_address, sent)
            _expect(reply == expected, f"sent {sent!r} and closed, expected {expected!r}, got "
                    f"{reply!r}; {hint}")


def _ex11_echo(students: Students) -> None:
    hint = ("accept_one() -> process_request() puts the connection in the table; "
            "on_readable() passes data to data_received(); at b'' it calls eof_received() "
            "and close_when_sent(); on_writable() sends the replies")
    with _event_loop(students, sockserver_lib.LineEchoHandler) as (server, errors):
        for payload in (b"hello\n", b"two\nlines\n", b"no newline at the end"):
            with _talking(f"echo of {payload!r}", hint, errors):
                reply = lab.tcp_request(server.server_address, payload)
            _expect(reply == payload, f"sent {payload!r}, expected it back, got {reply!r}")


def _ex11_split_across_sends(students: Students) -> None:
    arrived = threading.Semaphore(0)
    handler = _telling(sockserver_lib.LineEchoHandler, arrived)
    hint = ("keep each connection's handler in the table (self.connections) for the whole "
            "connection, and read again each time its socket is readable")
    with _event_loop(students, handler) as (server, errors):
        with _talking("a line in pieces, then lines in one piece", hint, errors):
            with lab.connect(server.server_address) as client:
                _converse(client, arrived, (b"hello\n", b"one\ntwo\n", b"three\n"))


def _ex11_silent_client(students: Students) -> None:
    hint = ("never wait for one client: read only when select() says a socket is readable, "
            "and only once (recv(), not a loop until a whole line)")
    with _event_loop(students, _GreetingLineEcho) as (server, errors):
        address = server.server_address
        with _talking("a client while another one is silent", hint, errors):
            with lab.connect(address) as silent, lab.connect(address) as other:
                _expect(lab.recv_line(silent) == b"ready\n", "the first client got no greeting")
                silent.sendall(b"half a li")  # and now silent
                _expect(lab.recv_line(other) == b"ready\n",
                        "a second client got no greeting while the first one was silent")
                other.sendall(b"second\n")
                _expect(lab.recv_line(other) == b"second\n", "the second client got no echo "
                        "while the first one was silent")
                silent.sendall(b"ne\n")
                reply = lab.recv_line(silent)
                _expect(reply == b"half a line\n", f"the silent client, once it finished its "
                        f"line, got {reply!r} instead of b'half a line\\n'")


def _ex11_many_connections(students: Students) -> None:
    threads_before = set(threading.enumerate())
    hint = "every connection is a row of self.connections, served by the loop's one thread"
    with _event_loop(students, _GreetingLineEcho) as (server, errors):
        with contextlib.ExitStack() as clients, _talking(
                f"{EX11_CLIENTS} clients at once", hint, errors):
            connected = [clients.enter_context(lab.connect(server.server_address))
                         for _ in range(EX11_CLIENTS)]
            for client in connected:
                _expect(lab.recv_line(client) == b"ready\n", "a client got no greeting")
            extra = [t.name for t in set(threading.enumerate()) - threads_before]
            _expect(len(extra) == 1, f"with {EX11_CLIENTS} clients connected, the threads "
                    f"started are {sorted(extra)}; the event loop's one thread serves them all")
            _expect(len(server.connections) == EX11_CLIENTS,
                    f"with {EX11_CLIENTS} clients connected, self.connections has "
                    f"{len(server.connections)} rows")
            for number, client in enumerate(connected):
                client.sendall(b"%d\n" % number)
            for number, client in enumerate(connected):
                _expect(lab.recv_line(client) == b"%d\n" % number, "a client got a wrong echo")


def _small_buffers(server: Any) -> tuple:
    """get_request() giving the accepted socket a small send buffer."""
    request, client_address = super(type(server), server).get_request()
    request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, EX11_SMALL_BUFFER)
    return request, client_address


def _flood() -> bytes:
    """EX11_FLOOD_LINES numbered lines: b"0000000\\n0000001\\n..." (4 MiB)."""
    return b"".join(b"%07d\n" % number for number in range(EX11_FLOOD_LINES))


class _Flooding(sockserver_lib.LineHandler):
    """Answers b"flood\\n" with _flood(), and echoes any other line."""

    def line_received(self, line):
        return _flood() if line == b"flood\n" else line


def _ex11_large_reply(students: Students) -> None:
    hint = ("make each client socket non-blocking (request.setblocking(False)), send() what "
            "the socket takes, keep the rest in pending_output for the next on_writable()")
    with _event_loop(students, _Flooding, get_request=_small_buffers) as (server, errors):
        address = server.server_address
        with socket.socket() as flooded:
            flooded.settimeout(lab.CLIENT_TIMEOUT)
            flooded.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, EX11_SMALL_BUFFER)
            flooded.connect(address)
            flooded.sendall(b"flood\n")  # and reads nothing for now
            with _talking("a client while another one does not read its large reply",
                          hint, errors), lab.connect(address) as other:
                other.sendall(b"still there?\n")
                _expect(lab.recv_line(other) == b"still there?\n", "no echo for the other client")
            expected = _flood()
            with _talking(f"reading the {len(expected)}-byte reply", hint, errors):
                reply = _recv_exactly(flooded, len(expected))
            _expect(reply == expected, f"the {len(expected)}-byte reply arrived with bytes "
                    f"lost, repeated or out of order (first difference at byte "
                    f"{_first_difference(reply, expected)}); send() may send only part of "
                    "pending_output: delete from it exactly what was sent")


def _first_difference(got: bytes, expected: bytes) -> int:
    return next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                min(len(got), len(expected)))


def _ex11_handler_error(students: Students) -> None:
    failures: list[type] = []

    class Failing(_GreetingLineEcho):
        def line_received(self, line):
            if line == b"fail\n":
                raise ValueError("the handler failed on purpose")
            return line

    def handle_error(server, request, client_address):
        failures.append(sys.exc_info()[0])

    hint = "run the handler's events through self.call_handler(), which reports and drops"
    with _event_loop(students, Failing, handle_error=handle_error) as (server, errors):
        address = server.server_address
        with _talking("a handler that raises", hint, errors):
            with lab.connect(address) as bystander, lab.connect(address) as failing:
                _expect(lab.recv_line(bystander) + lab.recv_line(failing) == b"ready\nready\n",
                        "the clients got no greeting")
                failing.sendall(b"fail\n")
                rest = lab.recv_all(failing)
                _expect(rest == b"", f"the client whose handler raised got {rest!r}, and "
                        "should see its connection closed")
                bystander.sendall(b"still here\n")
                _expect(lab.recv_line(bystander) == b"still here\n",
                        "another client was not served after a handler raised")
    _expect(failures == [ValueError], f"handle_error() saw {failures}, expected one ValueError")


def _ex11_closing(students: Students) -> None:
    lost = threading.Semaphore(0)

    class Tracked(_GreetingLineEcho):
        def connection_lost(self):
            lost.release()

    hint = ("close_connection(): unregister the socket, remove it from self.connections, "
            "call connection_lost(), then self.shutdown_request(socket)")
    server_type = type("SelectorUnderTest",
                       (students["SelectorMixIn"], sockserver_lib.TCPServer), {})
    server = server_type(lab.LOCALHOST, Tracked)
    loop = lab.run_in_thread(lambda: server.serve_forever(0.05), "serve_forever")
    try:
        with lab.connect(server.server_address) as idle, \
                lab.connect(server.server_address) as halfway:
            with _talking("two clients", hint):
                _expect(lab.recv_line(idle) + lab.recv_line(halfway) == b"ready\nready\n",
                        "the clients got no greeting")
                halfway.sendall(b"half a li")  # and never the rest
            stopper = lab.run_in_thread(server.shutdown, "shutdown")
            stopper.join(STOP_TIME)
            loop.join(STOP_TIME)
            _expect(not loop.is_alive(), "shutdown() did not stop serve_forever()")
            server.server_close()
            with _talking("after server_close()", hint):
                ends = [lab.recv_all(idle), lab.recv_all(halfway)]
            _expect(ends == [b"", b""], f"after server_close() the clients read {ends}; "
                    "server_close() must close every connection in the table")
        _expect(all(lost.acquire(timeout=lab.CLIENT_TIMEOUT) for _ in range(2)),
                "server_close() did not call connection_lost() for every connection")
        _expect(server.connections == {}, f"after server_close() the table still has "
                f"{len(server.connections)} rows; {hint}")
    finally:
        server.server_close()


def _descriptor_count() -> int | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return len(os.listdir(folder))
    return None


def _ex11_no_leaks(students: Students) -> None:
    descriptors_before = _descriptor_count()
    hint = ("whichever way a client leaves (end-of-file, reset, half a line), "
            "close_connection() must run once: unregister, remove from the table, close")
    with _event_loop(students, sockserver_lib.LineEchoHandler) as (server, errors):
        address = server.server_address
        with _talking("clients that leave in every way", hint, errors):
            for round_number in range(40):
                behaviour = round_number % 4
                if behaviour == 0:
                    line = b"polite %d\n" % round_number
                    _expect(lab.tcp_request(address, line) == line, "no echo")
                elif behaviour == 1:
                    lab.connect(address).close()  # without a word
                elif behaviour == 2:
                    client = lab.connect(address)
                    client.sendall(b"half a li")
                    lab.close_with_reset(client)
                else:
                    _expect(lab.tcp_request(address, contract.GARBAGE) == contract.GARBAGE,
                            "bytes without a b'\\n' were not echoed at end-of-file")
            _expect(lab.tcp_request(address, b"still serving\n") == b"still serving\n",
                    "no echo after the rude clients")
    descriptors_after = _descriptor_count()
    if descriptors_before is not None:
        _expect(descriptors_after <= descriptors_before,
                f"{descriptors_after - descriptors_before} descriptors were left open after "
                f"server_close(); {hint}")


# --------------------------------------------------------------------------
# The registry


def _contract(check_name: str, kind_id: str, overrides: Callable[[Students], dict]) -> Test:
    """The contract check *check_name* on kind *kind_id*, with the student's classes."""
    transport, _, concurrency = kind_id.rpartition("-")
    kind = contract.Kind(transport, concurrency)

    def run(students: Students) -> None:
        impl = contract.implementation(**overrides(students))
        contract.CHECKS[check_name].run(impl, kind)

    return Test(f"{check_name}[{kind_id}]", run, unavailable=kind.unavailable_reason)


def _contracts(overrides: Callable[[Students], dict], *cases: str) -> tuple[Test, ...]:
    """Contract tests from "check_name[kind]" strings."""
    tests = []
    for case in cases:
        check_name, _, kind_id = case.rstrip("]").partition("[")
        tests.append(_contract(check_name, kind_id, overrides))
    return tuple(tests)


def _specific(*tests: tuple[str, Callable[[Students], None]],
              unavailable: Callable[[], str | None] = lambda: None) -> tuple[Test, ...]:
    return tuple(Test(name, run, unavailable=unavailable) for name, run in tests)


def _given(*names: str) -> Callable[[Students], dict]:
    """Overrides: the student's classes given under socketserver names."""
    return lambda students: {name: students[name] for name in names}


class _ServeThroughHandleRequest:
    """Make the library's serve_forever() serve each request with handle_request().

    The library's loop calls its private _handle_request_noblock() once the
    socket is readable; routing that through the student's handle_request()
    lets every contract check that serves in the background test the
    student's request loop (handle_request() then finds a request at once).
    """

    def _handle_request_noblock(self) -> None:
        if type(self).handle_request is sockserver_lib.BaseServer.handle_request:
            super()._handle_request_noblock()  # no handle_request() of the student's
        else:
            self.handle_request()


def _request_loop(students: Students) -> dict:
    mixin = students["RequestLoopMixIn"]
    return {
        name: type(name, (_ServeThroughHandleRequest, mixin, getattr(sockserver_lib, name)), {})
        for name in ("TCPServer", "UDPServer")
    }


def _serve_forever(students: Students) -> dict:
    mixin = students["ServeForeverMixIn"]
    return {name: type(name, (mixin, getattr(sockserver_lib, name)), {})
            for name in ("TCPServer", "UDPServer")}


def _registry() -> dict[str, Exercise]:
    exercises = [
        Exercise(
            "ex01", "ex01_echo_by_hand.ipynb", "Build an echo server that survives its clients",
            {"open_listener": "open_listener", "serve_echo": "serve_echo",
             "serve_udp_echo": "serve_udp_echo"},
            _specific(
                ("listener", _ex01_listener),
                ("echo", _ex01_echo),
                ("echo_in_pieces", _ex01_echo_in_pieces),
                ("large_message", _ex01_large_message),
                ("silent_client", _ex01_silent_client),
                ("stops", _ex01_stops),
                ("udp_echo", _ex01_udp_echo),
                ("udp_stops", _ex01_udp_stops),
            ),
        ),
        Exercise(
            "ex02", "ex02_request_loop.ipynb", "Build handle_request() and its hooks",
            {"RequestLoopMixIn": "RequestLoopMixIn"},
            _contracts(
                _request_loop,
                *(f"{check}[{kind}]" for check in (
                    "handle_request_serves_one_request", "handle_request_times_out",
                    "verify_request_false_denies_client", "handler_exception_goes_to_handle_error",
                    "system_exit_in_handler_propagates", "handler_hooks_run_in_order",
                ) for kind in ("tcp-sync", "udp-sync")),
            ),
        ),
        Exercise(
            "ex03", "ex03_tcp_server.ipynb", "Build TCPServer on the request loop",
            {"TCPServer": "MyTCPServer"},
            _contracts(
                _given("TCPServer"),
                "echo_round_trip[tcp-sync]", "echo_round_trip[tcp-threading]",
                "echo_round_trip[tcp-forking]", "handle_request_serves_one_request[tcp-sync]",
                "verify_request_false_denies_client[tcp-sync]",
                "server_close_releases_address[tcp-sync]",
                "no_leaks_after_many_requests[tcp-sync]",
                "no_leaks_after_many_requests[tcp-threading]",
                "silent_client_blocks_sync_server[tcp-sync]",
                "silent_client_does_not_block_concurrent_server[tcp-threading]",
            ) + _specific(
                ("bind_and_activate_false", _ex03_bind_and_activate_false),
                ("allow_reuse_address", _ex03_allow_reuse_address),
            ),
        ),
        Exercise(
            "ex04", "ex04_line_protocol.ipynb",
            "Build StreamRequestHandler and a line protocol on it",
            {"BaseRequestHandler": "MyBaseRequestHandler",
             "StreamRequestHandler": "MyStreamRequestHandler", "ShoutHandler": "ShoutHandler"},
            _contracts(
                _given("BaseRequestHandler", "StreamRequestHandler"),
                "echo_round_trip[tcp-sync]", "echo_round_trip[unix-stream-sync]",
                "handler_hooks_run_in_order[tcp-sync]",
                "handler_exception_goes_to_handle_error[tcp-sync]",
                "readline_vs_single_recv[tcp-sync]",
                "silent_client_does_not_block_concurrent_server[tcp-threading]",
                "no_leaks_after_many_requests[tcp-threading]",
            ) + _specific(
                ("stream_handler_timeout", _ex04_timeout_setting),
                ("shout_lines", _ex04_shout_lines),
                ("shout_conversation", _ex04_shout_conversation),
                ("shout_quit", _ex04_shout_quit),
                ("shout_many_lines", _ex04_shout_many_lines),
            ),
        ),
        Exercise(
            "ex05", "ex05_udp_server.ipynb", "Build UDPServer and DatagramRequestHandler",
            {"UDPServer": "MyUDPServer", "DatagramRequestHandler": "MyDatagramRequestHandler"},
            _contracts(
                _given("UDPServer", "DatagramRequestHandler"),
                "echo_round_trip[udp-sync]", "echo_round_trip[udp-threading]",
                "echo_round_trip[udp-forking]", "handle_request_serves_one_request[udp-sync]",
                "verify_request_false_denies_client[udp-sync]",
                "handler_exception_goes_to_handle_error[udp-sync]",
                "server_close_releases_address[udp-sync]",
                "no_leaks_after_many_requests[udp-sync]",
            ) + _specific(("max_packet_size", _ex05_max_packet_size)),
        ),
        Exercise(
            "ex06", "ex06_unix_server.ipynb", "Make Unix servers clean up their socket file",
            {"UnixStreamServer": "MyUnixStreamServer",
             "UnixDatagramServer": "MyUnixDatagramServer",
             "unix_datagram_request": "unix_datagram_request"},
            _contracts(
                _given("UnixStreamServer", "UnixDatagramServer"),
                "echo_round_trip[unix-stream-sync]", "echo_round_trip[unix-dgram-sync]",
                "server_close_releases_address[unix-stream-sync]",
                "server_close_releases_address[unix-dgram-sync]",
                "server_close_releases_address[unix-stream-threading]",
            ) + _specific(
                ("keeps_other_servers_file", _ex06_keeps_other_servers_file),
                ("datagram_client", _ex06_datagram_client),
                ("datagram_client_cleans_up", _ex06_datagram_client_cleans_up),
                unavailable=_no_unix_sockets,
            ),
        ),
        Exercise(
            "ex07", "ex07_serve_forever.ipynb",
            "Build serve_forever() and a shutdown() that stops it at once",
            {"ServeForeverMixIn": "ServeForeverMixIn"},
            _contracts(
                _serve_forever,
                "shutdown_stops_serve_forever[tcp-sync]", "shutdown_stops_serve_forever[udp-sync]",
                "shutdown_stops_serve_forever[tcp-threading]",
                "echo_round_trip[tcp-sync]", "echo_round_trip[udp-sync]",
                "handler_exception_goes_to_handle_error[tcp-sync]",
                "no_leaks_after_many_requests[tcp-threading]",
            ) + _specific(
                ("service_actions_every_turn", _ex07_service_actions),
                ("shutdown_at_once", _ex07_shutdown_at_once),
            ),
        ),
        Exercise(
            "ex08", "ex08_threads.ipynb", "Build ThreadingMixIn and count requests without a race",
            {"ThreadingMixIn": "MyThreadingMixIn", "CountingHandler": "CountingHandler"},
            _contracts(
                _given("ThreadingMixIn"),
                "echo_round_trip[tcp-threading]", "echo_round_trip[udp-threading]",
                "silent_client_does_not_block_concurrent_server[tcp-threading]",
                "handler_exception_goes_to_handle_error[tcp-threading]",
                "no_leaks_after_many_requests[tcp-threading]",
                "server_close_waits_for_request_threads[tcp-threading]",
                "server_close_waits_for_request_threads[udp-threading]",
            ) + _specific(
                ("counts_every_request", _ex08_counts),
                ("no_lost_updates", _ex08_no_lost_updates),
            ),
        ),
        Exercise(
            "ex09", "ex09_processes.ipynb", "Build ForkingMixIn and reap its children",
            {"ForkingMixIn": "MyForkingMixIn"},
            _contracts(
                _given("ForkingMixIn"),
                "echo_round_trip[tcp-forking]", "echo_round_trip[udp-forking]",
                "silent_client_does_not_block_concurrent_server[tcp-forking]",
                "handler_exception_goes_to_handle_error[tcp-forking]",
                "server_close_releases_address[tcp-forking]",
                "forking_server_reaps_children[tcp-forking]",
                "forking_server_reaps_children[udp-forking]",
                "no_leaks_after_many_requests[tcp-forking]",
                "no_leaks_after_many_requests[udp-forking]",
            ),
        ),
        Exercise(
            "ex10", "ex10_access_control.ipynb", "Let only some clients in with verify_request",
            {"AllowListServer": "AllowListServer"},
            _specific(
                ("allowed_client_served", _ex10_allowed),
                ("other_client_refused", _ex10_refused),
                ("refusals_counted", _ex10_counts_refusals),
                ("serves_after_refusal", _ex10_serves_after_refusal),
                ("threading_server", _ex10_threading),
            ),
        ),
        Exercise(
            "ex11", "ex11_select_server.ipynb",
            "Build an event loop that serves every client from one thread",
            {"SelectorMixIn": "MySelectorMixIn", "LineHandler": "MyLineHandler"},
            _specific(
                ("line_handler_split_and_merged", _ex11_line_handler_split_and_merged),
                ("line_handler_last_line", _ex11_line_handler_last_line),
                ("echo_round_trip", _ex11_echo),
                ("lines_split_across_sends", _ex11_split_across_sends),
                ("silent_client_does_not_block", _ex11_silent_client),
                ("many_connections_one_thread", _ex11_many_connections),
                ("large_reply_sent_in_pieces", _ex11_large_reply),
                ("handler_error_drops_only_its_client", _ex11_handler_error),
                ("server_close_closes_every_connection", _ex11_closing),
                ("no_leaks_after_rude_clients", _ex11_no_leaks),
            ),
        ),
    ]
    return {exercise.id: exercise for exercise in exercises}


#: Every exercise by id, in order.
EXERCISES: dict[str, Exercise] = _registry()


def add_tests(exercise: str, tests: Iterable[Test]) -> None:
    """Add *tests* to *exercise*, graded like its own (the grader's ``--extra-tests``).

    ValueError, saying what to change, for an unknown exercise or a test
    name the exercise already has.
    """
    if exercise not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}; the exercises are "
                         f"{', '.join(EXERCISES)}")
    spec = EXERCISES[exercise]
    added = tuple(tests)
    names = [test.name for test in (*spec.tests, *added)]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{exercise} would have two tests named {', '.join(twice)}: "
                         "rename the extra test")
    EXERCISES[exercise] = dataclasses.replace(spec, tests=(*spec.tests, *added))


def load_extra_tests(folder: str) -> str:
    """Import every ``*.py`` in *folder* and add its EXTRA_TESTS to the exercises.

    Returns what was added ("ex10: 1 test"); raises ValueError saying what
    is wrong with a module.
    """
    modules = sorted(Path(folder).glob("*.py"))
    if not modules:
        raise ValueError("no *.py module in that folder")
    added: dict = {}
    for path in modules:
        spec = importlib.util.spec_from_file_location(f"sockserver_extra_tests.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # the tests' classes must be found again by name
        spec.loader.exec_module(module)
        extra = getattr(module, "EXTRA_TESTS", None)
        if not isinstance(extra, dict):
            raise ValueError(f"{path.name} defines no EXTRA_TESTS = {{exercise: [Test, ...]}}")
        for exercise, tests in extra.items():
            add_tests(exercise, tests)
            added[exercise] = added.get(exercise, 0) + len(tests)
    return ", ".join(f"{exercise}: {count} test(s)" for exercise, count in added.items())
