"""The fault and load suite: every server kind, thousands of requests, faults injected.

Each kind's server runs in a fresh Python process -- this file run as a
script, see serve() -- while the clients run here.  A fresh process is
needed for the forking and prefork servers (forking pytest's threaded
process is fragile), and it lets the server prove by itself, once closed,
that every descriptor, thread and child process it made is gone.

One run per kind (test_kind_survives_faults_load_and_shutdown), in order:

1. before serve_forever(): shutdown() twice, then serve_forever() returns
   at once, as documented;
2. silent clients that never send: the handler's idle timeout drops them
   (the selector server keeps them, for a table entry each, meanwhile);
3. the load: LOAD_REQUESTS requests from CLIENTS threads, good clients
   mixed with clients that close early, send half a line, send a megabyte
   of garbage, reset the connection, leave before the reply, ask the
   handler to raise, or send datagrams of every size, oversize included;
4. a last good request: the server still answers;
5. shutdown under load: a request asks the server to stop while good
   clients keep coming; shutdown() twice from another thread, then
   server_close() twice: each returns promptly;
6. the server's report: every exception raised on purpose and every
   oversize datagram reached handle_error() once; no other unexpected
   error; descriptors as before, no thread, no child process left.

Then, for each TCP kind, out of descriptors (test_out_of_descriptors_...):
under a low RLIMIT_NOFILE the process that accepts (a prefork server's one
worker) runs out of descriptors just after accepting a client; accept()
then fails (EMFILE) while another client waits: the server backs off
instead of spinning, does not crash, and serves that client once
descriptors are free.  Datagram servers need no descriptor per request.

The module prints its figures (requests, faults, bad inputs, lost) at the
end of the run; set SOCKSERVER_FAULT_SUMMARY=path to also get them as JSON.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import json
import os
import queue
import random
import selectors
import socket
import struct
import sys
import threading
import warnings
from dataclasses import dataclass
from time import monotonic
from typing import Any

import pytest
from reporting import print_past_capture

try:
    import resource
except ImportError:  # Windows: no rlimits
    resource = None

import sockserver_lib
from sockserver_lib import (
    DatagramRequestHandler,
    LineHandler,
    LineTooLongError,
    OversizeDatagramError,
    StreamRequestHandler,
    contract,
    lab,
)
from sockserver_lib.contract.harness import _children
from sockserver_lib.contract.leaks import _open_descriptors

# --- Settings -------------------------------------------------------------

#: Seed of the load's random schedule and payloads (SOCKSERVER_FAULT_SEED overrides).
SEED = int(os.environ.get("SOCKSERVER_FAULT_SEED", "7"))
#: Requests in the load phase of each kind, and the client threads sending them.
LOAD_REQUESTS = 320
CLIENTS = 4
#: Clients that connect and never send (stream kinds).
SILENT_CLIENTS = 2
#: Clients per stream kind that send a megabyte of garbage without a newline.
MEGABYTE_CLIENTS = 2
MEGABYTE = 1 << 20
#: The handlers' limits: idle timeout (seconds; far longer than a good client
#: ever waits between connecting and sending, even on a busy machine) and longest line.
IDLE_TIMEOUT = 1.0
MAX_LINE = 64 * 1024
#: Good requests sent during the shutdown before it is asked for.
TAIL_BEFORE_STOP = 20
#: A call that returns within this many seconds did not hang.
PROMPT = 3.0
#: Seconds a client waits for the server (every socket has a timeout).
PATIENCE = lab.CLIENT_TIMEOUT
#: Seconds a script may take to start, or to end once asked to stop.
SCRIPT_TIMEOUT = 30
#: How long the server's process has no free descriptor (out-of-descriptors test).
FULL_WINDOW = 0.3
#: The soft RLIMIT_NOFILE of the out-of-descriptors scripts.
LOW_NOFILE = 128
#: Bytes that are neither a newline nor text.
GARBAGE = bytes(range(11, 256))
#: What a client's send(), recv() or shutdown() raises once the server has reset it.
PEER_GONE = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN})
#: The requests that make a handler do something other than echo.
COMMANDS = (b"raise", b"stop-now", b"attempts")


@dataclass(frozen=True)
class FaultKind(contract.Kind):
    """A server kind under test, with extra class settings: (name, value) pairs."""

    settings: tuple = ()

    @property
    def id(self) -> str:
        extra = "".join(f"-{name}={value}" for name, value in self.settings)
        return f"{super().id}{extra}"

    @property
    def idle_timeout_drops_silent_clients(self) -> bool:
        return self.is_stream and self.concurrency != "selector"


KINDS = (
    FaultKind("tcp", "sync"),
    FaultKind("tcp", "threading"),
    FaultKind("tcp", "forking"),
    FaultKind("tcp", "threadpool", (("pool_size", 4),)),
    FaultKind("tcp", "prefork", (("pool_size", 2),)),
    FaultKind("tcp", "selector"),
    FaultKind("unix-stream", "threading", (("max_threads", 4),)),
    FaultKind("udp", "sync"),
    FaultKind("udp", "threading"),
    FaultKind("udp", "forking"),
    FaultKind("unix-dgram", "threading", (("max_threads", 2),)),
)
#: Every TCP kind; the prefork server with one worker, so that the worker
#: that runs out of descriptors is the one that must accept the next client.
EMFILE_KINDS = tuple(
    FaultKind("tcp", kind.concurrency, (("pool_size", 1),) if kind.concurrency == "prefork"
              else kind.settings)
    for kind in KINDS if kind.transport == "tcp"
)
KINDS_BY_ID = {kind.id: kind for kind in KINDS + EMFILE_KINDS}


def kind_params(kinds) -> list:
    return [
        pytest.param(kind, id=kind.id, marks=[pytest.mark.skip(reason=reason)] if (
            reason := kind.unavailable_reason()) else [])
        for kind in kinds
    ]


# --- The server side (runs in the script's process) -------------------------

class HandlerFault(Exception):
    """Raised on purpose by a handler asked to "raise"."""


#: handle_error() writes one byte per exception to the server's error pipe.
ERROR_CODES = (
    (HandlerFault, "raised"),
    (OversizeDatagramError, "oversize"),
    (LineTooLongError, "line_too_long"),
    (TimeoutError, "idle_timeout"),
    (OSError, "client_gone"),  # a client that reset or left before the reply
)
UNEXPECTED = "unexpected"
_CODE_BYTES = {name: bytes([65 + number]) for number, name in
               enumerate([name for _, name in ERROR_CODES] + [UNEXPECTED])}
_CODE_NAMES = {code: name for name, code in _CODE_BYTES.items()}


def error_name(error: BaseException | None) -> str:
    for error_type, name in ERROR_CODES:
        if isinstance(error, error_type):
            return name
    return UNEXPECTED


class Fuse:
    """Runs the process out of descriptors, then frees them FULL_WINDOW later.

    ``attempts`` counts the accept() calls made meanwhile.  Until then,
    every descriptor that comes free (a connection closed) is taken again
    before the next accept().
    """

    def __init__(self) -> None:
        self.fillers: list[int] = []
        self.release_at: float | None = None
        self.attempts = 0

    def trip(self) -> None:
        if self.release_at is None and not self.attempts:  # only once
            self.release_at = monotonic() + FULL_WINDOW
            self._fill()

    def _fill(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.fillers.append(os.open(os.devnull, os.O_RDONLY))

    def before_accept(self) -> None:
        if self.release_at is None:
            return
        self.attempts += 1
        if monotonic() < self.release_at:
            self._fill()
            return
        for descriptor in self.fillers:
            os.close(descriptor)
        self.fillers, self.release_at = [], None


FUSE = Fuse()


def respond(server: Any, message: bytes) -> bytes:
    """The reply to one line or datagram: the message itself, or a command's answer."""
    if message.startswith(b"raise"):
        raise HandlerFault("raised on purpose")
    if message.startswith(b"stop-now"):
        os.write(server.stop_writer, b"S")
        return b"stopping\n"
    if message.startswith(b"attempts"):
        return b"attempts %d\n" % FUSE.attempts
    return message


