"""ex04 (notebook 04, request handlers): a line protocol on the student's
StreamRequestHandler, and its timeout setting.
"""

from __future__ import annotations

import sockserver_lib

from .. import lab
from .helpers import _exchange, _expect, _talking
from .model import Students


def _shout_server(students: Students):
    return lab.background_server(sockserver_lib.TCPServer(lab.LOCALHOST, students["ShoutHandler"]))


def _ex04_shout_lines(students: Students) -> None:
    with _shout_server(students) as server:
        for sent, expected in ((b"hello\n", b"HELLO\n"), (b"a\r\nb\n", b"A\nB\n"),
                               (b"no newline at the end", b"NO NEWLINE AT THE END\n")):
            with _talking(f"sending {sent!r}", "answer each line, then end at b''"):
                reply = lab.tcp_request(server.server_address, sent)
            _expect(reply == expected, f"sent {sent!r}, expected {expected!r}, got {reply!r}; "
                    "each line is answered in capitals, without its line ending, plus b'\\n'")


def _ex04_shout_conversation(students: Students) -> None:
    hint = "answer each line as soon as it has arrived: readline(), write(), repeat"
    with _shout_server(students) as server, lab.connect(server.server_address) as sock:
        reader = sock.makefile("rb")
        with reader, _talking("a conversation", hint):
            for line in (b"one\n", b"two\n", b"three\n"):
                sock.sendall(line)
                reply = reader.readline()
                _expect(reply == line.upper(),
                        f"sent {line!r} and waited, got {reply!r}; {hint}")


def _ex04_shout_quit(students: Students) -> None:
    hint = "after quit, say BYE and return from handle(), without reading more"
    with _shout_server(students) as server, lab.connect(server.server_address) as sock:
        sock.sendall(b"one\nQuit\n")  # and stays connected: quit alone must end it
        with _talking("after b'one\\nQuit\\n', the end of the conversation", hint):
            reply = lab.recv_all(sock)
        _expect(reply == b"ONE\nBYE\n",
                f"expected b'ONE\\nBYE\\n' (quit, in any case, says BYE and ends the "
                f"connection), got {reply!r}")


def _ex04_shout_many_lines(students: Students) -> None:
    lines = b"".join(b"line %d\n" % number for number in range(500))
    with _shout_server(students) as server:
        with _talking("500 lines at once", "loop on readline() until it returns b''"):
            reply = _exchange(server.server_address, lines)
        _expect(reply == lines.upper(), f"sent 500 lines in one go, got {len(reply.splitlines())} "
                "lines back; rfile.readline() returns one line at a time, however the "
                "bytes arrived")


def _ex04_timeout_setting(students: Students) -> None:
    class Timed(students["StreamRequestHandler"]):
        timeout = 0.25

        def handle(self):
            self.wfile.write(repr(self.connection.gettimeout()).encode())

    with lab.background_server(sockserver_lib.TCPServer(lab.LOCALHOST, Timed)) as server:
        with _talking("a handler with timeout = 0.25", "setup() applies self.timeout"):
            reply = lab.tcp_request(server.server_address, b"")
    _expect(reply == b"0.25", f"a handler class with timeout = 0.25 saw its connection's "
            f"timeout as {reply!r}; setup() must give the connection the handler's "
            "timeout, unless it is None")
