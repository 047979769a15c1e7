"""ex11 (notebook 11, select server): an event loop over a table of
connections, select() in one thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from typing import Any

import sockserver_lib

from .. import contract, lab
from .helpers import STOP_TIME, _expect, _recv_exactly, _small_send_buffers, _talking
from .model import Students

#: Seconds a check waits before concluding that no reply is coming.
NO_REPLY_YET = 0.2
#: Clients connected at once in the many-connections test (two descriptors each).
EX11_CLIENTS = 100
#: Lines in the reply to b"flood\n" (8 bytes each, numbered so that a byte sent twice
#: or lost shows): far more than the kernel buffers of a connection hold.
EX11_FLOOD_LINES = 512 * 1024
#: Send/receive buffer (bytes) set on both ends of the flooded connection.
EX11_SMALL_BUFFER = 65536


class _GreetingLineEcho(sockserver_lib.LineEchoHandler):
    """Greets each client with b"ready\\n", then echoes its lines."""

    def connection_made(self):
        return b"ready\n"


@contextlib.contextmanager
def _event_loop(students: Students, handler: type, **attributes: Any):
    """Serve *handler* on the student's SelectorMixIn; yield (server, errors of the loop)."""
    server_type = type(
        "SelectorUnderTest", (students["SelectorMixIn"], sockserver_lib.TCPServer), attributes
    )
    server = server_type(lab.LOCALHOST, handler)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve_forever(0.05)
        except BaseException as error:
            errors.append(error)

    loop = lab.run_in_thread(serve, "serve_forever")
    try:
        yield server, errors
    finally:
        lab.run_in_thread(server.shutdown, "shutdown").join(STOP_TIME)
        loop.join(STOP_TIME)
        server.server_close()


def _reply_so_far(sock: socket.socket) -> bytes:
    """What *sock* receives within NO_REPLY_YET seconds (b"" if nothing)."""
    sock.settimeout(NO_REPLY_YET)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""
    finally:
        sock.settimeout(lab.CLIENT_TIMEOUT)


#: After b"hel" (no reply yet): a line's end, then lines in one piece, then a line's end.
_SPLIT_AND_MERGED = (b"lo\n", b"one\ntwo\nthr", b"ee\n")


def _converse(client: socket.socket, arrived: threading.Semaphore, replies: tuple) -> None:
    """Send half a line, then _SPLIT_AND_MERGED; expect no reply, then *replies*.

    The rest is sent only once the server has read b"hel" (*arrived* is
    released by the handler's data_received()), so the line really is split.
    """
    client.sendall(b"hel")
    _expect(arrived.acquire(timeout=lab.CLIENT_TIMEOUT), "the server never read b'hel'")
    early = _reply_so_far(client)
    _expect(early == b"", f"b'hel' (half a line) was answered at once with {early!r}; keep "
            "the start of a line until its b'\\n' arrives")
    for sent, expected in zip(_SPLIT_AND_MERGED, replies, strict=True):
        client.sendall(sent)
        reply = _recv_exactly(client, len(expected))
        _expect(reply == expected, f"after b'hel', sent {sent!r}, expected {expected!r} "
                f"back, got {reply!r}")


def _telling(handler: type, arrived: threading.Semaphore) -> type:
    """*handler* that releases *arrived* each time data_received() has run."""
    class Telling(handler):
        def data_received(self, data):
            try:
                return super().data_received(data)
            finally:
                arrived.release()

    return Telling


def _numbered(line_handler: type) -> type:
    """The student's LineHandler answering each line with its number on the connection."""
    class Numbered(line_handler):
        lines = 0

        def line_received(self, line):
            self.lines += 1
            return b"%d " % self.lines + line

    return Numbered


def _ex11_line_handler_split_and_merged(students: Students) -> None:
    arrived = threading.Semaphore(0)
    handler = _telling(_numbered(students["LineHandler"]), arrived)
    hint = ("data_received() gets whatever arrived, which may end in half a line: keep "
            "what follows the last newline for the next call")
    server = sockserver_lib.SelectorTCPServer(lab.LOCALHOST, handler)
    with lab.background_server(server), lab.connect(server.server_address) as client:
        with _talking("a line in pieces, then lines in one piece", hint):
            _converse(client, arrived, (b"1 hello\n", b"2 one\n3 two\n", b"4 three\n"))


def _ex11_line_handler_last_line(students: Students) -> None:
    handler = _numbered(students["LineHandler"])
    hint = ("at end-of-file, eof_received() passes what is left of the input, if anything, "
            "to line_received() as a last line")
    with lab.background_server(sockserver_lib.SelectorTCPServer(lab.LOCALHOST, handler)) as server:
        for sent, expected in ((b"a\nb", b"1 a\n2 b"), (b"x\n", b"1 x\n"), (b"", b"")):
            with _talking(f"sending {sent!r} then end-of-file", hint):
                reply = lab.tcp_request(server.server_address, sent)
            _expect(reply == expected, f"sent {sent!r} and closed, expected {expected!r}, got "
                    f"{reply!r}; {hint}")