class FaultLineEcho(StreamRequestHandler):
    """Echo each line, with an idle timeout and a longest line."""

    timeout = IDLE_TIMEOUT
    max_line_length = MAX_LINE

    def handle(self):
        while line := self.read_line():
            self.wfile.write(respond(self.server, line))


class FaultEventEcho(LineHandler):
    """The selector server's line echo (it cuts lines at max_line_length itself)."""

    max_line_length = MAX_LINE

    def line_received(self, line):
        return respond(self.server, line)


class FaultDatagramEcho(DatagramRequestHandler):
    def handle(self):
        self.wfile.write(respond(self.server, self.rfile.read()))


class Reporting:
    """Mix-in for the server under test: reports errors, stops when a handler asks.

    handle_error() writes one byte per exception to a pipe that every child
    process inherits; an unexpected exception is also printed.  The first
    service_actions() starts the thread that calls shutdown() -- twice --
    once a handler has written to the stop pipe.
    """

    errors_writer = stop_writer = stop_reader = -1
    stopper: threading.Thread | None = None
    stop_timings: list

    def server_bind(self):
        if self.socket_type == socket.SOCK_DGRAM:  # room for datagrams of every size
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        super().server_bind()

    def handle_error(self, request, client_address):
        name = error_name(sys.exc_info()[1])
        if name == UNEXPECTED:
            super().handle_error(request, client_address)
        with contextlib.suppress(BlockingIOError):
            os.write(self.errors_writer, _CODE_BYTES[name])

    def service_actions(self):
        super().service_actions()
        if self.stopper is None:
            self.stop_timings = []
            self.stopper = threading.Thread(target=self._stop_when_asked, name="stopper")
            self.stopper.start()

    def _stop_when_asked(self):
        if os.read(self.stop_reader, 1):
            self.stop_timings += [timed(self.shutdown), timed(self.shutdown)]


