"""The client side of the latency lab: simulated clients and the load-generator process.

The load generator runs in its own fresh process, so its client threads
never compete with the server under test for a GIL.  Each client thread
does its requests one after another (a closed loop: a client sends its next
request when the previous reply has arrived), and times each one with
time.monotonic_ns(), the clock the server process reads too.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..lab import family_of
from ._server import PROCESS_TIMEOUT, stop_process

#: Longest reply line the client accepts, in bytes.
MAX_REPLY = 1024
#: Seconds between "still alive" messages from a busy load generator.
HEARTBEAT_INTERVAL = 1.0
#: How a slow reader reads a large reply: this many bytes at a time, with a
#: pause between reads, through a receive buffer this small (see
#: LARGE_REPLY_SEND_BUFFER on the server's side).
SLOW_READ_CHUNK = 16 * 1024
SLOW_READER_BUFFER = 16 * 1024
#: What special clients do differently: nothing but their request line, send
#: it in pieces with pauses, or read their (large) reply in pieces with pauses.
BEHAVIOURS = ("", "slow-send", "slow-read")


@dataclass(frozen=True)
class Measurement:
    """One timed burst of requests, as the load generator runs it.

    *concurrency* clients share *requests* requests; each sends
    *request_line*, which asks for *work_ms* of work (0 for none; kept for
    the record).  The first *special_clients* of them are special: they send
    *special_line* instead (if given), and behave as *special_behaviour*
    says (BEHAVIOURS): "slow-send" sends the request in *pieces* parts with
    *pause_ms* between them; "slow-read" reads its reply SLOW_READ_CHUNK
    bytes at a time, *pause_ms* apart.  *persistent* clients keep one
    connection for all their requests; otherwise each request opens its
    own.  Every socket operation waits at most *timeout* seconds.  A
    *warmup* burst is run but not reported.
    """

    workload: str
    concurrency: int
    repetition: int
    requests: int
    request_line: bytes
    work_ms: float = 0.0
    special_clients: int = 0
    special_line: bytes = b""
    special_behaviour: str = ""
    pieces: int = 1
    pause_ms: float = 0.0
    persistent: bool = False
    timeout: float = 30.0
    warmup: bool = False

    def line_of(self, special: bool) -> bytes:
        """The request line a special or an ordinary client sends."""
        return self.special_line if special and self.special_line else self.request_line

    def slow_steps(self) -> int:
        """How many pauses a special client may make in one request, at most."""
        if self.special_behaviour == "slow-send":
            return self.pieces
        if self.special_behaviour == "slow-read":
            return math.ceil(expected_payload(self.line_of(True)) / SLOW_READ_CHUNK)
        return 0

    def longest_request_s(self) -> float:
        """Seconds after which a request has certainly timed out."""
        steps = self.slow_steps()
        return self.timeout * (steps + 2) + steps * self.pause_ms / 1000


def expected_payload(request_line: bytes) -> int:
    """How many bytes come before the reply line: the size a "big" request asks for."""
    if request_line.startswith(b"big "):
        return int(request_line.split()[1])
    return 0


def split_evenly(data: bytes, pieces: int) -> list:
    """Cut *data* into *pieces* parts of nearly equal length (none empty)."""
    pieces = max(1, min(pieces, len(data)))
    size, extra = divmod(len(data), pieces)
    parts, start = [], 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        parts.append(data[start:end])
        start = end
    return parts


def share(total: int, clients: int) -> list:
    """How many of *total* requests each of *clients* does (differing by at most 1)."""
    base, extra = divmod(total, clients)
    return [base + (1 if index < extra else 0) for index in range(clients)]


def parse_reply(reply: bytes) -> dict:
    """The server's times and worker from a TimedHandler reply line."""
    accepted, started, finished, worker = reply.decode("ascii").rstrip("\n").split(" ", 3)
    return {
        "accepted": int(accepted),
        "started": int(started),
        "finished": int(finished),
        "worker": worker,
    }


