"""Seeded fuzzing of the request handlers' parsing, checked against small models.

Random inputs from the standard library's ``random``, seeded (set
SOCKSERVER_FUZZ_SEED to try other inputs; a failure names the seed and the
case, so it can be replayed):

- StreamRequestHandler.read_line(): random streams of lines (some too long,
  some without a final newline), cut in random pieces, with random limits
  and buffer sizes, must give exactly the lines of a model, then stop at
  the first line longer than max_line_length;
- the same streams sent to a running server;
- selector.LineHandler: random data in random chunks must come out as the
  same bytes, cut only after a newline or at max_line_length;
- datagrams of every size up to and over max_packet_size: each one up to
  it is echoed exactly; each longer one is reported to handle_error() with
  its first max_packet_size bytes, and never handled cut short.

The module prints how many inputs it tried at the end of the run.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import random
import socket
import sys
import threading
from collections.abc import Iterator

import pytest
from reporting import print_past_capture

import sockserver_lib
from sockserver_lib import (
    DatagramRequestHandler,
    LineTooLongError,
    OversizeDatagramError,
    StreamRequestHandler,
    TCPServer,
    UDPServer,
    lab,
)
from sockserver_lib.selector import LineHandler

SEED = int(os.environ.get("SOCKSERVER_FUZZ_SEED", "2024"))
PATIENCE = lab.CLIENT_TIMEOUT
#: Cases per fuzz test: enough to meet every edge (empty lines, exact
#: limits, a last line without newline), few enough to stay fast.
READ_LINE_CASES = 300
SERVER_CASES = 60
LINE_HANDLER_CASES = 1000
#: max_packet_size of the small datagram server; every size up to twice it is sent.
SMALL_PACKET = 64
TOO_LONG = "line too long"

SUMMARY: collections.Counter = collections.Counter()


# --- Models ---------------------------------------------------------------

def read_line_model(stream: bytes, limit: int | None) -> list:
    """What read_line() must return, call after call: each line, then TOO_LONG or the end.

    A line is at most *limit* bytes, its newline included; *limit* bytes
    without a newline are too long, even at the end of the stream.
    """
    lines, start = [], 0
    while start < len(stream):
        end = stream.find(b"\n", start) + 1 or len(stream)
        line = stream[start:end]
        if limit is not None and len(line) >= limit and not (
                len(line) == limit and line.endswith(b"\n")):
            return [*lines, TOO_LONG]
        lines.append(line)
        start = end
    return lines


def random_stream(rng: random.Random, limit: int | None) -> bytes:
    """Lines of random bytes around *limit* in length; the last may lack its newline."""
    longest = 3 * limit if limit else 2000
    lines = []
    for _ in range(rng.randint(0, 8)):
        body = rng.randbytes(rng.randint(0, longest)).replace(b"\n", b"")
        lines.append(body + b"\n")
    if lines and rng.random() < 0.5:
        lines[-1] = lines[-1][:-1]
    return b"".join(lines)


def random_pieces(rng: random.Random, data: bytes) -> list[bytes]:
    """*data* cut at random places (sizes 1 to 300 bytes)."""
    pieces, start = [], 0
    while start < len(data):
        size = rng.choice([1, 2, rng.randint(1, 300)])
        pieces.append(data[start:start + size])
        start += size
    return pieces


def test_the_read_line_model_on_the_edges():
    assert read_line_model(b"ab\ncd", None) == [b"ab\n", b"cd"]
    assert read_line_model(b"abc\n", 4) == [b"abc\n"]
    assert read_line_model(b"abc\nabcd\n", 4) == [b"abc\n", TOO_LONG]
    assert read_line_model(b"abcd", 4) == [TOO_LONG]  # 4 bytes, no newline
    assert read_line_model(b"abc", 4) == [b"abc"]
    assert read_line_model(b"", 1) == []
    assert read_line_model(b"\n\n", 1) == [b"\n", b"\n"]


# --- read_line() on a socket pair ------------------------------------------

def read_all_lines(sock: socket.socket, **settings) -> list:
    """Run a StreamRequestHandler on *sock* that calls read_line() until the end."""
    results: list = []

    class Reader(StreamRequestHandler):
        def handle(self):
            try:
                while line := self.read_line():
                    results.append(line)
            except LineTooLongError:
                results.append(TOO_LONG)

    handler = type("FuzzedReader", (Reader,), settings)
    handler(sock, ("fuzz", 0), None)
    return results


def send_in_pieces(sock: socket.socket, pieces: list[bytes]) -> threading.Thread:
    def send() -> None:
        with contextlib.suppress(OSError):  # the reader stopped at a long line
            for piece in pieces:
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)

    return lab.run_in_thread(send, "fuzz-sender")


@pytest.mark.timeout(60)
def test_read_line_gives_the_models_lines_for_random_streams_and_pieces():
    rng = random.Random(SEED)
    for case in range(READ_LINE_CASES):
        limit = rng.choice([None, 1, 2, 5, 16, 100])
        settings = {
            "max_line_length": limit,
            "rbufsize": rng.choice([-1, 0, 7, 8192]),
            "line_timeout": rng.choice([None, PATIENCE]),
            "timeout": PATIENCE,
        }
        stream = random_stream(rng, limit)
        reader_end, writer_end = socket.socketpair()
        with reader_end, writer_end:
            sender = send_in_pieces(writer_end, random_pieces(rng, stream))
            got = read_all_lines(reader_end, **settings)
            reader_end.shutdown(socket.SHUT_RDWR)  # frees a sender blocked on a full buffer
            sender.join(PATIENCE)
        assert got == read_line_model(stream, limit), f"seed {SEED}, case {case}, {settings}"
        SUMMARY.update(read_line_streams=1, stream_bytes=len(stream))


# --- the same streams, to a running server ------------------------------------

def echo_server(limit: int | None, errors: queue.Queue) -> TCPServer:
    class Echo(StreamRequestHandler):
        timeout = PATIENCE
        max_line_length = limit

        def handle(self):
            while line := self.read_line():
                self.wfile.write(line)

    class Server(TCPServer):
        def handle_error(self, request, client_address):
            errors.put(sys.exc_info()[1])

    return Server(lab.LOCALHOST, Echo)


def send_and_read(address, pieces: list[bytes]) -> bytes:
    """Send *pieces*, end the sending side, return the whole reply (up to a reset)."""
    with lab.connect(address) as sock:
        sender = send_in_pieces(sock, pieces)
        reply = lab.recv_all(sock, reset_ends=True)
        sender.join(PATIENCE)
        return reply


@pytest.mark.timeout(60)
@pytest.mark.parametrize("limit", [None, 3, 64])
def test_a_server_echoes_the_models_lines_and_drops_the_client_at_a_long_line(limit):
    rng = random.Random(f"{SEED}-server-{limit}")
    errors: queue.Queue = queue.Queue()
    with lab.background_server(echo_server(limit, errors)) as server:
        for case in range(SERVER_CASES):
            stream = random_stream(rng, limit)
            expected = read_line_model(stream, limit)
            reply = send_and_read(server.server_address, random_pieces(rng, stream))
            lines = [line for line in expected if line != TOO_LONG]
            assert reply == b"".join(lines), f"seed {SEED}, limit {limit}, case {case}"
            if TOO_LONG in expected:
                error = errors.get(timeout=PATIENCE)
                assert isinstance(error, LineTooLongError), f"case {case}: {error!r}"
            SUMMARY.update(server_streams=1, stream_bytes=len(stream))
    assert errors.empty()


# --- selector.LineHandler ---------------------------------------------------

def line_handler_pieces(data: bytes, chunks: list[bytes], limit: int) -> list[bytes]:
    """What a LineHandler with *limit* passes to line_received() for *chunks*."""
    got: list[bytes] = []

    class Collect(LineHandler):
        max_line_length = limit

        def line_received(self, line):
            got.append(line)

    handler = Collect(None, ("fuzz", 0), None)
    for chunk in chunks:
        handler.data_received(chunk)
    handler.eof_received()
    return got


def random_line_handler_case(rng: random.Random) -> tuple[bytes, list[bytes], int]:
    limit = rng.choice([1, 2, 5, 16, 100])
    data = random_stream(rng, limit)
    return data, random_pieces(rng, data), limit


@pytest.mark.timeout(60)
def test_line_handler_keeps_every_byte_and_cuts_only_at_newlines_or_its_limit():
    rng = random.Random(f"{SEED}-line-handler")
    for case in range(LINE_HANDLER_CASES):
        data, chunks, limit = random_line_handler_case(rng)
        got = line_handler_pieces(data, chunks, limit)
        where = f"seed {SEED}, case {case}, limit {limit}"
        assert b"".join(got) == data, where
        for number, piece in enumerate(got):
            assert piece, where
            assert b"\n" not in piece[:-1], where  # a newline only ends a piece
            last = number == len(got) - 1
            assert piece.endswith(b"\n") or len(piece) == limit or last, where
        SUMMARY.update(line_handler_chunkings=1, stream_bytes=len(data))


def test_line_handler_never_passes_more_than_max_line_length():
    rng = random.Random(f"{SEED}-line-handler")
    for _ in range(LINE_HANDLER_CASES):
        data, chunks, limit = random_line_handler_case(rng)
        assert all(len(piece) <= limit for piece in line_handler_pieces(data, chunks, limit))


# --- datagrams of every size ------------------------------------------------

class DatagramEcho(DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())


@contextlib.contextmanager
def datagram_server(family: int, max_packet_size: int,
                    errors: queue.Queue) -> Iterator[UDPServer]:
    """A datagram echo server whose handle_error() keeps the exceptions."""
    base = sockserver_lib.UnixDatagramServer if family != socket.AF_INET else UDPServer

    class Server(base):
        def server_bind(self):  # room for a burst of big datagrams
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            super().server_bind()

        def handle_error(self, request, client_address):
            errors.put(sys.exc_info()[1])

    Server.max_packet_size = max_packet_size
    with contextlib.ExitStack() as cleanup:
        address = lab.LOCALHOST if family == socket.AF_INET else cleanup.enter_context(
            lab.temporary_socket_path())
        yield cleanup.enter_context(lab.background_server(Server(address, DatagramEcho)))


@contextlib.contextmanager
def datagram_client(family: int) -> Iterator[socket.socket]:
    with contextlib.ExitStack() as cleanup:
        sock = cleanup.enter_context(socket.socket(family, socket.SOCK_DGRAM))
        sock.settimeout(PATIENCE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(lab.LOCALHOST if family == socket.AF_INET else cleanup.enter_context(
            lab.temporary_socket_path("client")))
        yield sock


def families() -> list:
    found = [pytest.param(socket.AF_INET, id="udp")]
    if hasattr(socket, "AF_UNIX"):
        found.append(pytest.param(socket.AF_UNIX, id="unix-dgram"))
    return found


def check_sizes(family: int, max_packet_size: int, sizes: list[int], rng: random.Random):
    """Send a datagram of each size; check its echo, or its report and no reply."""
    errors: queue.Queue = queue.Queue()
    with datagram_server(family, max_packet_size, errors) as server, \
            datagram_client(family) as client:
        for size in sizes:
            datagram = rng.randbytes(size)
            client.sendto(datagram, server.server_address)
            client.sendto(b"ping", server.server_address)  # the reply after any echo
            if size <= max_packet_size:
                assert client.recv(65536) == datagram, f"size {size}"
                assert client.recv(65536) == b"ping", f"size {size}: an extra reply"
                continue
            reply = client.recv(65536)
            assert reply == b"ping", f"size {size} was handled cut short: {reply[:20]!r}..."
            # the server reported it before it handled the ping
            error = errors.get_nowait()
            assert isinstance(error, OversizeDatagramError), f"size {size}: {error!r}"
            assert error.request[0] == datagram[:max_packet_size], f"size {size}"
            SUMMARY.update(oversize_datagrams=1)
    assert errors.empty()
    SUMMARY.update(datagrams=2 * len(sizes))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("family", families())
def test_datagrams_of_every_size_up_to_and_over_max_packet_size(family):
    rng = random.Random(f"{SEED}-datagrams-{family}")
    check_sizes(family, SMALL_PACKET, list(range(2 * SMALL_PACKET + 1)), rng)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("family", families())
def test_datagrams_around_the_default_max_packet_size_and_the_largest(family):
    rng = random.Random(f"{SEED}-big-datagrams-{family}")
    largest = UDPServer.max_packet_size
    sizes = [0, 1, largest - 1, largest, largest + 1, 2 * largest, 65507]
    if family != socket.AF_INET:
        sizes.append(100_000)  # a Unix datagram may be bigger than any UDP datagram
    check_sizes(family, largest, sizes, rng)


@pytest.fixture(scope="module", autouse=True)
def print_summary(request):
    """After the module: print how many inputs were tried."""
    yield
    if not SUMMARY:
        return
    figures = collections.Counter(SUMMARY)
    inputs = (figures["read_line_streams"] + figures["server_streams"]
              + figures["line_handler_chunkings"] + figures["datagrams"])
    line = (
        f"fuzz: {inputs} bad or random inputs tried (seed {SEED}): "
        f"{figures['read_line_streams']} streams to read_line(), {figures['server_streams']} "
        f"to a server, {figures['line_handler_chunkings']} chunkings to LineHandler, "
        f"{figures['stream_bytes']} bytes in all; {figures['datagrams']} datagrams, "
        f"{figures['oversize_datagrams']} oversize, every one reported"
    )
    print_past_capture(request.config, line)