class FuseMixIn:
    """Runs out of descriptors after the first accept() (out-of-descriptors test)."""

    def get_request(self):
        FUSE.before_accept()
        request, client_address = super().get_request()
        FUSE.trip()
        return request, client_address


def base_class(kind: FaultKind) -> type:
    if kind.concurrency == "selector":
        return {"tcp": sockserver_lib.SelectorTCPServer,
                "unix-stream": getattr(sockserver_lib, "SelectorUnixStreamServer", None)}[
            kind.transport]
    return contract.server_class(contract.reference(), contract.Kind(kind.transport,
                                                                      kind.concurrency))


def handler_class(kind: FaultKind) -> type:
    if not kind.is_stream:
        return FaultDatagramEcho
    return FaultEventEcho if kind.concurrency == "selector" else FaultLineEcho


def server_class(kind: FaultKind, mode: str) -> type:
    mixins = (FuseMixIn, Reporting) if mode == "emfile" else (Reporting,)
    base = base_class(kind)
    return type(f"Fault{base.__name__}", (*mixins, base), dict(kind.settings))


def timed(call) -> float | str:
    """Seconds *call* took, or what it raised."""
    start = monotonic()
    try:
        call()
    except Exception as error:
        return repr(error)
    return round(monotonic() - start, 4)


def snapshot() -> dict:
    """Descriptors, other threads and child processes of this process now."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    for thread in others:
        thread.join(PATIENCE)
    return {
        "resident_kb": resident_kb(),
        "descriptors": _open_descriptors(),
        "threads": sorted(t.name for t in threading.enumerate()
                          if t is not threading.current_thread()),
        "children": sorted(_children() or ()),
    }


def resident_kb() -> int | None:
    """This process's resident memory in KiB (Linux), else None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return None


def drain(reader: int) -> dict:
    """Count the error codes written to the pipe *reader*."""
    os.set_blocking(reader, False)
    counts: collections.Counter = collections.Counter()
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(reader, 65536):
            counts.update(_CODE_NAMES[bytes([code])] for code in chunk)
    return dict(counts)


