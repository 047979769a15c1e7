"""Helpers shared by the exercises' specific tests (grading/exNN.py).

Failing with a message (_expect), turning a client's socket error into a
failure that says what was tried (_talking), clients that send and read,
small handlers, a lock that exposes a race, why a test cannot run here, and
server pieces (small send buffers, handler errors kept).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import sockserver_lib

from .. import lab

#: Seconds after which serve_echo() must have returned once stop is set.
STOP_TIME = 2.0
#: serve_forever()'s poll interval in the capstones' and labs' tests: shutdown()
#: waits up to this long, once per test.
POLL_INTERVAL = 0.05

#: Seconds a race test's first reader waits for a second one (only a
#: server that is not concurrent makes it wait that long).
RACE_WINDOW = 4.0


class _ContentionDetectingLock:
    """A Lock that breaks *barrier* when a second thread has to wait for it.

    The first reader of the shared value waits at the barrier for a second reader:
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


def _no_unix_sockets() -> str | None:
    return None if hasattr(socket, "AF_UNIX") else "this platform has no AF_UNIX"


def _no_fork() -> str | None:
    return None if hasattr(os, "fork") else "this platform has no os.fork()"


def _small_send_buffers(size: int):
    """A get_request() that gives each accepted socket a send buffer of *size* bytes."""

    def get_request(server: Any) -> tuple:
        request, client_address = super(type(server), server).get_request()
        request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return request, client_address

    return get_request


class _KeepsHandlerErrors:
    """Server mix-in: handle_error() keeps each handler's exception in ``errors``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.errors: list[BaseException | None] = []
        super().__init__(*args, **kwargs)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.errors.append(sys.exc_info()[1])


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


def _line_echo_handler() -> type:
    class LineEcho(sockserver_lib.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    return LineEcho
