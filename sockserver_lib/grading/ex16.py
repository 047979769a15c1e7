"""ex16 (notebook 16, debugging labs): ten broken servers, one test per lab.

Each test fails on its lab's broken code (what exercises/ex16 starts with),
saying the symptom and where to look, and passes once the bug is fixed.
The labs use the standard library's ``socketserver``, as a learner's own
server would.  Every wait is bounded: at most EX16_PROMPT seconds for what a
working server does at once (a broken lab fails in seconds instead of running
into the grader's time limit, and a class of untouched exercises is graded
quickly), ``lab.CLIENT_TIMEOUT`` for the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import socket
import socketserver
import threading
from typing import Any

from .. import lab
from .helpers import (
    POLL_INTERVAL,
    RACE_WINDOW,
    _ContentionDetectingLock,
    _expect,
    _KeepsHandlerErrors,
    _no_fork,
    _no_unix_sockets,
)
from .model import Students, Test

#: Send buffer (bytes) of the connection in the large-reply lab: a slow network,
#: on which one send() takes only a part of a large reply.
EX16_SMALL_BUFFER = 65536
#: Seconds within which a fixed lab answers a reply that it sends at once (a
#: concurrent server's, count_words()'s) or stops its loop: a broken lab waits this long.
EX16_PROMPT = 2.0
#: Lines of 13 bytes in the large-reply lab's report (whatever the handler says).
EX16_REPORT_LINES = 100_000


# --- What the tests serve and watch -----------------------------------------------

class _Upper(socketserver.StreamRequestHandler):
    """Send back one line in capitals."""

    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


class _Pid(socketserver.StreamRequestHandler):
    """Answer a line with the pid of the process that served it."""

    def handle(self):
        self.rfile.readline()
        self.wfile.write(b"served by pid %d\n" % os.getpid())


class _WordCount(socketserver.StreamRequestHandler):
    """Read until end-of-file; answer with the number of words."""

    def handle(self):
        self.wfile.write(b"%d\n" % len(self.rfile.read().split()))


class _Watched(socket.socket):
    """An accepted connection that tells what its handler did with it.

    ``has_read`` is set once a recv() has returned; ``unsent`` is how many bytes
    the last send() was given and did not send (sendall() sends everything).
    """

    def __init__(self, connection: socket.socket) -> None:
        super().__init__(connection.family, connection.type, connection.proto,
                         fileno=connection.detach())
        self.has_read = threading.Event()
        self.given = self.unsent = 0

    def send(self, data: Any, flags: int = 0) -> int:
        sent = super().send(data, flags)
        self.given, self.unsent = len(data), len(data) - sent
        return sent

    def sendall(self, data: Any, flags: int = 0) -> None:
        super().sendall(data, flags)
        self.given, self.unsent = len(data), 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.has_read.set()
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        count = super().recv_into(buffer, nbytes, flags)
        self.has_read.set()
        return count


class _WatchingServer(socketserver.TCPServer):
    """A TCPServer that hands its handlers _Watched connections, also put in ``accepted``.

    Each connection has a timeout (a handler's own ``timeout`` may change it): a
    socket with a timeout is non-blocking underneath, so its send() may send
    only a part, whether or not the handler set a timeout.
    """

    send_buffer: int | None = None

    def __init__(self, *args: Any) -> None:
        self.accepted: queue.Queue[_Watched] = queue.Queue()
        super().__init__(*args)

    def get_request(self):
        connection, address = super().get_request()
        if self.send_buffer:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        watched = _Watched(connection)
        watched.settimeout(lab.CLIENT_TIMEOUT)
        self.accepted.put(watched)
        return watched, address


def _reply(address: Any, payload: bytes, timeout: float = lab.CLIENT_TIMEOUT) -> bytes | None:
    """The reply to *payload*: b"" if the connection was refused or reset, None if no
    reply and no end came within *timeout* seconds."""
    try:
        return lab.tcp_request(address, payload, timeout)
    except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
        return b""
    except TimeoutError:
        return None


# --- Lab 1: the mix-in placed last ------------------------------------------------

def _lab01_concurrent(students: Students) -> None:
    server_class = students["ConcurrentServer"]
    found = getattr(server_class, "process_request", None)
    hint = (f"{server_class.__name__}'s process_request() is "
            f"{getattr(found, '__qualname__', found)}; see the lab's hints")
    with lab.background_server(server_class(lab.LOCALHOST, _Upper), POLL_INTERVAL) as server:
        with lab.connect(server.server_address):  # a client that connects and never sends
            try:
                reply = lab.tcp_request(server.server_address, b"hello\n", EX16_PROMPT)
            except TimeoutError:
                reply = "no answer"
    _expect(reply == b"HELLO\n", f"while one client was connected and silent, a second "
            f"client got {reply!r} within {EX16_PROMPT:g} s instead of b'HELLO\\n': "
            f"the server served one client at a time. {hint}")


# --- Lab 2: send() instead of sendall() -------------------------------------------

def _lab02_whole_reply(students: Students) -> None:
    handler = type("ReportUnderTest", (students["ReportHandler"],),
                   {"report_lines": EX16_REPORT_LINES})
    server = _WatchingServer(lab.LOCALHOST, handler)
    server.send_buffer = EX16_SMALL_BUFFER
    with lab.background_server(server, POLL_INTERVAL):
        reply = _reply(server.server_address, b"report\n")
    connection = server.accepted.get(timeout=lab.CLIENT_TIMEOUT)
    _expect(reply is not None, f"no end of the reply within {lab.CLIENT_TIMEOUT:g} s")
    _expect(connection.given > 0, "the handler sent nothing")
    expected_size, last_line = 13 * EX16_REPORT_LINES, b"line %07d\n" % (EX16_REPORT_LINES - 1)
    _expect(connection.unsent == 0 and len(reply) == expected_size and reply.endswith(last_line),
            f"on a slow connection, a report of {EX16_REPORT_LINES:,} lines "
            f"({expected_size:,} bytes) reached the client as {len(reply):,} bytes, ending "
            f"{reply[-20:]!r} instead of {last_line!r}: the reply was cut short. See the "
            "lab's hints")


# --- Lab 3: one recv() taken as a whole message -----------------------------------

def _lab03_line_in_pieces(students: Students) -> None:
    server = _WatchingServer(lab.LOCALHOST, students["UpperHandler"])
    with lab.background_server(server, POLL_INTERVAL), lab.connect(server.server_address) as client:
        client.sendall(b"hel")
        connection = server.accepted.get(timeout=lab.CLIENT_TIMEOUT)
        _expect(connection.has_read.wait(lab.CLIENT_TIMEOUT), "the server never read b'hel'")
        try:
            client.sendall(b"lo\n")
            reply = lab.recv_all(client, reset_ends=True)
        except OSError as error:
            reply = f"{type(error).__name__}"
    _expect(reply == b"HELLO\n", f"the client sent b'hel', then (once the server had read "
            f"it) b'lo\\n', and got {reply!r} instead of b'HELLO\\n': one recv() returns "
            "what has arrived so far, here half the line")


# --- Lab 4: a forked child that returns -------------------------------------------

def _lab04_child_ends(students: Students) -> None:
    class Server(students["ForkPerRequestServer"]):
        block_on_close = False  # the test looks for a child left running itself

    server = Server(lab.LOCALHOST, _Pid)
    with lab.background_server(server, POLL_INTERVAL):
        first = _reply(server.server_address, b"who?\n")
    _expect(first and first.startswith(b"served by pid"), f"the first client got {first!r}")
    late = _reply(server.server_address, b"who?\n")
    _expect(late == b"", f"after the server was shut down and closed, a new client still got "
            f"{late!r}: the child that served the first request ({first!r}) went on running "
            "the server's loop. See the lab's hints")


# --- Lab 5: a lost update without a lock ------------------------------------------

class _RacingVisits(dict):
    """The visits; the first two reads of a name wait for each other (the worst timing)."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__()
        self._barrier = barrier
        self._reads = itertools.count()

    def _worst_timing(self) -> None:
        if next(self._reads) < 2:
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait(RACE_WINDOW)

    def get(self, key: Any, default: Any = None) -> Any:
        value = super().get(key, default)
        self._worst_timing()
        return value

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)
        self._worst_timing()
        return value