def serve(mode: str, kind_id: str) -> None:
    """Serve *kind_id* until a handler is asked to stop; print the address, then a report."""
    warnings.filterwarnings("ignore", ".*use of fork", DeprecationWarning)
    kind = KINDS_BY_ID[kind_id]
    if mode == "emfile":
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, hard))
    errors_reader, errors_writer = os.pipe()
    stop_reader, stop_writer = os.pipe()
    os.set_blocking(errors_writer, False)  # a full pipe must not stop a handler
    with contextlib.ExitStack() as cleanup:
        address = cleanup.enter_context(lab.temporary_socket_path()) if kind.is_unix else \
            lab.LOCALHOST
        before = snapshot()
        cls = server_class(kind, mode)
        cls.errors_writer, cls.stop_writer, cls.stop_reader = errors_writer, stop_writer, \
            stop_reader
        server = cls(address, handler_class(kind))
        report: dict[str, Any] = {"before_serving": {
            "shutdown_twice": timed(lambda: (server.shutdown(), server.shutdown())),
            "serve_forever": timed(server.serve_forever),
        }}
        print(repr(server.server_address), flush=True)
        try:
            server.serve_forever(poll_interval=0.05)
            report["interrupted"] = False
        except KeyboardInterrupt:
            report["interrupted"] = True
        report["server_close_twice"] = [timed(server.server_close), timed(server.server_close)]
        report["shutdown_twice"] = getattr(server, "stop_timings", [])
        after = snapshot()
    report.update(errors=drain(errors_reader), before=before, after=after)
    print(json.dumps(report), flush=True)


# --- The client side: requests, polite or not -------------------------------

@dataclass
class Outcome:
    """What became of one request."""

    behaviour: str
    ok: bool
    detail: str = ""
    bytes_sent: int = 0


def safe_payload(data: bytes) -> bytes:
    """*data* with no line (or datagram) that starts like a command."""
    lines = data.split(b"\n")
    return b"\n".join(b"_" + line if line.startswith(COMMANDS) else line for line in lines)


def text_lines(rng: random.Random) -> bytes:
    count = rng.randint(1, 3)
    return b"".join(
        bytes(rng.choice(b"abcdefghij klmnopqrstuvwxyz0123456789") for _ in range(
            rng.randint(0, 120))) + b"\n"
        for _ in range(count)
    )


def random_bytes(rng: random.Random, size: int) -> bytes:
    return safe_payload(rng.randbytes(size))