def _ex11_echo(students: Students) -> None:
    hint = ("accept_one() -> process_request() puts the connection in the table; "
            "on_readable() passes data to data_received(); at b'' it calls eof_received() "
            "and close_when_sent(); on_writable() sends the replies")
    with _event_loop(students, sockserver_lib.LineEchoHandler) as (server, errors):
        for payload in (b"hello\n", b"two\nlines\n", b"no newline at the end"):
            with _talking(f"echo of {payload!r}", hint, errors):
                reply = lab.tcp_request(server.server_address, payload)
            _expect(reply == payload, f"sent {payload!r}, expected it back, got {reply!r}")


def _ex11_split_across_sends(students: Students) -> None:
    arrived = threading.Semaphore(0)
    handler = _telling(sockserver_lib.LineEchoHandler, arrived)
    hint = ("keep each connection's handler in the table (self.connections) for the whole "
            "connection, and read again each time its socket is readable")
    with _event_loop(students, handler) as (server, errors):
        with _talking("a line in pieces, then lines in one piece", hint, errors):
            with lab.connect(server.server_address) as client:
                _converse(client, arrived, (b"hello\n", b"one\ntwo\n", b"three\n"))


def _ex11_silent_client(students: Students) -> None:
    hint = ("never wait for one client: read only when select() says a socket is readable, "
            "and only once (recv(), not a loop until a whole line)")
    with _event_loop(students, _GreetingLineEcho) as (server, errors):
        address = server.server_address
        with _talking("a client while another one is silent", hint, errors):
            with lab.connect(address) as silent, lab.connect(address) as other:
                _expect(lab.recv_line(silent) == b"ready\n", "the first client got no greeting")
                silent.sendall(b"half a li")  # and now silent
                _expect(lab.recv_line(other) == b"ready\n",
                        "a second client got no greeting while the first one was silent")
                other.sendall(b"second\n")
                _expect(lab.recv_line(other) == b"second\n", "the second client got no echo "
                        "while the first one was silent")
                silent.sendall(b"ne\n")
                reply = lab.recv_line(silent)
                _expect(reply == b"half a line\n", f"the silent client, once it finished its "
                        f"line, got {reply!r} instead of b'half a line\\n'")


def _ex11_many_connections(students: Students) -> None:
    threads_before = set(threading.enumerate())
    hint = "every connection is a row of self.connections, served by the loop's one thread"
    with _event_loop(students, _GreetingLineEcho) as (server, errors):
        with contextlib.ExitStack() as clients, _talking(
                f"{EX11_CLIENTS} clients at once", hint, errors):
            connected = [clients.enter_context(lab.connect(server.server_address))
                         for _ in range(EX11_CLIENTS)]
            for client in connected:
                _expect(lab.recv_line(client) == b"ready\n", "a client got no greeting")
            extra = [t.name for t in set(threading.enumerate()) - threads_before]
            _expect(len(extra) == 1, f"with {EX11_CLIENTS} clients connected, the threads "
                    f"started are {sorted(extra)}; the event loop's one thread serves them all")
            _expect(len(server.connections) == EX11_CLIENTS,
                    f"with {EX11_CLIENTS} clients connected, self.connections has "
                    f"{len(server.connections)} rows")
            for number, client in enumerate(connected):
                client.sendall(b"%d\n" % number)
            for number, client in enumerate(connected):
                _expect(lab.recv_line(client) == b"%d\n" % number, "a client got a wrong echo")


def _flood() -> bytes:
    """EX11_FLOOD_LINES numbered lines: b"0000000\\n0000001\\n..." (4 MiB)."""
    return b"".join(b"%07d\n" % number for number in range(EX11_FLOOD_LINES))


class _Flooding(sockserver_lib.LineHandler):
    """Answers b"flood\\n" with _flood(), and echoes any other line."""

    def line_received(self, line):
        return _flood() if line == b"flood\n" else line


def _ex11_large_reply(students: Students) -> None:
    hint = ("each client socket must be non-blocking; send() may take only part of the "
            "reply: keep what it did not take for the next on_writable()")
    get_request = _small_send_buffers(EX11_SMALL_BUFFER)
    with _event_loop(students, _Flooding, get_request=get_request) as (server, errors):
        address = server.server_address
        with socket.socket() as flooded:
            flooded.settimeout(lab.CLIENT_TIMEOUT)
            flooded.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, EX11_SMALL_BUFFER)
            flooded.connect(address)
            flooded.sendall(b"flood\n")  # and reads nothing for now
            with _talking("a client while another one does not read its large reply",
                          hint, errors), lab.connect(address) as other:
                other.sendall(b"still there?\n")
                _expect(lab.recv_line(other) == b"still there?\n", "no echo for the other client")
            expected = _flood()
            with _talking(f"reading the {len(expected)}-byte reply", hint, errors):
                reply = _recv_exactly(flooded, len(expected))
            _expect(reply == expected, f"the {len(expected)}-byte reply arrived with bytes "
                    f"lost, repeated or out of order (first difference at byte "
                    f"{_first_difference(reply, expected)}); send() may send only part of "
                    "pending_output: delete from it exactly what was sent")


