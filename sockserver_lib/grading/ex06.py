"""ex06 (notebook 06, Unix servers): servers that remove their own socket file
(and only theirs), and a Unix datagram client.
"""

from __future__ import annotations

import os
import socket

import sockserver_lib

from .. import lab
from .helpers import _expect, _line_echo_handler, _talking
from .model import Students


def _ex06_keeps_other_servers_file(students: Students) -> None:
    handler = _line_echo_handler()
    with lab.temporary_socket_path() as path:
        first = students["UnixStreamServer"](path, handler)
        try:
            os.unlink(path)  # someone removed our file and started another server
            second = students["UnixStreamServer"](path, handler)
        except BaseException:
            first.server_close()
            raise
        with lab.background_server(second):
            first.server_close()
            _expect(os.path.exists(path), "closing a server removed the socket file of "
                    "another server that now uses the same path; remove the file only if "
                    "it is still yours (compare os.stat(path).st_ino with the one you saw "
                    "after bind)")
            reply = lab.tcp_request(path, b"still mine\n")
            _expect(reply == b"still mine\n", f"the other server should still answer, "
                    f"got {reply!r}")
        _expect(not os.path.exists(path), "server_close() of the server whose file it is "
                "should remove it")


def _datagram_echo_at(path: str):
    class Echo(sockserver_lib.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read())

    return lab.background_server(sockserver_lib.UnixDatagramServer(path, Echo))


def _ex06_datagram_client(students: Students) -> None:
    with lab.temporary_socket_path() as path, lab.temporary_socket_path("client") as mine:
        with _datagram_echo_at(path):
            with _talking("unix_datagram_request()", "bind the client to client_path before "
                          "sendto(), so the server has an address to answer"):
                reply = students["unix_datagram_request"](path, b"hello, unix", mine)
        _expect(reply == b"hello, unix", f"expected the echo b'hello, unix', got {reply!r}")
        _expect(not os.path.exists(mine), "unix_datagram_request() left its client socket "
                "file behind; os.unlink(client_path) in a finally")


def _ex06_datagram_client_cleans_up(students: Students) -> None:
    with lab.temporary_socket_path() as path, lab.temporary_socket_path("client") as mine:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as silent:
            silent.bind(path)  # receives, never answers
            try:
                students["unix_datagram_request"](path, b"anyone?", mine, timeout=0.1)
            except TimeoutError:
                pass
            else:
                raise AssertionError("a server that never answers should make "
                                     "unix_datagram_request() raise socket.timeout; give "
                                     "the socket settimeout(timeout)")
        _expect(not os.path.exists(mine), "after a timeout, the client socket file was "
                "left behind; remove it in a finally")