def connect(address: Any, timeout: float = PATIENCE) -> socket.socket:
    """A connected stream socket with a timeout, also when a Unix backlog is full.

    A Unix socket's connect() with a timeout fails at once (EAGAIN) while
    the server's listen backlog is full -- a server at its thread limit
    leaves clients there -- where TCP would wait: so connect in blocking
    mode, with the kernel's send timeout as the time limit.
    """
    if not isinstance(address, (str, bytes)):
        return lab.connect(address, timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        seconds = int(timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                        struct.pack("ll", seconds, int((timeout - seconds) * 1e6)))
        sock.connect(address)
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def exchange(address: Any, payload: bytes, timeout: float = PATIENCE) -> bytes:
    """Send *payload* while reading the reply, end the sending side, read to the end.

    Reading while sending lets a server echo a megabyte without both sides
    waiting for each other.  A reset or broken pipe ends the exchange: the
    reply is what came before it.
    """
    received = bytearray()
    with connect(address, timeout) as sock, selectors.DefaultSelector() as selector:
        sock.setblocking(False)
        view, sent = memoryview(payload), 0
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        deadline = monotonic() + timeout
        try:
            while True:
                if monotonic() > deadline:
                    raise TimeoutError(f"no end of reply within {timeout} s")
                for _, events in selector.select(deadline - monotonic()):
                    if events & selectors.EVENT_WRITE:
                        sent += sock.send(view[sent:sent + 65536])
                        if sent == len(payload):
                            sock.shutdown(socket.SHUT_WR)
                            selector.modify(sock, selectors.EVENT_READ)
                    if events & selectors.EVENT_READ:
                        chunk = sock.recv(65536)
                        if not chunk:
                            return bytes(received)
                        received += chunk
        except OSError as error:
            if error.errno not in PEER_GONE:
                raise
            return bytes(received)


def stream_request(address: Any, behaviour: str, rng: random.Random) -> Outcome:
    """Run one stream client of *behaviour*; ok if the server acted as it should."""
    if behaviour == "good":
        payload = text_lines(rng)
        reply = exchange(address, payload)
        return Outcome(behaviour, reply == payload, f"{reply[:60]!r}", len(payload))
    if behaviour == "garbage":
        payload = random_bytes(rng, rng.randint(1, 4096))
        reply = exchange(address, payload)
        return Outcome(behaviour, reply == payload, f"{len(reply)} bytes back", len(payload))
    if behaviour == "half_line":  # a last line without newline is still a line
        payload = text_lines(rng).rstrip(b"\n") or b"x"
        reply = exchange(address, payload)
        return Outcome(behaviour, reply == payload, f"{reply[:60]!r}", len(payload))
    if behaviour == "raise":
        reply = exchange(address, b"raise please\n")
        return Outcome(behaviour, reply == b"", f"{reply[:60]!r}", 13)
    with connect(address) as sock:
        payload = b""
        if behaviour == "close_before_reply":
            payload = text_lines(rng)
        elif behaviour in ("half_line_then_close", "reset"):
            payload = text_lines(rng)[:-1]
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(payload)
        if behaviour == "reset":
            lab.close_with_reset(sock)
    return Outcome(behaviour, True, bytes_sent=len(payload))


def megabyte_request(address: Any, selector_kind: bool) -> Outcome:
    """A megabyte without a newline: cut at MAX_LINE (the selector echoes it in pieces)."""
    payload = (GARBAGE * (MEGABYTE // len(GARBAGE) + 1))[:MEGABYTE]
    reply = exchange(address, payload)
    expected = payload if selector_kind else b""
    return Outcome("megabyte", reply == expected, f"{len(reply)} bytes back", len(payload))


@contextlib.contextmanager
def datagram_socket(kind: FaultKind, timeout: float = PATIENCE):
    family = socket.AF_UNIX if kind.is_unix else socket.AF_INET
    with contextlib.ExitStack() as cleanup:
        sock = cleanup.enter_context(socket.socket(family, socket.SOCK_DGRAM))
        sock.settimeout(timeout)
        sock.bind(cleanup.enter_context(lab.temporary_socket_path("client"))
                  if kind.is_unix else lab.LOCALHOST)
        yield sock


class DatagramClients:
    """One datagram socket per client thread, all bound before the load starts.

    A socket per request would not do: a new socket may get the port of one
    closed a moment ago (a client that left before its reply), and receive
    the server's late reply to that client.
    """

    def __init__(self, kind: FaultKind, count: int) -> None:
        self._cleanup = contextlib.ExitStack()
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(self._cleanup.enter_context(datagram_socket(kind)))
        self._mine = threading.local()

    def for_this_thread(self) -> socket.socket:
        """The calling thread's socket."""
        if not hasattr(self._mine, "socket"):
            self._mine.socket = self._free.get_nowait()
        return self._mine.socket

    def close(self) -> None:
        self._cleanup.close()


def datagram_request(kind: FaultKind, address: Any, behaviour: str, rng: random.Random,
                     clients: DatagramClients) -> Outcome:
    largest = sockserver_lib.UDPServer.max_packet_size
    if behaviour == "leave_early":  # on a socket of its own, closed before the reply
        with datagram_socket(kind) as leaving:
            leaving.sendto(random_bytes(rng, rng.randint(0, largest)), address)
        return Outcome(behaviour, True)
    sock = clients.for_this_thread()
    if behaviour == "good":
        payload = random_bytes(rng, rng.choice([0, 1, largest, rng.randint(0, largest)]))
    elif behaviour == "raise":
        payload = b"raise please"
    else:  # oversize
        sock.sendto(random_bytes(rng, rng.randint(largest + 1, 65507)), address)
        payload = b"after an oversize datagram"  # the only reply must be to this
    sock.sendto(payload, address)
    reply = sock.recv(65536)
    expected = b"" if behaviour == "raise" else payload
    return Outcome(behaviour, reply == expected, f"{reply[:60]!r}", len(payload))


def request(kind: FaultKind, address: Any, behaviour: str, seed: Any,
            clients: DatagramClients | None = None) -> Outcome:
    """Run one request; an exception is a failed outcome, not a crash of the run."""
    rng = random.Random(seed)
    try:
        if not kind.is_stream:
            return datagram_request(kind, address, behaviour, rng, clients)
        if behaviour == "megabyte":
            return megabyte_request(address, kind.concurrency == "selector")
        return stream_request(address, behaviour, rng)
    except Exception as error:
        return Outcome(behaviour, False, repr(error))


STREAM_MIX = {"good": 45, "garbage": 10, "raise": 8, "close_early": 8,
              "close_before_reply": 7, "half_line": 8, "half_line_then_close": 6, "reset": 8}
DATAGRAM_MIX = {"good": 60, "raise": 10, "oversize": 15, "leave_early": 15}


def schedule(kind: FaultKind, requests: int = LOAD_REQUESTS, seed: int = SEED) -> list[str]:
    """The behaviours of the load's requests: seeded, so the same on every run."""
    rng = random.Random(f"{seed}-{kind.id}")
    mix = STREAM_MIX if kind.is_stream else DATAGRAM_MIX
    behaviours = rng.choices(list(mix), weights=list(mix.values()), k=requests)
    if kind.is_stream:
        for number in range(MEGABYTE_CLIENTS):
            behaviours[(number + 1) * requests // (MEGABYTE_CLIENTS + 1)] = "megabyte"
    return behaviours


def run_load(kind: FaultKind, address: Any, requests: int = LOAD_REQUESTS,
             clients: int = CLIENTS, seed: int = SEED) -> list[Outcome]:
    behaviours = schedule(kind, requests, seed)
    seeds = [f"{seed}-{kind.id}-{number}" for number in range(len(behaviours))]
    sockets = None if kind.is_stream else DatagramClients(kind, clients)
    try:
        with concurrent.futures.ThreadPoolExecutor(clients, "fault-client") as pool:
            return list(pool.map(lambda b, s: request(kind, address, b, s, sockets),
                                 behaviours, seeds))
    finally:
        if sockets is not None:
            sockets.close()


def silent_clients(kind: FaultKind, address: Any, stack: contextlib.ExitStack) -> list:
    """Connect SILENT_CLIENTS clients that never send; return their sockets."""
    return [stack.enter_context(connect(address)) for _ in range(SILENT_CLIENTS)]


def dropped_by_server(sock: socket.socket) -> bool:
    """True once the server has closed this silent client's connection."""
    with contextlib.suppress(ConnectionResetError):
        return sock.recv(1) == b""
    return True


def ask(kind: FaultKind, address: Any, message: bytes, timeout: float = PATIENCE) -> bytes:
    if kind.is_stream:
        return exchange(address, message, timeout)
    with datagram_socket(kind, timeout) as sock:
        sock.sendto(message, address)
        return sock.recv(65536)


def stop_under_load(kind: FaultKind, address: Any, script: lab.ServerProcess) -> int:
    """Keep good clients coming while the server is asked to stop; return how many were served.

    Returns once the script has ended by itself.
    """
    done, enough, stop = [0], threading.Event(), threading.Event()
    lock = threading.Lock()

    def keep_asking(number: int) -> None:
        message = b"tail %d\n" % number
        while not stop.is_set():
            try:
                answered = ask(kind, address, message, timeout=0.5) == message
            except OSError:  # refused or reset once the server has closed
                answered = False
            if answered:
                with lock:
                    done[0] += 1
                    if done[0] >= TAIL_BEFORE_STOP:
                        enough.set()

    clients = [lab.run_in_thread(lambda n=n: keep_asking(n), f"tail-{n}")
               for n in range(CLIENTS)]
    try:
        assert enough.wait(PATIENCE), "the tail clients were not served"
        assert ask(kind, address, b"stop-now\n") == b"stopping\n"
        script.process.wait(SCRIPT_TIMEOUT)
    finally:
        stop.set()
        for client in clients:
            client.join(PATIENCE)
    return done[0]


# --- Figures for the README ---------------------------------------------------

SUMMARY: collections.Counter = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def print_summary(request):
    """After the module: print the figures, and write them to SOCKSERVER_FAULT_SUMMARY."""
    yield
    if not SUMMARY["runs"]:
        return
    figures = collections.Counter(SUMMARY)  # 0 for what this run did not count
    line = (
        f"fault suite: {figures['requests']} requests to {figures['kinds']} server kinds, "
        f"{figures['good']} good ones and "
        f"{figures['faults']} faults injected ({figures['raised']} handler exceptions, "
        f"{figures['oversize']} oversize datagrams, {figures['megabytes']} MB of garbage, "
        f"{figures['silent']} silent clients, {figures['out_of_descriptors']} "
        f"out-of-descriptors runs); {figures['tail']} more served during shutdowns; "
        f"good requests not answered exactly (lost): {figures['lost']}; server runs that "
        f"ended with every fault accounted for and every descriptor, thread and child "
        f"process released: {figures['runs'] - figures['failed_runs']} of {figures['runs']}"
    )
    print_past_capture(request.config, line)
    if path := os.environ.get("SOCKSERVER_FAULT_SUMMARY"):
        with open(path, "w", encoding="utf-8") as file:
            json.dump({**figures, "line": line}, file, indent=2)


# --- The tests --------------------------------------------------------------

def check_report(report: dict, stderr: str) -> None:
    """The server-side half of every run: prompt calls, no unexpected error, no leak."""
    assert not report["interrupted"], stderr
    for name, seconds in report["before_serving"].items():
        assert isinstance(seconds, float) and seconds < PROMPT, (name, seconds)
    for name in ("shutdown_twice", "server_close_twice"):
        assert len(report[name]) == 2, (name, report[name])
        assert all(isinstance(s, float) and s < PROMPT for s in report[name]), report
    assert report["errors"].get(UNEXPECTED, 0) == 0, stderr
    before, after = report["before"], report["after"]
    assert after["threads"] == before["threads"] == [], after
    assert after["children"] == before["children"] == [], after
    assert after["descriptors"] == before["descriptors"], (before, after)


@dataclass
class KindRun:
    """What one run of a kind showed: the clients' outcomes and the server's report."""

    kind: FaultKind
    outcomes: list[Outcome]
    silent: int  # silent clients, each dropped by the idle timeout or kept (selector)
    final: bytes  # the reply to the last good request
    tail: int  # good requests served while the server was asked to stop
    report: dict
    stderr: str
    seconds: float

    @property
    def sent(self) -> collections.Counter:
        return collections.Counter(outcome.behaviour for outcome in self.outcomes)


def run_kind(kind: FaultKind, requests: int = LOAD_REQUESTS, clients: int = CLIENTS,
             seed: int = SEED) -> KindRun:
    """Serve *kind* in a script; silent clients, the load, a last request, stop under load."""
    start = monotonic()
    with lab.server_process(__file__, "load", kind.id, timeout=SCRIPT_TIMEOUT) as script, \
            contextlib.ExitStack() as silent_stack:
        address = script.address
        silent = silent_clients(kind, address, silent_stack) if kind.is_stream else []
        if kind.idle_timeout_drops_silent_clients:
            assert all(dropped_by_server(sock) for sock in silent), "a silent client stayed"
        outcomes = run_load(kind, address, requests, clients, seed)
        silent_stack.close()  # the selector kept them, at no cost to the others
        final = ask(kind, address, b"still there?\n")
        tail = stop_under_load(kind, address, script)
    report = json.loads(script.stdout.strip().splitlines()[-1])
    return KindRun(kind, outcomes, len(silent), final, tail, report, script.stderr,
                   monotonic() - start)


def check_kind_run(run: KindRun) -> None:
    """Nothing lost, every fault accounted for, prompt calls, no leak."""
    failed = [outcome for outcome in run.outcomes if not outcome.ok]
    extra_timeouts = run.report["errors"].get("idle_timeout", 0) - run.silent
    assert failed == [], (failed[:5], f"{extra_timeouts} good clients timed out: was the "
                          f"machine too busy to send within IDLE_TIMEOUT = {IDLE_TIMEOUT} s?"
                          if run.kind.is_stream and extra_timeouts > 0 else "")
    assert run.final == b"still there?\n"
    check_report(run.report, run.stderr)
    errors, sent = run.report["errors"], run.sent
    assert errors.get("raised", 0) == sent["raise"], errors
    assert errors.get("oversize", 0) == sent["oversize"], errors
    if run.kind.idle_timeout_drops_silent_clients:
        assert errors.get("idle_timeout", 0) == run.silent, errors
        assert errors.get("line_too_long", 0) == sent["megabyte"], errors


def figures(run: KindRun) -> dict:
    """The run's contribution to the suite's figures."""
    sent = run.sent
    return dict(
        kinds=1, requests=len(run.outcomes) + run.silent + 1, good=sent["good"] + 1,
        faults=len(run.outcomes) - sent["good"] + run.silent, raised=sent["raise"],
        oversize=sent["oversize"], megabytes=sent["megabyte"], silent=run.silent,
        tail=run.tail, lost=sum(not outcome.ok for outcome in run.outcomes),
        garbage_bytes=sum(o.bytes_sent for o in run.outcomes if o.behaviour != "good"),
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", kind_params(KINDS))
def test_kind_survives_faults_load_and_shutdown(kind):
    run = run_kind(kind)
    SUMMARY.update(figures(run), runs=1)
    try:
        check_kind_run(run)
    except AssertionError:
        SUMMARY.update(failed_runs=1)
        raise


@pytest.mark.timeout(60)
@pytest.mark.skipif(resource is None, reason="this platform has no resource module (rlimits)")
@pytest.mark.parametrize("kind", kind_params(EMFILE_KINDS))
def test_out_of_descriptors_backs_off_and_serves_once_descriptors_are_free(kind):
    with lab.server_process(__file__, "emfile", kind.id, timeout=SCRIPT_TIMEOUT) as script:
        address = script.address
        assert exchange(address, b"hello\n") == b"hello\n"  # accepted, then no descriptor left
        reply = exchange(address, b"attempts\n")  # waits until the descriptors are free
        assert ask(kind, address, b"stop-now\n") == b"stopping\n"
        script.process.wait(SCRIPT_TIMEOUT)
    report = json.loads(script.stdout.strip().splitlines()[-1])

    SUMMARY.update(out_of_descriptors=1, faults=1, runs=1, failed_runs=1)
    word, attempts = reply.split()
    assert word == b"attempts"
    # backing off from 10 ms, doubling: a handful of attempts in FULL_WINDOW, not a spin
    assert 2 <= int(attempts) <= 20, reply
    check_report(report, script.stderr)
    SUMMARY.update(failed_runs=-1)


def held_datagram_server(module) -> tuple[Any, threading.Event, threading.Event]:
    """A threading UDP echo server of *module* whose handler waits to be released."""
    started, release = threading.Event(), threading.Event()

    class Held(module.DatagramRequestHandler):
        def handle(self):
            started.set()
            release.wait(PATIENCE)
            self.wfile.write(self.rfile.read())

    class Quiet(module.ThreadingUDPServer):
        def handle_error(self, request, client_address):
            pass  # the stdlib's lost reply raises OSError here: expected

    return Quiet(lab.LOCALHOST, Held), started, release


@pytest.mark.timeout(30)
@pytest.mark.parametrize("module_name", ["sockserver_lib", "socketserver"])
def test_server_close_lets_running_datagram_handlers_reply(module_name):
    """shutdown() then server_close() while a request thread works: its reply still goes out.

    The stdlib closes the socket first, then waits for the thread, whose
    reply then fails: the client never gets it.
    """
    module = __import__(module_name)
    server, started, release = held_datagram_server(module)
    loop = lab.run_in_thread(lambda: server.serve_forever(0.05), "serve_forever")
    with datagram_socket(KINDS_BY_ID["udp-sync"], timeout=0.3) as client:
        try:
            client.sendto(b"in flight", server.server_address)
            assert started.wait(PATIENCE)
            server.shutdown()
            closing = lab.run_in_thread(server.server_close, "server_close")
            closing.join(0.2)
            assert closing.is_alive()  # waits for the request thread (block_on_close)
        finally:
            release.set()
            loop.join(PATIENCE)
        closing.join(PATIENCE)
        try:
            reply = client.recv(100)
        except TimeoutError:
            reply = None
    assert reply == (b"in flight" if module_name == "sockserver_lib" else None)


def test_the_schedule_mixes_every_behaviour_and_is_the_same_on_every_run():
    for kind in (KINDS_BY_ID["tcp-sync"], KINDS_BY_ID["udp-sync"]):
        behaviours = schedule(kind)
        mix = STREAM_MIX if kind.is_stream else DATAGRAM_MIX
        assert set(mix) <= set(behaviours)
        assert behaviours == schedule(kind)
    assert schedule(KINDS_BY_ID["tcp-sync"]).count("megabyte") == MEGABYTE_CLIENTS


def test_safe_payload_never_starts_a_line_with_a_command():
    assert safe_payload(b"raise\nok\nstop-now") == b"_raise\nok\n_stop-now"
    assert error_name(OversizeDatagramError((b"", None), None, 1)) == "oversize"
    assert error_name(ConnectionResetError()) == "client_gone"
    assert error_name(ValueError()) == UNEXPECTED
    assert errno.EMSGSIZE == OversizeDatagramError((b"", None), None, 1).errno


if __name__ == "__main__":
    serve(*sys.argv[1:])
