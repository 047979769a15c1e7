"""Request handlers (notebook 04): handle_error(), SystemExit, the order of the hooks,
and readline() against a single recv().
"""

from __future__ import annotations

import contextlib
import socket
import sys
import types
from collections.abc import Callable
from typing import Any

from sockserver_lib import lab

from .core import PATIENCE, Kind, _Call, _expect_equal, _fail, check
from .harness import (
    _ask,
    _closing,
    _datagram_client,
    _fresh_address,
    _receive,
    _reply,
    _running,
    _server,
    _Signal,
    _unblock,
)


def _error_reporting_handler(impl: types.SimpleNamespace, kind: Kind) -> type:
    """Raises ValueError for a request starting with b"raise", else answers b"ok ..."."""
    class Raising(impl.BaseRequestHandler):
        def handle(self):
            data = _receive(self.request, kind)
            if data.startswith(b"raise"):
                raise ValueError("raised by the handler on purpose")
            _reply(self.request, self.client_address, kind, b"ok " + data)

    return Raising


def _report_error_to_client(kind: Kind) -> Callable[..., None]:
    """A handle_error() that tells the client what it was given."""
    def handle_error(server, request, client_address):
        error = sys.exc_info()[1]
        message = f"handle_error got {type(error).__name__} for {client_address!r}"
        _reply(request, client_address, kind, message.encode())

    return handle_error


def _exchange(kind: Kind, address: Any, payload: bytes) -> tuple[bytes, Any]:
    """Send *payload* from a new client; return (the reply, the client's address)."""
    if kind.is_stream:
        with lab.connect(address, PATIENCE) as client:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            return lab.recv_all(client, reset_ends=True), client.getsockname()
    with _datagram_client(kind) as client:
        client.sendto(payload, address)
        return client.recv(1024), client.getsockname()


@check()
def handler_exception_goes_to_handle_error(impl, kind):
    """An exception in a handler goes to handle_error(); serving goes on.

    handle_error() is given the request and client address of the failed
    request, and is called while the exception is being handled.
    """
    with _running(impl, kind, _error_reporting_handler(impl, kind),
                  handle_error=_report_error_to_client(kind)) as server:
        try:
            reply, client_address = _exchange(kind, server.server_address, b"raise\n")
        except TimeoutError:
            _fail("handle_error() to be called", "no call within the time limit",
                  "catch Exception around finish_request() and call "
                  "self.handle_error(request, client_address) in the except block")
        expected = f"handle_error got ValueError for {client_address!r}".encode()
        _expect_equal(reply, expected,
                      "call handle_error(request, client_address) inside the except block, "
                      "with the request and address the handler was given")
        _expect_equal(_ask(kind, server.server_address, b"next\n"), b"ok next\n",
                      "after an error in one request the server goes on serving")


@check(applies_to=lambda kind: kind.concurrency == "sync")
def system_exit_in_handler_propagates(impl, kind):
    """SystemExit raised by a handler of a synchronous server leaves handle_request()."""
    errors = []

    class Exiting(impl.BaseRequestHandler):
        def handle(self):
            raise SystemExit(3)

    with _fresh_address(kind) as address:
        server = _server(impl, kind, Exiting, address,
                         handle_error=lambda server, request, addr: errors.append(addr))
        with _closing(server, kind):
            call = _Call(server.handle_request)
            try:
                if kind.is_stream:
                    with lab.connect(server.server_address, PATIENCE) as client:
                        _expect_equal(lab.recv_all(client, reset_ends=True), b"",
                                      "the request is closed (shutdown_request) before "
                                      "the exception leaves handle_request()")
                else:
                    with _datagram_client(kind) as client:
                        client.sendto(b"exit", server.server_address)
                call.finished()
            finally:
                _unblock(call, kind, server.server_address)
            if not isinstance(call.raised, SystemExit):
                got = (repr(call.raised) if call.raised is not None
                       else "it was still running" if not call.finished(0)
                       else f"it returned {call.returned!r}")
                _fail("handle_request() raises SystemExit(3)", got,
                      "catch only Exception for handle_error(); SystemExit and "
                      "KeyboardInterrupt must propagate (after closing the request)")
    _expect_equal(errors, [], "handle_error() is for Exception, not for SystemExit")


