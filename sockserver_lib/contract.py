"""The contract: behaviour every socketserver implementation must show.

Each check is a plain function ``check(impl, kind)`` that raises
AssertionError with a message for a learner (what was expected, what
happened, a hint) when the implementation misbehaves.  The same checks are
run by tests/ against the reference library and the solutions, and by
sockserver_lib.grading against a student's classes.

``impl`` is a namespace with the socketserver names (TCPServer,
ThreadingMixIn, StreamRequestHandler, ...): ``reference()`` gives the
library's, ``implementation(ThreadingMixIn=MyMixIn)`` the library's with a
student's classes put in.  ``kind`` says which server to build from it.
"""

from __future__ import annotations

import os
import socket
import types
from collections.abc import Callable
from dataclasses import dataclass

import sockserver_lib

TRANSPORTS = ("tcp", "udp", "unix-stream", "unix-dgram")
CONCURRENCIES = ("sync", "threading", "forking")

_BASE_CLASS = {
    "tcp": "TCPServer",
    "udp": "UDPServer",
    "unix-stream": "UnixStreamServer",
    "unix-dgram": "UnixDatagramServer",
}
_MIXIN = {"sync": None, "threading": "ThreadingMixIn", "forking": "ForkingMixIn"}


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
        if self.concurrency == "forking" and not hasattr(os, "fork"):
            return "this platform has no fork()"
        return None


ALL_KINDS = tuple(Kind(t, c) for t in TRANSPORTS for c in CONCURRENCIES)


def reference() -> types.SimpleNamespace:
    """The reference library's names as an implementation namespace."""
    return types.SimpleNamespace(**{n: getattr(sockserver_lib, n) for n in sockserver_lib.__all__})


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
            function.__name__, function, applies_to, (function.__doc__ or "").strip()
        )
        return function

    return register
