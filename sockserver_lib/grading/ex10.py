"""ex10 (access control): let only some clients in with verify_request.

An application of the request loop's hook (notebook 02).
"""

from __future__ import annotations

import contextlib
import errno
from typing import Any

import sockserver_lib

from .. import lab
from .helpers import _expect, _recording_handler, _talking
from .model import Students


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
                    f"served; it got {reply!r}. Hint: comparing strings does not understand "
                    "networks; parse the address and each network with the ipaddress module")


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
