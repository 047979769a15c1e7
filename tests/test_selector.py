"""The event-loop server: one thread, a table of connections, selectors.

The 10,000-connection run is in benchmarks/compare_pools.py; here 500
connections prove the same thing in a fraction of a second.
"""

import os
import resource
import socket
import sys
import threading

import pytest

from sockserver_lib.lab import (
    CLIENT_TIMEOUT,
    LOCALHOST,
    background_server,
    close_with_reset,
    connect,
    recv_all,
    tcp_request,
    temporary_socket_path,
)
from sockserver_lib.selector import (
    EventHandler,
    LineEchoHandler,
    LineHandler,
    SelectorTCPServer,
)

needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX here")
TRANSPORTS = ["tcp", pytest.param("unix-stream", marks=needs_unix)]
MANY_CONNECTIONS = 500


def selector_server(transport, path, handler=LineEchoHandler):
    if transport == "tcp":
        return SelectorTCPServer(LOCALHOST, handler)
    from sockserver_lib.selector import SelectorUnixStreamServer

    return SelectorUnixStreamServer(path, handler)


def read_exactly(sock, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


class Recorder:
    """Collects (event, detail) pairs from handlers; lets a test wait for one."""

    def __init__(self):
        self.events = []
        self.changed = threading.Condition()

    def add(self, *event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, predicate):
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.events), CLIENT_TIMEOUT), (
                f"timed out; events so far: {self.events}"
            )

    def count(self, name):
        return sum(1 for event in self.events if event[0] == name)


def recording_server(recorder, handler_base=LineEchoHandler, **settings):
    """A SelectorTCPServer whose handlers and handle_error report to *recorder*."""

    class RecordingHandler(handler_base):
        def connection_made(self):
            recorder.add("made", self.client_address)
            return super().connection_made()

        def eof_received(self):
            recorder.add("eof", self.client_address)
            return super().eof_received()

        def connection_lost(self):
            recorder.add("lost", self.client_address)

    class Server(SelectorTCPServer):
        def handle_error(self, request, client_address):
            recorder.add("error", sys.exc_info()[0])

    for name, value in settings.items():
        setattr(Server, name, value)
    return Server(LOCALHOST, RecordingHandler)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_lines_are_echoed_whether_split_or_merged(transport):
    with temporary_socket_path() as path:
        with background_server(selector_server(transport, path)) as server:
            with connect(server.server_address) as client:
                client.sendall(b"hel")
                client.sendall(b"lo\n")
                assert read_exactly(client, 6) == b"hello\n"
                client.sendall(b"one\ntwo\nthr")
                assert read_exactly(client, 8) == b"one\ntwo\n"
                client.sendall(b"ee\n")
                assert read_exactly(client, 6) == b"three\n"

            assert tcp_request(server.server_address, b"last line, no newline") == (
                b"last line, no newline"
            )


@pytest.mark.timeout(30)
def test_one_thread_holds_many_connections_and_answers_each():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * MANY_CONNECTIONS + 100  # both ends live in this process
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed} descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    threads_before = set(threading.enumerate())
    clients = []
    try:
        with background_server(SelectorTCPServer(LOCALHOST, LineEchoHandler)) as server:
            clients = [connect(server.server_address) for _ in range(MANY_CONNECTIONS)]
            for number, client in enumerate(clients):
                client.sendall(b"%d\n" % number)
            for number, client in enumerate(clients):
                assert read_exactly(client, len(b"%d\n" % number)) == b"%d\n" % number

            assert len(server.connections) == MANY_CONNECTIONS
            new_threads = set(threading.enumerate()) - threads_before
            assert [thread.name for thread in new_threads] == ["serve_forever-SelectorTCPServer"]
    finally:
        for client in clients:
            client.close()
        if soft < needed:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(10)
def test_garbage_comes_back_byte_for_byte_and_long_lines_are_not_buffered():
    garbage = os.urandom(200_000)
    with background_server(SelectorTCPServer(LOCALHOST, LineEchoHandler)) as server:
        assert tcp_request(server.server_address, garbage) == garbage
        with connect(server.server_address) as client:
            client.sendall(b"x" * 3 * LineHandler.max_line_length)  # and no newline
            assert read_exactly(client, LineHandler.max_line_length) == (
                b"x" * LineHandler.max_line_length
            )


