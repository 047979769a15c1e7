"""Threads (notebook 08): a silent client blocks only a synchronous server, and
server_close() waits for the request threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import types
from typing import Any

from sockserver_lib import lab

from .core import ABSENCE, PATIENCE, Kind, _expect_equal, _fail, check
from .harness import (
    _close,
    _closing,
    _datagram_client,
    _fresh_address,
    _hang_up,
    _running,
    _server,
    _serving,
)


def _greet_then_echo_handler(impl: types.SimpleNamespace) -> type:
    """Writes b"ready\\n" at once, then echoes one line."""
    class GreetThenEcho(impl.StreamRequestHandler):
        timeout = PATIENCE

        def handle(self):
            self.wfile.write(b"ready\n")
            self.wfile.write(self.rfile.readline())

    return GreetThenEcho


def _talk(client: socket.socket, line: bytes) -> None:
    client.sendall(line)
    _expect_equal(lab.recv_line(client), line, "the handler echoes the line it read")


@check(applies_to=lambda kind: kind.is_stream and kind.concurrency != "sync")
def silent_client_does_not_block_concurrent_server(impl, kind):
    """While one client is connected and silent, another client is served."""
    with _running(impl, kind, _greet_then_echo_handler(impl)) as server:
        address = server.server_address
        with lab.connect(address, PATIENCE) as silent, lab.connect(address, PATIENCE) as other:
            _expect_equal(lab.recv_line(silent), b"ready\n", "the first client is handled")
            try:
                greeting = lab.recv_line(other)
            except TimeoutError:
                _fail("the second client is served while the first one is silent",
                      "no answer: the server waited for the silent client",
                      f"{kind.concurrency}: process_request() must hand the request to a "
                      "new thread or process and return to the loop at once")
            _expect_equal(greeting, b"ready\n", "the second client is handled")
            _talk(other, b"second\n")
            _talk(silent, b"first\n")


@check(applies_to=lambda kind: kind.is_stream and kind.concurrency == "sync")
def silent_client_blocks_sync_server(impl, kind):
    """A synchronous server serves one client at a time: a silent client makes the next one wait."""
    with _running(impl, kind, _greet_then_echo_handler(impl)) as server:
        address = server.server_address
        with lab.connect(address, PATIENCE) as silent, lab.connect(address, PATIENCE) as other:
            _expect_equal(lab.recv_line(silent), b"ready\n", "the first client is handled")
            other.settimeout(ABSENCE)
            try:
                early = other.recv(1024)
            except TimeoutError:
                early = None
            if early is not None:
                _fail("no answer to the second client while the first one is silent",
                      repr(early), "a synchronous server handles each request to the "
                      "end in the loop's own thread before accepting the next")
            other.settimeout(PATIENCE)
            _talk(silent, b"first\n")
            _hang_up(silent)
            _expect_equal(lab.recv_line(other), b"ready\n",
                          "once the first client is done, the second one is served")
            _talk(other, b"second\n")


def _start_request(kind: Kind, address: Any, clients: contextlib.ExitStack) -> None:
    """Send one request from a client that stays open and reads nothing."""
    if kind.is_stream:
        clients.enter_context(lab.connect(address, PATIENCE)).sendall(b"work\n")
    else:
        clients.enter_context(_datagram_client(kind)).sendto(b"work\n", address)


@check(applies_to=lambda kind: kind.concurrency == "threading")
def server_close_waits_for_request_threads(impl, kind):
    """With block_on_close (the default), server_close() waits for running requests.

    The handler is still busy (for ABSENCE seconds) when server_close() is
    called; it must have finished by the time server_close() returns.
    """
    started, done = threading.Event(), threading.Event()

    class Busy(impl.BaseRequestHandler):
        def handle(self):
            started.set()
            threading.Event().wait(ABSENCE)  # still working when server_close() starts
            done.set()

    with _fresh_address(kind) as address:
        server = _server(impl, kind, Busy, address)
        with _closing(server, kind):
            with _serving(server), contextlib.ExitStack() as clients:
                _start_request(kind, server.server_address, clients)
                if not started.wait(PATIENCE):
                    _fail("the handler starts", "it did not run",
                          "process_request() must start a thread that runs finish_request()")
            _close(server)
            if not done.is_set():
                _fail("server_close() returns after the busy request thread has ended",
                      "it returned while the thread was still running",
                      "keep the non-daemon threads you start and join() them in "
                      "server_close() when block_on_close is true")
