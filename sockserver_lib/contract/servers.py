"""TCP, UDP and Unix servers (notebooks 03, 05 and 06): an echo round trip on every kind."""

from __future__ import annotations

from .core import _expect_equal, check
from .harness import _ask, _echo_handler, _running


@check()
def echo_round_trip(impl, kind):
    """An echo handler answers several requests, each with what was sent."""
    with _running(impl, kind, _echo_handler(impl, kind)) as server:
        for payload in (b"hello\n", b"a second request\n", b"third\n"):
            _expect_equal(
                _ask(kind, server.server_address, payload), payload,
                "StreamRequestHandler: rfile reads the connection, wfile writes to it; "
                "DatagramRequestHandler: rfile holds the datagram, and what handle() "
                "writes to wfile is sent back by finish()",
            )
