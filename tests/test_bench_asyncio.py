"""The latency lab's asyncio server kind: the lab's protocol on asyncio streams, in one thread.

The one timing claim tested is qualitative and holds on any machine: four
clients whose requests each wait io_ms are served in about io_ms, not
4 x io_ms, because the waits overlap in the loop's one thread; the test asks
only for less than 2 x io_ms.
"""

import multiprocessing
import os
import socket
import threading
import time

import pytest

from sockserver_lib import bench
from sockserver_lib.bench import Settings, _load, _server
from sockserver_lib.bench._asyncio import AsyncioTCPServer, TimedStreamHandler
from sockserver_lib.lab import (
    CLIENT_TIMEOUT,
    LOCALHOST,
    background_server,
    close_with_reset,
    connect,
    recv_all,
    recv_line,
)

#: A run small enough for a test; io_ms is long enough to stand out from the overhead.
TINY = Settings(
    servers=("asyncio",), workloads=("none", "io", "cpu", "slow-reader"), concurrency=(1, 4),
    requests=8, rounds=1, repeats=1, warmup=False, io_ms=20.0, cpu_ms=1.0, slow_pause_ms=2.0,
    timeout=10.0,
)
#: Seconds a stop may take: well under HANDLER_TIMEOUT, so a stop that waited
#: for a silent client to time out would fail.
PROMPTLY = 5.0
assert PROMPTLY < _server.HANDLER_TIMEOUT


@pytest.fixture(scope="module")
def tiny_run():
    """The asyncio kind, four workloads, 1 and 4 clients, once."""
    return bench.run_lab(TINY)


def ask(sock: socket.socket, line: bytes) -> dict:
    """Send one request line on *sock*; return its reply, parsed."""
    sock.sendall(line)
    return _load.parse_reply(recv_line(sock))


def request(address, line: bytes) -> dict:
    """One request on a connection of its own, as a per-request client makes it."""
    with connect(address) as sock:
        return ask(sock, line)


# --- in the lab --------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_the_asyncio_kind_is_registered_after_the_selector_kind():
    kinds = list(bench.SERVER_KINDS)

    assert bench.SERVER_KINDS["asyncio"] is AsyncioTCPServer
    assert kinds.index("asyncio") == kinds.index("selector") + 1


@pytest.mark.timeout(120)
def test_a_tiny_run_measures_every_cell_without_errors_and_leaves_no_process(tiny_run):
    cells = [(row["workload"], row["concurrency"]) for row in tiny_run.summary]

    assert cells == [("none", 1), ("none", 4), ("io", 1), ("io", 4), ("cpu", 1), ("cpu", 4),
                     ("slow-reader", 4)]  # a slow reader alone would have nobody to slow down
    for row in tiny_run.summary:
        assert row["server"] == "asyncio"
        assert row["errors"] == 0, row
        assert row["requests"] == TINY.requests_per_measurement(row["concurrency"])
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(120)
def test_every_request_is_timed_in_order_on_the_shared_clock(tiny_run):
    assert tiny_run.requests
    for record in tiny_run.requests:
        assert record["error"] is None, record
        times = [record[field] for field in _load.TIME_FIELDS]
        assert times == sorted(times), record  # sent <= accepted <= started <= finished <= received


@pytest.mark.timeout(120)
def test_one_thread_of_one_server_process_serves_every_request(tiny_run):
    workers = {record["worker"] for record in tiny_run.requests}

    assert len(workers) == 1, workers
    pid, thread = workers.pop().split(":")
    assert pid != str(os.getpid())  # the server ran in a process of its own
    assert thread == "MainThread"


@pytest.mark.timeout(120)
def test_the_waits_of_io_requests_overlap_in_one_thread(tiny_run):
    row = tiny_run.row("asyncio", "io", 4)

    assert row["service_ms"] >= TINY.io_ms  # each handler did wait io_ms...
    assert row["p50_ms"] < 2 * TINY.io_ms  # ...but four of them did not wait in turn


# --- the server in this process ----------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_persistent_connection_is_served_request_after_request():
    with background_server(AsyncioTCPServer(LOCALHOST)) as server:
        with connect(server.server_address) as sock:
            first = ask(sock, b"none 0\n")
            second = ask(sock, b"io 2\n")

    assert first["accepted"] <= first["started"] <= first["finished"]
    assert second["accepted"] == second["started"]  # no accept for a later request
    assert second["finished"] - second["started"] >= 2_000_000
    assert first["worker"] == second["worker"]


@pytest.mark.timeout(20)
def test_a_big_reply_sends_its_bytes_before_the_reply_line():
    with background_server(AsyncioTCPServer(LOCALHOST)) as server:
        with connect(server.server_address) as sock:
            sock.sendall(b"big 100000\n")
            sock.shutdown(socket.SHUT_WR)
            data = recv_all(sock)

    assert data[:100_000] == b"." * 100_000
    assert _load.parse_reply(data[100_000:])["finished"] > 0


def send_and_close(address, data: bytes) -> bytes:
    """Send *data*, close the sending side; return what comes back until the server closes."""
    with connect(address) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock, reset_ends=True)


def reset_mid_line(address, data: bytes) -> bytes:
    """Send *data*, then reset the connection, as a crashed client would."""
    sock = connect(address)
    sock.sendall(data)
    close_with_reset(sock)
    return b""