def _first_difference(got: bytes, expected: bytes) -> int:
    return next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                min(len(got), len(expected)))


def _ex11_handler_error(students: Students) -> None:
    failures: list[type] = []

    class Failing(_GreetingLineEcho):
        def line_received(self, line):
            if line == b"fail\n":
                raise ValueError("the handler failed on purpose")
            return line

    def handle_error(server, request, client_address):
        failures.append(sys.exc_info()[0])

    hint = "run the handler's events through self.call_handler(), which reports and drops"
    with _event_loop(students, Failing, handle_error=handle_error) as (server, errors):
        address = server.server_address
        with _talking("a handler that raises", hint, errors):
            with lab.connect(address) as bystander, lab.connect(address) as failing:
                _expect(lab.recv_line(bystander) + lab.recv_line(failing) == b"ready\nready\n",
                        "the clients got no greeting")
                failing.sendall(b"fail\n")
                rest = lab.recv_all(failing)
                _expect(rest == b"", f"the client whose handler raised got {rest!r}, and "
                        "should see its connection closed")
                bystander.sendall(b"still here\n")
                _expect(lab.recv_line(bystander) == b"still here\n",
                        "another client was not served after a handler raised")
    _expect(failures == [ValueError], f"handle_error() saw {failures}, expected one ValueError")


def _ex11_closing(students: Students) -> None:
    lost = threading.Semaphore(0)

    class Tracked(_GreetingLineEcho):
        def connection_lost(self):
            lost.release()

    hint = ("close_connection(): unregister the socket, remove it from self.connections, "
            "call connection_lost(), then self.shutdown_request(socket)")
    server_type = type("SelectorUnderTest",
                       (students["SelectorMixIn"], sockserver_lib.TCPServer), {})
    server = server_type(lab.LOCALHOST, Tracked)
    loop = lab.run_in_thread(lambda: server.serve_forever(0.05), "serve_forever")
    try:
        with lab.connect(server.server_address) as idle, \
                lab.connect(server.server_address) as halfway:
            with _talking("two clients", hint):
                _expect(lab.recv_line(idle) + lab.recv_line(halfway) == b"ready\nready\n",
                        "the clients got no greeting")
                halfway.sendall(b"half a li")  # and never the rest
            stopper = lab.run_in_thread(server.shutdown, "shutdown")
            stopper.join(STOP_TIME)
            loop.join(STOP_TIME)
            _expect(not loop.is_alive(), "shutdown() did not stop serve_forever()")
            server.server_close()
            with _talking("after server_close()", hint):
                ends = [lab.recv_all(idle), lab.recv_all(halfway)]
            _expect(ends == [b"", b""], f"after server_close() the clients read {ends}; "
                    "server_close() must close every connection in the table")
        _expect(all(lost.acquire(timeout=lab.CLIENT_TIMEOUT) for _ in range(2)),
                "server_close() did not call connection_lost() for every connection")
        _expect(server.connections == {}, f"after server_close() the table still has "
                f"{len(server.connections)} rows; {hint}")
    finally:
        server.server_close()


def _descriptor_count() -> int | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return len(os.listdir(folder))
    return None


def _ex11_no_leaks(students: Students) -> None:
    descriptors_before = _descriptor_count()
    hint = ("whichever way a client leaves (end-of-file, reset, half a line), "
            "close_connection() must run once: unregister, remove from the table, close")
    with _event_loop(students, sockserver_lib.LineEchoHandler) as (server, errors):
        address = server.server_address
        with _talking("clients that leave in every way", hint, errors):
            for round_number in range(40):
                behaviour = round_number % 4
                if behaviour == 0:
                    line = b"polite %d\n" % round_number
                    _expect(lab.tcp_request(address, line) == line, "no echo")
                elif behaviour == 1:
                    lab.connect(address).close()  # without a word
                elif behaviour == 2:
                    client = lab.connect(address)
                    client.sendall(b"half a li")
                    lab.close_with_reset(client)
                else:
                    _expect(lab.tcp_request(address, contract.GARBAGE) == contract.GARBAGE,
                            "bytes without a b'\\n' were not echoed at end-of-file")
            _expect(lab.tcp_request(address, b"still serving\n") == b"still serving\n",
                    "no echo after the rude clients")
    descriptors_after = _descriptor_count()
    if descriptors_before is not None:
        _expect(descriptors_after <= descriptors_before,
                f"{descriptors_after - descriptors_before} descriptors were left open after "
                f"server_close(); {hint}")