class LoadClient:
    """One simulated client: it sends requests one after another and times each."""

    def __init__(self, number: int, address: tuple, measurement: Measurement):
        self.number = number
        self.address = address
        self.measurement = measurement
        self.special = number < measurement.special_clients
        self.behaviour = measurement.special_behaviour if self.special else ""
        self.line = measurement.line_of(self.special)
        self.sock: socket.socket | None = None

    def request(self) -> dict:
        """Do one round trip; return its times, or its error (never raise OSError)."""
        record: dict = {"client": self.number, "special": self.special, "worker": None,
                        "error": None}
        record["sent"] = time.monotonic_ns()
        try:
            record.update(parse_reply(self._round_trip()))
        except (OSError, ValueError) as error:
            record["error"] = f"{type(error).__name__}: {error}"
            self.close()
        record["received"] = time.monotonic_ns()
        if not self.measurement.persistent:
            self.close()
        return record

    def _round_trip(self) -> bytes:
        if self.sock is None:
            self.sock = self._connect()
        self._send_request()
        if not self.measurement.persistent:
            self.sock.shutdown(socket.SHUT_WR)  # the server's next read sees end-of-file
        self._read_payload(expected_payload(self.line))
        return self._read_reply()

    def _connect(self) -> socket.socket:
        sock = socket.socket(family_of(self.address), socket.SOCK_STREAM)
        try:
            sock.settimeout(self.measurement.timeout)
            if self.behaviour == "slow-read":  # before connect(), so the window starts small
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_BUFFER)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(self.address)
        except BaseException:
            sock.close()
            raise
        return sock

    def _pause(self) -> None:
        # A slow client on purpose (think of a phone on a bad network);
        # nothing is waited for, so sleeping is the honest model.
        time.sleep(self.measurement.pause_ms / 1000)

    def _send_request(self) -> None:
        slow = self.behaviour == "slow-send"
        pieces = split_evenly(self.line, self.measurement.pieces) if slow else [self.line]
        for index, piece in enumerate(pieces):
            if index:
                self._pause()
            self.sock.sendall(piece)

    def _read_payload(self, size: int) -> None:
        """Read and drop the *size* bytes sent before the reply line."""
        slow = self.behaviour == "slow-read"
        while size > 0:
            chunk = self.sock.recv(min(size, SLOW_READ_CHUNK if slow else 1 << 20))
            if not chunk:
                raise ConnectionError("the server closed the connection in the middle of a reply")
            size -= len(chunk)
            if slow:
                self._pause()

    def _read_reply(self) -> bytes:
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = self.sock.recv(MAX_REPLY)
            if not chunk:
                raise ConnectionError("the server closed the connection without replying")
            reply += chunk
            if len(reply) > MAX_REPLY:
                raise ValueError("the reply line is too long")
        return reply

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _run_client(client: LoadClient, count: int, go: threading.Event, results: queue.Queue):
    try:
        if go.wait(client.measurement.timeout):
            for _ in range(count):
                results.put(client.request())
    finally:
        client.close()


def run_measurement(
    address: tuple, measurement: Measurement, on_request: Callable[[], Any] = lambda: None
) -> dict:
    """Run *measurement* against the server at *address*; return its requests.

    The result has the measurement's fields, ``elapsed_ms`` (from the start
    to the last reply) and ``requests``: one dict per request with
    ``client`` (a number), ``special`` (True for a special client), ``worker``,
    ``error`` and the times ``sent``, ``accepted``,
    ``started``, ``finished``, ``received`` in ms since the start.
    *on_request* is called after each request (a sign of life).
    """
    results: queue.Queue = queue.Queue()
    go = threading.Event()
    threads = [
        threading.Thread(
            target=_run_client,
            args=(LoadClient(number, address, measurement), count, go, results),
            name=f"client-{number}",
            daemon=True,
        )
        for number, count in enumerate(share(measurement.requests, measurement.concurrency))
    ]
    for thread in threads:
        thread.start()
    start = time.monotonic_ns()
    go.set()
    records = [_next_result(results, measurement, on_request) for _ in range(measurement.requests)]
    for thread in threads:
        thread.join(measurement.timeout)
    requests = [_relative_to(start, record) for record in records]
    return {
        "workload": measurement.workload,
        "concurrency": measurement.concurrency,
        "repetition": measurement.repetition,
        "work_ms": measurement.work_ms,
        "elapsed_ms": max((r["received"] for r in requests), default=0.0),
        "requests": requests,
    }


