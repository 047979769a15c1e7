"""ex03 (notebook 03, TCP servers): TCPServer's construction, beyond the contract checks.
"""

from __future__ import annotations

import socket
import threading

from .. import lab
from .helpers import _expect, _line_echo_handler, _talking
from .model import Students


def _ex03_bind_and_activate_false(students: Students) -> None:
    server = students["TCPServer"](lab.LOCALHOST, _line_echo_handler(), bind_and_activate=False)
    try:
        _expect(isinstance(getattr(server, "socket", None), socket.socket),
                "with bind_and_activate=False the constructor still creates self.socket")
        _expect(server.socket.getsockname()[1] == 0,
                "with bind_and_activate=False the constructor must not bind: the caller "
                "calls server_bind() and server_activate() itself")
        server.server_bind()
        server.server_activate()
        _expect(server.server_address[1] != 0,
                f"after server_bind(), server_address is {server.server_address!r}; set it "
                "to self.socket.getsockname() so it has the port the system chose")
        call = threading.Thread(target=server.handle_request, daemon=True)
        call.start()
        with _talking("a request after server_bind() and server_activate()",
                      "server_activate() calls listen(request_queue_size)"):
            reply = lab.tcp_request(server.server_address, b"late start\n")
        call.join(lab.CLIENT_TIMEOUT)
        _expect(reply == b"late start\n", f"expected b'late start\\n', got {reply!r}")
    finally:
        server.server_close()


def _ex03_allow_reuse_address(students: Students) -> None:
    for allow in (False, True):
        server_type = type("Reuse", (students["TCPServer"],), {"allow_reuse_address": allow})
        server = server_type(lab.LOCALHOST, _line_echo_handler())
        try:
            option = server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        finally:
            server.server_close()
        _expect(bool(option) == allow,
                f"with allow_reuse_address = {allow}, SO_REUSEADDR is {option}; in "
                "server_bind(), before bind(), set the socket option SO_REUSEADDR when "
                "allow_reuse_address is true")
