"""The contract's core: server kinds, implementations, and the registry of checks.

``Kind`` (a transport and a concurrency model) and ``ALL_KINDS``;
``reference()``, ``implementation(...)`` and ``server_class(impl, kind)``;
``Check``, the ``@check`` decorator and ``CHECKS``, which every layer's
module fills; the settings every check shares (PATIENCE, ABSENCE...); the
failure messages for a learner (_fail); and _Call, which runs code with a
time limit.
"""

from __future__ import annotations

import functools
import os
import socket
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import sockserver_lib
from sockserver_lib import lab

TRANSPORTS = ("tcp", "udp", "unix-stream", "unix-dgram")
CONCURRENCIES = ("sync", "threading", "forking")
#: Beyond the stdlib (sockserver_lib.pools): worker pools, for stream transports only.
POOL_CONCURRENCIES = ("threadpool", "prefork")

_BASE_CLASS = {
    "tcp": "TCPServer",
    "udp": "UDPServer",
    "unix-stream": "UnixStreamServer",
    "unix-dgram": "UnixDatagramServer",
}
_MIXIN = {
    "sync": None, "threading": "ThreadingMixIn", "forking": "ForkingMixIn",
    "threadpool": "ThreadPoolMixIn", "prefork": "PreforkMixIn",
}


@dataclass(frozen=True)
class Kind:
    """One server kind: a transport and a concurrency model."""

    transport: str
    concurrency: str

    @property
    def id(self) -> str:
        return f"{self.transport}-{self.concurrency}"

    @property
    def is_stream(self) -> bool:
        return self.transport in ("tcp", "unix-stream")

    @property
    def is_unix(self) -> bool:
        return self.transport.startswith("unix")

    def unavailable_reason(self) -> str | None:
        """Why this kind cannot run on this platform, or None if it can."""
        if self.is_unix and not hasattr(socket, "AF_UNIX"):
            return "this platform has no Unix domain sockets (AF_UNIX)"
        if self.concurrency in ("forking", "prefork") and not hasattr(os, "fork"):
            return "this platform has no fork()"
        return None


ALL_KINDS = tuple(Kind(t, c) for t in TRANSPORTS for c in CONCURRENCIES) + tuple(
    Kind(t, c) for t in ("tcp", "unix-stream") for c in POOL_CONCURRENCIES
)


def reference() -> types.SimpleNamespace:
    """The reference library's names as an implementation namespace."""
    names = [*sockserver_lib.__all__, *sockserver_lib.EXTRAS]
    return types.SimpleNamespace(**{n: getattr(sockserver_lib, n) for n in names})


def implementation(**overrides: type) -> types.SimpleNamespace:
    """The reference names with some replaced, e.g. by a student's classes."""
    impl = reference()
    for name, value in overrides.items():
        setattr(impl, name, value)
    return impl


def server_class(impl: types.SimpleNamespace, kind: Kind) -> type:
    """Build the server class for *kind* from *impl* (mix-in first)."""
    base = getattr(impl, _BASE_CLASS[kind.transport])
    mixin_name = _MIXIN[kind.concurrency]
    if mixin_name is None:
        return base
    return type(f"{mixin_name}{base.__name__}", (getattr(impl, mixin_name), base), {})


@dataclass(frozen=True)
class Check:
    """A named contract check and the kinds it applies to."""

    name: str
    run: Callable[[types.SimpleNamespace, Kind], None]
    applies_to: Callable[[Kind], bool]
    doc: str


CHECKS: dict[str, Check] = {}


def check(applies_to: Callable[[Kind], bool] = lambda kind: True):
    """Register a function as a contract check (decorator)."""

    def register(function):
        CHECKS[function.__name__] = Check(
            function.__name__, _timeouts_as_failures(function), applies_to,
            (function.__doc__ or "").strip(),
        )
        return function

    return register


def _timeouts_as_failures(function: Callable[[types.SimpleNamespace, Kind], None]):
    """Run *function*, turning a socket that timed out into a failed check."""
    @functools.wraps(function)
    def run(impl: types.SimpleNamespace, kind: Kind) -> None:
        try:
            function(impl, kind)
        except TimeoutError as error:
            _fail(f"the server answers (or closes the connection) within {PATIENCE:g} s",
                  f"a socket timed out waiting for it ({error})",
                  "look for a request that is never answered or never closed, e.g. an "
                  "exception that skips shutdown_request()")

    return run


# --- Settings -------------------------------------------------------------

#: Seconds to wait for something that must happen; past this the check fails
#: instead of hanging.
PATIENCE = lab.CLIENT_TIMEOUT
#: Seconds to wait before concluding that something does NOT happen (a reply
#: from a server that is busy with another client).
ABSENCE = 0.2
#: serve_forever()'s poll_interval in the checks: short, so that an
#: implementation without the library's prompt shutdown() still stops quickly.
POLL_INTERVAL = 0.05
#: Requests sent by the leak check: enough to make a leak visible, few enough
#: to stay fast.
LEAK_ROUNDS = 60
#: Bytes that are not a line (no newline) and not text.
GARBAGE = bytes(range(11, 256)) * 2


# --- Failure messages -----------------------------------------------------

def _fail(expected: str, got: str, hint: str) -> NoReturn:
    """Fail the check with a message for a learner."""
    raise AssertionError(f"\nexpected: {expected}\n     got: {got}\n    hint: {hint}")


def _expect_equal(got: Any, expected: Any, hint: str) -> None:
    if got != expected:
        _fail(repr(expected), repr(got), hint)


# --- Running code with a time limit ---------------------------------------

class _Call:
    """Run ``function(*args)`` in a daemon thread and keep its outcome.

    A call that never returns leaves only a daemon thread behind, and the
    check fails instead of hanging.
    """

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self._function, self._args = function, args
        self.returned: Any = None
        self.raised: BaseException | None = None
        name = f"check-{getattr(function, '__name__', 'call')}"
        self._thread = lab.run_in_thread(self._run, name)

    def _run(self) -> None:
        try:
            self.returned = self._function(*self._args)
        except BaseException as error:  # noqa: B036 - reported to the check
            self.raised = error

    def finished(self, timeout: float = PATIENCE) -> bool:
        """Wait up to *timeout* seconds; True if the call has returned or raised."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self, what: str, hint: str, timeout: float = PATIENCE) -> Any:
        """Return the call's value; re-raise its exception; fail if still running."""
        if not self.finished(timeout):
            _fail(f"{what} returns within {timeout:g} s", "it was still running", hint)
        if self.raised is not None:
            raise self.raised
        return self.returned


def _within_time_limit(function: Callable[[], Any], what: str, hint: str) -> Any:
    return _Call(function).result(what, hint)
