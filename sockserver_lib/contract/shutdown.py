"""Stopping a server (notebook 07, and 03, 05, 06 for server_close()): shutdown() ends
serve_forever(); server_close() closes the socket and frees the address.
"""

from __future__ import annotations

from .core import POLL_INTERVAL, _Call, _expect_equal, _fail, _within_time_limit, check
from .harness import _closing, _echo_handler, _expect_echo, _fresh_address, _server, _serving


@check()
def shutdown_stops_serve_forever(impl, kind):
    """shutdown() called from another thread makes serve_forever() return."""
    with _fresh_address(kind) as address:
        server = _server(impl, kind, _echo_handler(impl, kind), address)
        with _closing(server, kind):
            loop = _Call(server.serve_forever, POLL_INTERVAL)
            try:
                _expect_echo(kind, server.server_address)
                _within_time_limit(server.shutdown, "shutdown() from another thread",
                                   "shutdown() asks the loop to stop and waits until it has")
                if not loop.finished():
                    _fail("serve_forever() returns after shutdown()",
                          "it was still running", "the loop must check the shutdown request")
            finally:
                if not loop.finished(0):
                    _Call(server.shutdown).finished()
        if loop.raised is not None:
            _fail("serve_forever() returns normally", repr(loop.raised),
                  "serve_forever() should return, not raise, after shutdown()")


@check()
def server_close_releases_address(impl, kind):
    """server_close() closes the socket and frees the address.

    A new server can bind the same address at once; for a Unix server, the
    same path (the library removes the socket file; the stdlib does not).
    """
    handler = _echo_handler(impl, kind)
    with _fresh_address(kind) as address:
        first = _server(impl, kind, handler, address)
        with _closing(first, kind):
            used = first.server_address
        _expect_equal(first.socket.fileno(), -1, "server_close() closes self.socket")
        try:
            second = _server(impl, kind, handler, used)
        except OSError as error:
            _fail(f"a new server can bind {used!r} again", repr(error),
                  "server_close() must close the socket; a Unix server must also remove "
                  "the socket file it created (os.unlink), or the path stays in use")
        with _closing(second, kind), _serving(second):
            _expect_echo(kind, second.server_address)