def _traced_handler(impl: types.SimpleNamespace, kind: Kind) -> type:
    """Tells the client each hook as it runs; raises where the request says so."""
    class Traced(impl.BaseRequestHandler):
        def setup(self):
            self.payload = _receive(self.request, kind)
            self.say(b"setup")
            if self.payload == b"raise in setup":
                raise ValueError("setup() failed on purpose")

        def handle(self):
            self.say(b"handle")
            if self.payload == b"raise in handle":
                raise ValueError("handle() failed on purpose")

        def finish(self):
            self.say(b"finish")

        def say(self, word):
            _reply(self.request, self.client_address, kind, word + b" ")

    return Traced


def _words_until(kind: Kind, address: Any, payload: bytes, last: bytes) -> bytes:
    """Send *payload*; collect the words sent back until *last* (or the end)."""
    if kind.is_stream:
        return lab.tcp_request(address, payload, PATIENCE)
    words = b""
    with _datagram_client(kind) as client:
        client.sendto(payload, address)
        with contextlib.suppress(TimeoutError):
            while not words.endswith(last):
                words += client.recv(1024)
    return words


#: request -> the hooks that must run, in order (CPython calls finish() in a
#: finally: clause, so an exception in handle() still runs finish()).
_HOOK_ORDER = {
    b"no error": b"setup handle finish ",
    b"raise in handle": b"setup handle finish handle_error ",
    b"raise in setup": b"setup handle_error ",
}


@check()
def handler_hooks_run_in_order(impl, kind):
    """setup(), handle() and finish() run in that order.

    As in CPython (and its documentation since Python 3.3), finish() runs
    even when handle() raises, but not when setup() raises.
    """
    def handle_error(server, request, client_address):
        _reply(request, client_address, kind, b"handle_error ")

    with _running(impl, kind, _traced_handler(impl, kind),
                  handle_error=handle_error) as server:
        for payload, expected in _HOOK_ORDER.items():
            last = expected.split()[-1] + b" "
            _expect_equal(
                _words_until(kind, server.server_address, payload, last), expected,
                f"for a request that does {payload.decode()!r}: the constructor calls "
                "setup(), then handle() in a try: whose finally: calls finish(); an "
                "exception then reaches handle_error()",
            )


class _RecvNotifyingSocket(socket.socket):
    """A server-side connection that notifies a _Signal after each receive."""

    signal: _Signal

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        received = super().recv_into(*args, **kwargs)
        self.signal.notify()
        return received

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        received = super().recv(*args, **kwargs)
        self.signal.notify()
        return received


def _recv_notifying_get_request(signal: _Signal) -> Callable[..., Any]:
    def get_request(server):
        connection, client_address = super(type(server), server).get_request()
        watched = _RecvNotifyingSocket(connection.family, connection.type,
                                       connection.proto, fileno=connection.detach())
        watched.signal = signal
        return watched, client_address

    return get_request


def _single_recv_handler(impl: types.SimpleNamespace) -> type:
    class SingleRecv(impl.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"one recv got: " + self.request.recv(1024))

    return SingleRecv


def _readline_handler(impl: types.SimpleNamespace) -> type:
    class ReadLine(impl.StreamRequestHandler):
        timeout = PATIENCE

        def handle(self):
            self.wfile.write(b"readline got: " + self.rfile.readline())

    return ReadLine


@check(applies_to=lambda kind: kind.is_stream)
def readline_vs_single_recv(impl, kind):
    """A line sent in two pieces: one recv() gets a piece, readline() the line.

    The second piece is sent only after the server has received the first,
    so the result does not depend on timing.
    """
    with _running(impl, kind, _single_recv_handler(impl)) as server:
        with lab.connect(server.server_address, PATIENCE) as client:
            client.sendall(b"hello ")
            _expect_equal(lab.recv_all(client, reset_ends=True), b"one recv got: hello ",
                          "recv() returns what has arrived so far, not a whole message")
    signal = _Signal()
    try:
        with _running(impl, kind, _readline_handler(impl),
                      get_request=_recv_notifying_get_request(signal)) as server:
            with lab.connect(server.server_address, PATIENCE) as client:
                client.sendall(b"hello ")
                if not signal.wait():
                    _fail("the server reads the first piece", "no recv on the connection",
                          "the handler's rfile must read from the connection it was given")
                client.sendall(b"world\n")
                _expect_equal(lab.recv_all(client, reset_ends=True), b"readline got: hello world\n",
                              "rfile.readline() calls recv() again until it has a newline; "
                              "rfile is the connection's makefile('rb')")
    finally:
        signal.close()
