"""The request loop (notebook 02): handle_request(), its timeout, and verify_request()."""

from __future__ import annotations

import types
from typing import Any

from sockserver_lib import lab

from .core import PATIENCE, Kind, _Call, _expect_equal, check
from .harness import (
    _closing,
    _datagram_client,
    _echo_handler,
    _expect_echo,
    _fresh_address,
    _reply,
    _running,
    _server,
    _Signal,
    _unblock,
)


@check()
def handle_request_serves_one_request(impl, kind):
    """handle_request() waits for one request, handles it, and returns."""
    with _fresh_address(kind) as address:
        server = _server(impl, kind, _echo_handler(impl, kind), address)
        with _closing(server, kind):
            call = _Call(server.handle_request)
            try:
                _expect_echo(kind, server.server_address, b"just one\n")
                call.result("handle_request() after one request",
                            "handle_request() handles exactly one request, then returns")
            finally:
                _unblock(call, kind, server.server_address)


@check()
def handle_request_times_out(impl, kind):
    """With ``timeout`` set and no request, handle_timeout() runs and handle_request returns."""
    timeouts = []

    def handle_timeout(server):
        timeouts.append(True)
        super(type(server), server).handle_timeout()

    with _fresh_address(kind) as address:
        server = _server(impl, kind, _echo_handler(impl, kind), address,
                         timeout=0.05, handle_timeout=handle_timeout)
        with _closing(server, kind):
            call = _Call(server.handle_request)
            try:
                call.result("handle_request() with timeout=0.05 and no request",
                            "handle_request() waits at most self.timeout seconds "
                            "(select() with a timeout), then calls handle_timeout()")
            finally:
                _unblock(call, kind, server.server_address)
    _expect_equal(len(timeouts), 1,
                  "handle_timeout() is called once when handle_request() timed out")


def _greeting_handler(impl: types.SimpleNamespace, kind: Kind) -> type:
    """Answers b"served ..." at once, without reading (stream) or with the datagram."""
    class Greeter(impl.BaseRequestHandler):
        def handle(self):
            data = b"" if kind.is_stream else self.request[0]
            _reply(self.request, self.client_address, kind, b"served " + data)

    return Greeter


@check()
def verify_request_false_denies_client(impl, kind):
    """verify_request() returning False drops the request unanswered; serving goes on.

    verify_request() may run in the loop or in a worker process, so its
    decisions go through pipes: it denies the request that takes the one
    "deny" token, and notes each call.
    """
    deny, calls = _Signal(), _Signal()
    deny.notify()

    def verify_request(server, request, client_address):
        calls.notify()
        return not deny.wait(0)

    try:
        with _running(impl, kind, _greeting_handler(impl, kind),
                      verify_request=verify_request) as server:
            _expect_first_denied(kind, server.server_address)
        _expect_equal(calls.count(), 2, "verify_request() is called once for every request")
    finally:
        deny.close()
        calls.close()


def _expect_first_denied(kind: Kind, address: Any) -> None:
    """The first request gets no answer, the second one does."""
    if kind.is_stream:
        for expected, hint in (
            (b"", "a denied connection is closed (shutdown_request) without calling "
                  "process_request()"),
            (b"served ", "after denying one client the server goes on serving"),
        ):
            with lab.connect(address, PATIENCE) as client:  # the handler reads nothing
                _expect_equal(lab.recv_all(client, reset_ends=True), expected, hint)
    else:
        with _datagram_client(kind) as client:
            client.sendto(b"first", address)
            client.sendto(b"second", address)
            _expect_equal(client.recv(1024), b"served second",
                          "a denied datagram gets no reply; the next one is served")