def _next_result(results: queue.Queue, measurement: Measurement, on_request) -> dict:
    try:
        record = results.get(timeout=measurement.longest_request_s())
    except queue.Empty:
        raise TimeoutError(
            "a client thread neither finished nor failed a request in "
            f"{measurement.longest_request_s():.0f} s"
        ) from None
    on_request()
    return record


TIME_FIELDS = ("sent", "accepted", "started", "finished", "received")


def _relative_to(start_ns: int, record: dict) -> dict:
    """*record* with its times in ms since *start_ns* (None stays None)."""
    relative = dict(record)
    for field in TIME_FIELDS:
        if relative.get(field) is not None:
            relative[field] = round((relative[field] - start_ns) / 1e6, 3)
        else:
            relative[field] = None
    return relative


class _Heartbeat:
    """Send a sign of life through *sink* at most every HEARTBEAT_INTERVAL seconds."""

    def __init__(self, sink):
        self.sink = sink
        self.last = time.monotonic()

    def __call__(self):
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_INTERVAL:
            self.sink.send(("alive", None))
            self.last = now


def generate_load_in_this_process(address: tuple, plan: list, sink: Any) -> None:
    """Body of the load-generator process: run *plan*, send each result through *sink*.

    Messages are ``(kind, payload)``: ``("measurement", result)`` for each
    measurement that is not a warm-up, ``("alive", None)`` while busy,
    then ``("done", None)``, or ``("failed", traceback_text)``.
    """
    try:
        heartbeat = _Heartbeat(sink)
        for measurement in plan:
            result = run_measurement(address, measurement, heartbeat)
            if not measurement.warmup:
                sink.send(("measurement", result))
        sink.send(("done", None))
    except KeyboardInterrupt:
        pass  # Ctrl-C reached the whole process group; the coordinator cleans up
    except BaseException:
        with contextlib.suppress(OSError):
            sink.send(("failed", traceback.format_exc()))
    finally:
        sink.close()


@contextlib.contextmanager
def running_load(
    address: tuple, plan: list, silence_limit: float, timeout: float = PROCESS_TIMEOUT
) -> Iterator[Iterator[dict]]:
    """Run *plan* in a load-generator process; yield an iterator of its results.

    The iterator raises TimeoutError if the generator is silent for
    *silence_limit* seconds, RuntimeError if it fails.  However the block
    is left, the process is stopped and joined.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=generate_load_in_this_process,
        args=(address, plan, sender),
        name="bench-load",
        daemon=True,
    )
    process.start()
    sender.close()  # keep only the child's end open, so its death reads as EOF
    try:
        yield _results(receiver, silence_limit)
    finally:
        receiver.close()
        stop_process(process, timeout)


def _results(receiver, silence_limit: float) -> Iterator[dict]:
    while True:
        if not receiver.poll(silence_limit):
            raise TimeoutError(f"the load generator made no progress for {silence_limit:.0f} s")
        try:
            kind, payload = receiver.recv()
        except EOFError:
            raise RuntimeError("the load generator process exited unexpectedly") from None
        if kind == "measurement":
            yield payload
        elif kind == "done":
            return
        elif kind == "failed":
            raise RuntimeError("the load generator failed:\n" + payload)
