"""The server side of the latency lab: server kinds, the timed handler, the server process.

A server under test runs alone in a fresh process (multiprocessing "spawn"):
its serve_forever() loop is the process's only thread, so a forking server
never forks a threaded process, and nothing the coordinator does (a Jupyter
kernel, the load generator) competes for its GIL.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..handlers import StreamRequestHandler
from ..lab import LOCALHOST
from ..mixins import ThreadingTCPServer
from ..pools import ThreadPoolTCPServer
from ..selector import LineHandler, SelectorMixIn, SelectorTCPServer
from ..servers import TCPServer

#: The server kinds the lab can measure: name -> server class (a factory of
#: servers, called as ``cls(server_address, RequestHandlerClass)``).  Adding a
#: kind is one line, e.g. ``SERVER_KINDS["threadpool"] = ThreadPoolTCPServer``;
#: the class must be importable from a module, because the server process is
#: a fresh interpreter that receives it by name.
SERVER_KINDS: dict[str, type] = {"sync": TCPServer, "threading": ThreadingTCPServer}
if hasattr(os, "fork"):
    from ..mixins import ForkingTCPServer

    SERVER_KINDS["forking"] = ForkingTCPServer
# Beyond the stdlib (notebook 12): worker pools and the event loop.
SERVER_KINDS["threadpool"] = ThreadPoolTCPServer
if hasattr(os, "fork"):
    from ..pools import PreforkTCPServer

    SERVER_KINDS["prefork"] = PreforkTCPServer
SERVER_KINDS["selector"] = SelectorTCPServer
# "asyncio" (beyond the stdlib socketserver) is registered at the end: it reuses this module.

#: listen() backlog of every server under test.  The stdlib's default of 5
#: would make a queued client of a sync server wait for a TCP retransmission
#: (about 1 s) once more than 6 connect at once, and the lab would measure
#: the backlog instead of the concurrency model.
LISTEN_BACKLOG = 128
#: Seconds a handler waits on a silent client before giving up.
HANDLER_TIMEOUT = 10.0
#: Longest request line the handler reads, in bytes.
MAX_REQUEST_LINE = 1024
#: Seconds to wait for a process to start, or to stop after being asked.
PROCESS_TIMEOUT = 20.0


def sleep_ms(milliseconds: float) -> bytes:
    """Wait like a slow disk or database would: the GIL is free meanwhile."""
    time.sleep(milliseconds / 1000)
    return b""


def burn_cpu(iterations: int) -> int:
    """Compute in pure Python for *iterations* turns: every turn needs the GIL."""
    total = 0
    for number in range(int(iterations)):
        total += number * number
    return total


def compute(iterations: int) -> bytes:
    """The "cpu" work: burn_cpu(), and nothing extra to send."""
    burn_cpu(iterations)
    return b""


def large_reply(size: int) -> bytes:
    """The "big" work: *size* bytes to send before the reply line (a file, say)."""
    return b"." * int(size)


#: What a request line asks the handler to do: name -> function(amount) that
#: does the work and returns the bytes to send before the reply line.
WORK = {
    "none": lambda amount: b"",
    "io": sleep_ms,
    "cpu": compute,
    "big": large_reply,
}
#: Send buffer of a connection that gets a large reply.  The lab scales time
#: down to milliseconds, so it scales buffers down too: a reply larger than
#: both ends' buffers keeps the handler sending until a slow reader has read
#: most of it, as a file much larger than the buffers would on a real network.
LARGE_REPLY_SEND_BUFFER = 32 * 1024


def worker_id() -> str:
    """Who is running this code: ``"<pid>:<thread name>"``, e.g. ``"4242:Thread-7"``."""
    thread_name = threading.current_thread().name.split(" ")[0]
    return f"{os.getpid()}:{thread_name}"


def do_work(request_line: bytes) -> bytes:
    """Do what *request_line* (``b"<work> <amount>"``, e.g. ``b"io 20"``) asks.

    Returns the bytes to send before the reply line (empty, but for "big").
    """
    work, amount = request_line.decode("ascii").split()
    return WORK[work](float(amount) if work == "io" else int(amount))


def reply_line(accepted: int, started: int, finished: int) -> bytes:
    """The reply to one request: ``b"<accepted> <started> <finished> <worker>\\n"``."""
    return f"{accepted} {started} {finished} {worker_id()}\n".encode()


def is_large(request_line: bytes) -> bool:
    """True if *request_line* asks for a large reply."""
    return request_line.startswith(b"big ")


class TimedHandler(StreamRequestHandler):
    """Serve request lines until the client closes; reply with when and by whom.

    Each request is one line ``b"<work> <amount>\\n"`` (see WORK).  The reply
    is one line ``b"<accepted> <started> <finished> <worker>\\n"``: three
    time.monotonic_ns() readings (the clock every process on the machine
    shares) and worker_id().  *accepted* is when the server accepted the
    connection (for a later request on the same connection, there was no
    accept, so it equals *started*); *started* is when the handler began
    reading this request; *finished* is when its work was done.
    """

    timeout = HANDLER_TIMEOUT
    disable_nagle_algorithm = True

    def handle(self):
        accepted = self.server.pop_accept_time(self.request)
        while self.serve_one_request(accepted):
            accepted = None

    def serve_one_request(self, accepted: int | None) -> bool:
        """Read, work, send what the work made, reply; return False when the client has closed.

        *finished* is read after the work's bytes are sent, so a handler
        stuck sending to a client that reads slowly counts as busy.
        """
        started = time.monotonic_ns()
        line = self.rfile.readline(MAX_REQUEST_LINE)
        if not line:
            return False
        if is_large(line):
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LARGE_REPLY_SEND_BUFFER)
        self.wfile.write(do_work(line))
        finished = time.monotonic_ns()
        accepted = started if accepted is None else accepted
        self.wfile.write(reply_line(accepted, started, finished))
        return True


class TimedLineHandler(LineHandler):
    """TimedHandler for an event-loop server (SelectorMixIn): the same requests and replies.

    *started* is when the loop hands the handler the request's first bytes
    (until then the request waits for the loop).  *finished* is when the
    work is done: a large reply is then queued, and the loop sends it as the
    client reads, serving others meanwhile; so unlike TimedHandler's, this
    handler time does not include sending it.  The lab's "io" and "cpu"
    work blocks, as any blocking call in an event handler would: while it
    runs, the loop serves nobody else.
    """

    max_line_length = MAX_REQUEST_LINE

    def connection_made(self):
        self.accepted = self.server.pop_accept_time(self.connection.socket)
        self.started = None

    def data_received(self, data):
        if self.started is None:  # the loop reads this request's first bytes: it starts
            self.started = time.monotonic_ns()
        return super().data_received(data)

    def line_received(self, line):
        payload = do_work(line)  # a large one is queued: the loop sends it as the client reads
        finished = time.monotonic_ns()
        accepted = self.started if self.accepted is None else self.accepted
        reply = reply_line(accepted, self.started, finished)
        self.accepted = self.started = None
        return payload + reply


class AcceptTimeMixIn:
    """Note when each connection was accepted, for TimedHandler to report.

    Put first in the bases.  The time is kept per file descriptor until the
    handler takes it, which works for threads and for forked children alike.
    """

    def get_request(self):
        request, client_address = super().get_request()
        self._accept_times()[request.fileno()] = time.monotonic_ns()
        return request, client_address

    def pop_accept_time(self, request) -> int | None:
        """The accept time of *request*'s connection, or None if unknown."""
        return self._accept_times().pop(request.fileno(), None)

    def _accept_times(self) -> dict:
        return vars(self).setdefault("_accepted_ns", {})

    def handle_error(self, request, client_address):
        """Report handler failures, but not clients that went away (they count as errors)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def timed_server_class(server_class: type) -> type:
    """*server_class* with AcceptTimeMixIn put first and a backlog of LISTEN_BACKLOG or more."""
    backlog = max(getattr(server_class, "request_queue_size", 0), LISTEN_BACKLOG)
    return type(
        f"Timed{server_class.__name__}",
        (AcceptTimeMixIn, server_class),
        {"request_queue_size": backlog},
    )


class _StopServing(BaseException):
    """Raised by SIGTERM in the server process: leave serve_forever() and close."""


def _stop_serving(signum, frame):
    raise _StopServing


def serve_in_this_process(server_class: type, address_sink: Any) -> None:
    """Body of a server process: serve on 127.0.0.1 until SIGTERM or Ctrl-C.

    Sends the server's address through *address_sink* (a Pipe end) once it
    listens.  SIGTERM raises an exception out of serve_forever() in this,
    the only thread (an asyncio server's loop is asked to stop instead);
    then the server is closed (a forking server waits for its children)
    with further stop signals ignored, so that a second one cannot cut the
    closing short and leave children behind.
    """
    signal.signal(signal.SIGTERM, _stop_serving)
    server = _timed_server(server_class)
    try:
        if isinstance(server, AsyncioTCPServer):
            # Raised in a coroutine, _StopServing would end that coroutine's task, not the
            # loop; shutdown() asks the loop to stop instead (and does not wait, here).
            signal.signal(signal.SIGTERM, lambda signum, frame: server.shutdown())
        address_sink.send(server.server_address)
        address_sink.close()
        server.serve_forever()
    except (_StopServing, KeyboardInterrupt):
        pass
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        server.server_close()


def _timed_server(server_class: type) -> Any:
    """A *server_class* server on 127.0.0.1, serving the lab's requests, noting accept times."""
    if issubclass(server_class, AsyncioTCPServer):  # it notes accept times itself
        return server_class(LOCALHOST, TimedStreamHandler)
    handler = TimedLineHandler if issubclass(server_class, SelectorMixIn) else TimedHandler
    return timed_server_class(server_class)(LOCALHOST, handler)


@dataclass(frozen=True)
class ServerProcess:
    """A running server under test: where it listens and its process."""

    address: tuple
    process: Any


@contextlib.contextmanager
def running_server(server_class: type, timeout: float = PROCESS_TIMEOUT) -> Iterator[ServerProcess]:
    """Run *server_class* in a fresh process for a ``with`` block.

    However the block is left (an error, Ctrl-C), the process is asked to
    stop, killed if it does not within *timeout* seconds, and joined.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=serve_in_this_process,
        args=(server_class, sender),
        name=f"bench-server-{server_class.__name__}",
        daemon=True,
    )
    process.start()
    sender.close()  # keep only the child's end open, so its death reads as EOF
    try:
        yield ServerProcess(_receive_address(receiver, process, timeout), process)
    finally:
        receiver.close()
        stop_process(process, timeout)


def _receive_address(receiver, process, timeout: float) -> tuple:
    if not receiver.poll(timeout):
        raise TimeoutError(f"the server process did not report its address within {timeout} s")
    try:
        return receiver.recv()
    except EOFError:
        process.join(timeout)
        raise RuntimeError(
            f"the server process exited (code {process.exitcode}) before it "
            "listened; its error is printed above"
        ) from None


def stop_process(process, timeout: float = PROCESS_TIMEOUT) -> None:
    """Ask *process* to stop (SIGTERM), kill it if it has not within *timeout* s, join it."""
    if process.is_alive():
        process.terminate()
        process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(timeout)


# Beyond the stdlib socketserver: asyncio streams.  Imported last, as _asyncio imports this module.
from ._asyncio import AsyncioTCPServer, TimedStreamHandler  # noqa: E402

SERVER_KINDS["asyncio"] = AsyncioTCPServer
