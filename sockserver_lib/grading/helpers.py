"""Helpers shared by the exercises' specific tests (grading/exNN.py).

Failing with a message (_expect), turning a client's socket error into a
failure that says what was tried (_talking), clients that send and read,
and small handlers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import sockserver_lib

from .. import lab

#: Seconds after which serve_echo() must have returned once stop is set.
STOP_TIME = 2.0


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