@pytest.mark.timeout(10)
def test_events_come_in_order_and_early_disconnects_leave_no_entry():
    recorder = Recorder()
    with background_server(recording_server(recorder)) as server:
        assert tcp_request(server.server_address, b"hi\n") == b"hi\n"
        connect(server.server_address).close()
        half_line = connect(server.server_address)
        half_line.sendall(b"no newline yet")
        recorder.wait_for(lambda events: recorder.count("made") == 3)
        close_with_reset(half_line)
        recorder.wait_for(lambda events: recorder.count("lost") == 3)

        assert [event[0] for event in recorder.events[:3]] == ["made", "eof", "lost"]
        assert server.connections == {}
        assert tcp_request(server.server_address, b"still fine\n") == b"still fine\n"


@pytest.mark.timeout(10)
def test_a_client_that_never_sends_does_not_block_the_others():
    with background_server(SelectorTCPServer(LOCALHOST, LineEchoHandler)) as server:
        with connect(server.server_address):
            assert tcp_request(server.server_address, b"served\n") == b"served\n"


class Greeter(EventHandler):
    """Greets on connect, fails on b"fail", echoes anything else."""

    def connection_made(self):
        return b"hello\n"

    def data_received(self, data):
        if data.startswith(b"fail"):
            raise ValueError("the handler failed on purpose")
        return data


@pytest.mark.timeout(10)
def test_a_failing_handler_goes_to_handle_error_and_only_its_connection_closes():
    recorder = Recorder()
    with background_server(recording_server(recorder, handler_base=Greeter)) as server:
        with connect(server.server_address) as bystander:
            assert read_exactly(bystander, 6) == b"hello\n"
            with connect(server.server_address) as failing:
                assert read_exactly(failing, 6) == b"hello\n"
                failing.sendall(b"fail")
                assert recv_all(failing) == b""
            bystander.sendall(b"still here")
            assert read_exactly(bystander, 10) == b"still here"

    assert ("error", ValueError) in recorder.events


class Flood(LineHandler):
    """Answers each line with FLOOD_SIZE bytes, and remembers the lines."""

    FLOOD_SIZE = 4_000_000

    def connection_made(self):
        # small kernel buffers: loopback autotuning could otherwise take a
        # whole flood, leaving no output pending in the table
        self.connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)

    def line_received(self, line):
        self.server.lines_seen.append(line)
        return b"y" * self.FLOOD_SIZE


#: Bytes of kernel buffer on each end of the flooded connection.
SMALL_BUFFER = 65536


def small_buffered_client(address) -> socket.socket:
    """A client with a small receive buffer, set before connect() as it must be."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.settimeout(5)
    sock.connect(address)
    return sock


@pytest.mark.timeout(20)
def test_a_client_that_does_not_read_its_answers_is_not_read_from():
    class Server(SelectorTCPServer):
        max_pending_output = 65536
        lines_seen = []

    with background_server(Server(LOCALHOST, Flood)) as server:
        with small_buffered_client(server.server_address) as flooded:
            flooded.sendall(b"a\n")
            read_exactly(flooded, 1)  # the server has answered "a" and has output pending
            flooded.sendall(b"b\n")
            # two full round trips of another client: the loop has looked at every
            # ready socket since "b" arrived
            for _ in range(2):
                with connect(server.server_address) as other:
                    other.sendall(b"\n")
                    read_exactly(other, Flood.FLOOD_SIZE)

            assert server.lines_seen == [b"a\n", b"\n", b"\n"]

            read_exactly(flooded, 2 * Flood.FLOOD_SIZE - 1)  # drain: "b" is read at last
            assert server.lines_seen[-1] == b"b\n"


@pytest.mark.timeout(10)
def test_shutdown_keeps_the_table_and_server_close_ends_every_connection():
    recorder = Recorder()
    server = recording_server(recorder)
    try:
        with connect(server.server_address) as client:
            loop = start_loop(server)
            assert ask(client, b"first\n") == b"first\n"
            server.shutdown()
            loop.join(CLIENT_TIMEOUT)
            assert len(server.connections) == 1  # the loop stopped, the connection waits

            loop = start_loop(server)
            assert ask(client, b"second\n") == b"second\n"
            server.shutdown()
            loop.join(CLIENT_TIMEOUT)
            server.server_close()

            assert recv_all(client) == b""
    finally:
        server.server_close()
    assert recorder.count("lost") == 1
    assert server.connections == {}


def start_loop(server):
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    return loop


def ask(sock, line):
    sock.sendall(line)
    return read_exactly(sock, len(line))
