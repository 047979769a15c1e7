"""Beyond socketserver: the lab's protocol served by asyncio streams, one thread, one event loop.

What a new program would pick instead of socketserver for many connections
at once.  Each connection is a coroutine, and every ``await`` lets the loop
serve the others; so the "io" work awaits asyncio.sleep() and the waits
overlap in one thread, while the "cpu" work still blocks the loop, as any
computation in a coroutine does.

AsyncioTCPServer looks like a socketserver server to the lab:
``AsyncioTCPServer(server_address, RequestHandlerClass)`` listens at once, then
serve_forever(), shutdown(), server_close() and ``with`` work as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
import traceback

from ._server import (
    HANDLER_TIMEOUT,
    LARGE_REPLY_SEND_BUFFER,
    LISTEN_BACKLOG,
    MAX_REQUEST_LINE,
    do_work,
    is_large,
    reply_line,
)

#: What ends a connection without being a handler's failure: the client went
#: away (an OSError, or end-of-file in the middle of a line).
CLIENT_GONE = (OSError, asyncio.IncompleteReadError)


async def sleep_ms_async(milliseconds: float) -> bytes:
    """The "io" work for a coroutine: wait without blocking the loop."""
    await asyncio.sleep(milliseconds / 1000)
    return b""


async def do_work_async(request_line: bytes) -> bytes:
    """do_work() for a coroutine: "io" awaits sleep_ms_async(), the other work blocks.

    Returns the bytes to send before the reply line (empty, but for "big").
    """
    work, amount = request_line.decode("ascii").split()
    if work == "io":
        return await sleep_ms_async(float(amount))
    return do_work(request_line)


class TimedStreamHandler:
    """TimedHandler for AsyncioTCPServer: the same requests and replies, as a coroutine.

    Made once per connection as ``cls(reader, writer, server, accepted)``
    (*accepted*: time.monotonic_ns() when the connection was accepted);
    the server awaits handle().  *started* is when a request's first bytes
    reached the handler (until then the request waits for the loop).
    Waiting more than *timeout* seconds for a request line, or a line
    longer than the server's *max_line_length*, ends the connection.
    """

    timeout = HANDLER_TIMEOUT

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 server: AsyncioTCPServer, accepted: int):
        self.reader = reader
        self.writer = writer
        self.server = server
        self.accepted = accepted

    async def handle(self) -> None:
        """Serve request lines until the client closes."""
        accepted = self.accepted
        while await self.serve_one_request(accepted):
            accepted = None

    async def serve_one_request(self, accepted: int | None) -> bool:
        """Read, work, send what the work made, reply; return False when the client has closed.

        *finished* is read once the work's bytes are all handed to the
        system, so a handler sending to a client that reads slowly counts
        as busy, as TimedHandler does.
        """
        request = await self.read_request()
        if request is None:
            return False
        started, line = request
        if is_large(line):
            self.writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, LARGE_REPLY_SEND_BUFFER)
            # drain() then waits until nothing is left in asyncio's buffer, as sendall() would.
            self.writer.transport.set_write_buffer_limits(high=0)
        await self.send(await do_work_async(line))
        finished = time.monotonic_ns()
        accepted = started if accepted is None else accepted
        await self.send(reply_line(accepted, started, finished))
        return True

    async def read_request(self) -> tuple[int, bytes] | None:
        """Wait for the next request line: ``(started, line)``, or None at end-of-file.

        A client that has not sent a whole line within *timeout* seconds is
        cut off, which reads as end-of-file.  Raises
        asyncio.IncompleteReadError if the client closes in the middle of a
        line, asyncio.LimitOverrunError if the line is too long.
        """
        with self._cut_off_after_timeout():
            first = await self.reader.read(1)  # returns as soon as the first bytes are in
            if not first:
                return None
            started = time.monotonic_ns()
            rest = b"" if first == b"\n" else await self.reader.readuntil(b"\n")
            return started, first + rest

    async def send(self, data: bytes) -> None:
        """Write *data* and wait until the connection has taken it, at most *timeout* seconds.

        A client that stops reading is cut off then, as sendall() would time out.
        """
        if data:
            self.writer.write(data)
            with self._cut_off_after_timeout():
                await self.writer.drain()

    @contextlib.contextmanager
    def _cut_off_after_timeout(self):
        """Abort the connection if the block has not finished within *timeout* seconds."""
        # Not wait_for(): before Python 3.12 it runs the wait in a task of its own (whose
        # result then waits its turn in the loop, counted as handler time), and on 3.10 it
        # can swallow the cancellation that shutdown() sends, leaving the loop waiting.
        timer = asyncio.get_running_loop().call_later(self.timeout, self.writer.transport.abort)
        try:
            yield
        finally:
            timer.cancel()


class AsyncioTCPServer:
    """A TCP server on an asyncio event loop: one thread, a coroutine per connection.

    ``AsyncioTCPServer(server_address, RequestHandlerClass=None)`` binds
    and listens at once (backlog *request_queue_size*); the handler class
    (default TimedStreamHandler) is made and awaited for each connection,
    as TimedStreamHandler says.  A handler's exception ends its connection
    only: a client that went away or went silent is not reported, any other
    exception goes to handle_error().  Request lines longer than
    *max_line_length* bytes are refused.
    """

    request_queue_size = LISTEN_BACKLOG
    max_line_length = MAX_REQUEST_LINE

    def __init__(self, server_address: tuple, RequestHandlerClass: type | None = None):
        self.RequestHandlerClass = RequestHandlerClass or TimedStreamHandler
        self.socket = socket.create_server(server_address, backlog=self.request_queue_size)
        self.server_address = self.socket.getsockname()
        self._shutdown_request = False
        self._is_shut_down = threading.Event()
        self._is_shut_down.set()
        self._serving_thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._connections: set = set()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until shutdown(), running a new event loop in this thread.

        *poll_interval* is accepted for socketserver's signature and unused:
        shutdown() wakes the loop.  When the loop stops, open connections
        are closed and their handlers cancelled.
        """
        # This thread is noted as serving while the event is clear, so that shutdown()
        # from a signal handler here never waits for itself.
        self._serving_thread = threading.current_thread()
        self._is_shut_down.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._shutdown_request = False
            self._is_shut_down.set()
            self._serving_thread = None

    def shutdown(self) -> None:
        """Make serve_forever() return, and wait until it has.

        Called in serve_forever()'s own thread (from a signal handler), it
        only asks, as waiting there would wait forever; asked before
        serve_forever() runs, the next serve_forever() returns at once.
        """
        self._shutdown_request = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        if threading.current_thread() is not self._serving_thread:
            self._is_shut_down.wait()

    def server_close(self) -> None:
        """Close the listening socket."""
        self.socket.close()

    def handle_error(self, error: BaseException, client_address) -> None:
        """Report a handler's failure on standard error, as socketserver does."""
        print("-" * 40, file=sys.stderr)
        print(f"Exception occurred during processing of request from {client_address}",
              file=sys.stderr)
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        print("-" * 40, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.server_close()

    async def _serve(self) -> None:
        self._connections = set()
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # after _stop: shutdown() reads them in this order
        # A duplicate, because asyncio closes the socket it serves on when it stops,
        # and the listening socket is server_close()'s to close.
        server = await asyncio.start_server(
            self._connection_made, sock=self.socket.dup(), backlog=self.request_queue_size,
            limit=self.max_line_length)
        try:
            if not self._shutdown_request:
                await self._stop.wait()
        finally:
            self._loop = None
            server.close()
            await self._close_connections()

    def _connection_made(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        """start_server()'s callback: note the accept time, serve the connection in a task."""
        accepted = time.monotonic_ns()
        if self._loop is None:  # accepted while stopping: nobody would cancel its handler
            writer.close()
            return
        task = asyncio.get_running_loop().create_task(
            self._serve_connection(reader, writer, accepted))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter, accepted: int) -> None:
        try:
            await self.RequestHandlerClass(reader, writer, self, accepted).handle()
        except CLIENT_GONE:
            pass
        except Exception as error:
            self.handle_error(error, writer.get_extra_info("peername"))
        finally:
            writer.close()

    async def _close_connections(self) -> None:
        """Cancel every connection's handler; wait until they have all closed."""
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