#: Clients that misbehave: how, what they send, and whether the server reports
#: it (a bad request is the handler's failure, as in socketserver; a client
#: that goes away is not).
BAD_CLIENTS = {
    "garbage": (send_and_close, b"hello there, server\n", True),
    "unknown-work": (send_and_close, b"disk 5\n", True),
    "too-long": (send_and_close, b"x" * (4 * _server.MAX_REQUEST_LINE), True),
    "closes-mid-line": (send_and_close, b"none", False),
    "resets-mid-line": (reset_mid_line, b"none", False),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("behaviour", BAD_CLIENTS)
def test_a_bad_client_loses_its_connection_and_the_server_carries_on(behaviour, capsys):
    misbehave, data, reported = BAD_CLIENTS[behaviour]
    with background_server(AsyncioTCPServer(LOCALHOST)) as server:
        assert misbehave(server.server_address, data) == b""  # closed without a reply
        reply = request(server.server_address, b"none 0\n")

    assert reply["accepted"] <= reply["started"] <= reply["finished"]
    err = capsys.readouterr().err
    if reported:  # reported before the connection was closed
        assert "Exception occurred during processing of request" in err
    else:  # a client that goes away is no handler's failure
        assert "Exception occurred" not in err


@pytest.mark.timeout(20)
def test_a_silent_client_is_dropped_after_the_handler_timeout():
    class Impatient(TimedStreamHandler):
        timeout = 0.2

    with background_server(AsyncioTCPServer(LOCALHOST, Impatient)) as server:
        with connect(server.server_address, timeout=PROMPTLY) as sock:
            assert sock.recv(1) == b""  # closed by the server, not timed out here


@pytest.mark.timeout(20)
def test_a_client_that_never_reads_its_large_reply_is_cut_off_and_the_server_carries_on():
    cut_off = threading.Event()

    class Impatient(TimedStreamHandler):
        timeout = 0.2

        async def send(self, data):
            try:
                await super().send(data)
            except (ConnectionError, OSError):
                cut_off.set()
                raise

    with background_server(AsyncioTCPServer(LOCALHOST, Impatient)) as server:
        with connect(server.server_address, timeout=PROMPTLY) as stuck:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.sendall(b"big %d\n" % (8 * 1024 * 1024))  # far more than the buffers hold
            reply = request(server.server_address, b"none 0\n")  # others are still served
            assert cut_off.wait(PROMPTLY)  # the stuck one is cut off after its timeout
    assert reply["accepted"] <= reply["started"] <= reply["finished"]


@pytest.mark.timeout(30)
def test_shutdown_from_another_thread_ends_serve_forever_promptly():
    server = AsyncioTCPServer(LOCALHOST)
    returned = threading.Event()

    def serve():
        server.serve_forever()
        returned.set()

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    try:
        with connect(server.server_address, timeout=PROMPTLY) as silent, \
                connect(server.server_address, timeout=PROMPTLY) as waiting:
            waiting.sendall(b"io 60000\n")  # a minute of waiting
            request(server.server_address, b"none 0\n")  # it serves
            stopper = threading.Thread(target=server.shutdown, daemon=True)
            stopper.start()
            stopper.join(PROMPTLY)

            assert not stopper.is_alive()
            assert returned.wait(PROMPTLY)  # serve_forever() returned
            assert silent.recv(1) == b""  # open connections were closed
            assert waiting.recv(1) == b""
    finally:
        server.shutdown()
        serving.join(PROMPTLY)
        server.server_close()
    assert not serving.is_alive()


@pytest.mark.timeout(30)
def test_the_listening_socket_outlives_shutdown_until_server_close():
    with AsyncioTCPServer(LOCALHOST) as server:
        server.shutdown()  # asked before serving: the next serve_forever() returns at once
        server.serve_forever()
        with background_server(server):  # and a later one serves the same socket
            reply = request(server.server_address, b"none 0\n")

    assert reply["finished"] > 0
    assert server.socket.fileno() == -1


# --- the server process ------------------------------------------------------------------


def leave_idle(sock: socket.socket) -> None:
    """Nothing: the connection stays open and silent."""


def start_computing(sock: socket.socket) -> None:
    """Make the server compute for about a second; return as it starts.

    Both lines go at once: the first reply is written just before the
    handler reads the second line, already there, and computes, so a
    signal now comes while the loop is blocked in a coroutine.
    """
    sock.sendall(b"none 0\n" + f"cpu {bench.calibrate_cpu(1000)}\n".encode())
    assert recv_line(sock)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("client", [leave_idle, start_computing], ids=["idle", "computing"])
def test_sigterm_stops_the_server_process_promptly_and_cleanly(client):
    with _server.running_server(AsyncioTCPServer) as server:
        with connect(server.address, timeout=PROMPTLY + CLIENT_TIMEOUT) as sock:
            client(sock)
            start = time.monotonic()
            _server.stop_process(server.process, timeout=PROMPTLY)  # SIGTERM, or a kill after

            assert server.process.exitcode == 0  # it stopped itself: not killed
            assert time.monotonic() - start < PROMPTLY
    assert multiprocessing.active_children() == []