def _lab05_no_lost_visits(students: Students) -> None:
    barrier = threading.Barrier(2)

    class Visits(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True

        def __init__(self, *args: Any) -> None:
            self.visits = _RacingVisits(barrier)
            self.visits_lock = _ContentionDetectingLock(barrier)
            super().__init__(*args)

    server = Visits(lab.LOCALHOST, students["VisitHandler"])
    replies: list[bytes | None] = []
    with lab.background_server(server, POLL_INTERVAL):
        # A fix with a lock of its own (not visits_lock) makes the first reader wait out
        # RACE_WINDOW: the clients wait that much longer.
        clients = [lab.run_in_thread(lambda: replies.append(_reply(
                       server.server_address, b"ada\n", lab.CLIENT_TIMEOUT + RACE_WINDOW)))
                   for _ in range(2)]
        for client in clients:
            client.join(lab.CLIENT_TIMEOUT + RACE_WINDOW)
    count = dict.get(server.visits, b"ada")
    _expect(count == 2 and len(replies) == 2 and set(replies) == {b"visit 1\n", b"visit 2\n"},
            f"two clients named ada at the same time got {replies!r} and left "
            f"visits[b'ada'] = {count!r} instead of visit 1, visit 2 and a count of 2: a "
            "visit was lost. See the lab's hints")


# --- Lab 6: a missing shutdown(SHUT_WR) -------------------------------------------

def _lab06_reply_comes(students: Students) -> None:
    class WordCounter(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True  # a handler still waiting cannot hold the test

    with lab.background_server(WordCounter(lab.LOCALHOST, _WordCount), POLL_INTERVAL) as server:
        try:
            count = students["count_words"](server.server_address, b"one two three\n",
                                            timeout=EX16_PROMPT)
        except TimeoutError:
            count = "a TimeoutError"
    _expect(count == 3, f"count_words(address, b'one two three\\n') gave {count} instead "
            f"of 3 within {EX16_PROMPT:g} s: the server reads until end-of-file, and "
            "the client waits for the reply. Who is waiting for whom?")


# --- Lab 7: shutdown() from the loop's own thread ---------------------------------

def _lab07_stop_request(students: Students) -> None:
    server = socketserver.TCPServer(lab.LOCALHOST, students["StopHandler"])
    loop = lab.run_in_thread(server.serve_forever, "serve_forever")
    try:
        with lab.connect(server.server_address) as client:
            client.sendall(b"stop\n")
            answer = lab.recv_line(client)
            loop.join(EX16_PROMPT)
    finally:
        server.server_close()
    _expect(answer == b"stopping\n", f"b'stop\\n' got {answer!r} instead of b'stopping\\n'")
    _expect(not loop.is_alive(), f"{EX16_PROMPT:g} s after b'stop\\n', "
            "serve_forever() was still running, with no error: the server hangs instead of "
            "stopping. See the lab's hints")


# --- Lab 8: a fixed port ----------------------------------------------------------

def _lab08_two_servers(students: Students) -> None:
    servers = []
    try:
        for number in (1, 2):
            try:
                servers.append(students["start_server"](_Upper))
            except OSError as error:
                raise AssertionError(
                    f"start_server() number {number} (the first one still open) raised "
                    f"{error!r}: a port can be bound by one socket at a time. Who chooses "
                    "the port?") from None
        addresses = [server.server_address for server in servers]
        _expect(addresses[0] != addresses[1], f"both servers have address {addresses[0]}")
        _expect(all(address[0] == "127.0.0.1" for address in addresses),
                f"the servers listen on {addresses}, not on 127.0.0.1 (loopback) only")
        for server in servers:
            with lab.background_server(server, POLL_INTERVAL):
                reply = _reply(server.server_address, b"hi\n")
            _expect(reply == b"HI\n", f"a server from start_server() answered {reply!r}")
    finally:
        for server in servers:
            server.server_close()


# --- Lab 9: a handler exception ---------------------------------------------------

def _lab09_error_reply(students: Students) -> None:
    class Recording(_KeepsHandlerErrors, socketserver.TCPServer):
        pass

    server = Recording(lab.LOCALHOST, students["SumHandler"])
    with lab.background_server(server, POLL_INTERVAL):
        good = _reply(server.server_address, b"1 2 3\n")
        bad = _reply(server.server_address, b"1 two 3\n")
    _expect(good == b"6\n", f"b'1 2 3\\n' got {good!r} instead of b'6\\n'")
    _expect(bool(bad) and bad.startswith(b"error") and bad.endswith(b"\n"),
            f"b'1 two 3\\n' got {bad!r} instead of a line starting with b'error'; the "
            f"server's handle_error() saw {server.errors!r}. The client only sees its "
            "connection closed; the traceback went to the server's stderr")
    _expect(not server.errors, f"handle_error() was called with {server.errors!r}")


# --- Lab 10: a Unix socket file left behind ---------------------------------------

def _lab10_file_removed(students: Students) -> None:
    service = students["UnixService"]
    with lab.temporary_socket_path() as path:
        with lab.background_server(service(path, _Upper), POLL_INTERVAL):
            reply = lab.tcp_request(path, b"hi\n")
        _expect(reply == b"HI\n", f"the service answered {reply!r}")
        if os.path.exists(path):
            try:
                service(path, _Upper).server_close()
                again = "started"
            except OSError as error:
                again = f"raised {error!r}"
            raise AssertionError(
                f"after server_close() the socket file {path} is still there, and the next "
                f"server on that path {again}. See the lab's hints")
        with lab.background_server(service(path, _Upper), POLL_INTERVAL):
            reply = lab.tcp_request(path, b"again\n")
        _expect(reply == b"AGAIN\n", f"a second service on the same path answered {reply!r}")


#: The tests of ex16, one per lab, in the labs' order.
EX16_TESTS: tuple[Test, ...] = (
    Test("lab01_second_client_served_at_once", _lab01_concurrent),
    Test("lab02_whole_reply_arrives", _lab02_whole_reply),
    Test("lab03_line_sent_in_pieces", _lab03_line_in_pieces),
    Test("lab04_child_ends_after_its_request", _lab04_child_ends, unavailable=_no_fork),
    Test("lab05_no_lost_visits", _lab05_no_lost_visits),
    Test("lab06_client_gets_its_reply", _lab06_reply_comes),
    Test("lab07_stop_request_stops_the_server", _lab07_stop_request),
    Test("lab08_two_servers_at_once", _lab08_two_servers),
    Test("lab09_bad_line_gets_an_error_reply", _lab09_error_reply),
    Test("lab10_socket_file_removed", _lab10_file_removed, unavailable=_no_unix_sockets),
)
#: What check("ex16", ...) takes: one name per lab, as the notebook calls it.
EX16_NAMES = {name: name for name in (
    "ConcurrentServer", "ReportHandler", "UpperHandler", "ForkPerRequestServer",
    "VisitHandler", "count_words", "StopHandler", "start_server", "SumHandler", "UnixService",
)}
