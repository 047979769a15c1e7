"""Layer 10: select() -- one thread serves many connections.

The socketserver documentation names a third way to serve several clients
at once, besides threads and fork(): "maintain an explicit table of
partially finished requests and use select() to decide which request to
work on next (or whether to handle a new incoming request)".  This module
is that way::

    class SelectorTCPServer(SelectorMixIn, TCPServer): pass

SelectorMixIn replaces the serve_forever() loop with an event loop: one
thread, one ``selectors.DefaultSelector`` (epoll, kqueue, ...), and the
table ``server.connections`` with one Connection per client -- its socket,
the output not sent yet, whether it is closing -- next to its handler,
which keeps any partial input.  The loop waits until some socket is ready,
does the little work that cannot block (accept one connection, read what
has arrived, send what fits), and goes back to waiting.  A client that
never sends costs a table entry, not a thread or a process.

The handler API.  A handler reacts to events instead of running a blocking
handle(): RequestHandlerClass is instantiated once per connection as
``RequestHandlerClass(connection, client_address, server)``, then the loop
calls, in this order:

    connection_made()       once, first; may return bytes to send (a greeting)
    data_received(data)     for each chunk that arrives (any size: lines may
                            come split or merged); return bytes to send, or None
    eof_received()          the client closed its sending side; may return
                            last bytes to send; the connection is then closed
                            once all the output is sent
    connection_lost()       once, last: the connection is closed, by either
                            side or by server_close()

A handler may also call ``self.connection.write(data)`` and
``self.connection.close()`` at any time from the loop's thread, e.g. to
write to other clients (``server.connections``).  A handler must never
block -- it runs in the only thread.  An exception from a handler goes to
server.handle_error() and closes that connection; the others go on.

EventHandler is the base class (every event does nothing); LineHandler
splits input into lines for line_received(line); LineEchoHandler answers
each line with itself.

Compared with the blocking servers: shutdown() stops the loop at once and
leaves the table as it is (a later serve_forever() resumes every
connection); server_close() closes the listening socket and every
connection.  handle_request() only accepts a connection into the table.
"""

import selectors
import socket

from .servers import TCPServer

#: Bytes asked for per recv(): one read usually takes all that has arrived.
READ_SIZE = 65536


class EventHandler:
    """Base class for the handlers of an event-driven server.

    Attributes for the methods: self.connection (the Connection: write(),
    close(), socket), self.client_address, self.server.  Override the
    events you need; each may return bytes to send (except
    connection_lost).
    """

    def __init__(self, connection, client_address, server):
        self.connection = connection
        self.client_address = client_address
        self.server = server

    def connection_made(self):
        """The connection was accepted.  Return bytes to send, or None."""

    def data_received(self, data):
        """*data* (non-empty bytes) arrived.  Return bytes to send, or None."""

    def eof_received(self):
        """The client will send nothing more.  Return last bytes, or None."""

    def connection_lost(self):
        """The connection is closed; nothing can be sent any more."""


class LineHandler(EventHandler):
    """Cut the input into lines and call line_received(line) for each.

    A line keeps its b"\\n".  What is left when the client closes is passed
    as a last line without one.  A line longer than max_line_length is
    passed in pieces of that length, so that a client that never sends a
    newline cannot make the server buffer without limit.
    """

    max_line_length = 65536

    def __init__(self, connection, client_address, server):
        super().__init__(connection, client_address, server)
        self.partial_line = b""  # the start of a line whose end has not arrived

    def line_received(self, line):
        """One line arrived.  Return bytes to send, or None.  Override this."""

    def data_received(self, data):
        buffer = self.partial_line + data
        replies = []
        start = 0
        while end := self._end_of_piece(buffer, start):
            replies.append(self.line_received(buffer[start:end]))
            start = end
        self.partial_line = buffer[start:]
        return b"".join(reply for reply in replies if reply) or None

    def _end_of_piece(self, buffer, start):
        """Where the line starting at *start* ends: after its b"\\n", or after
        max_line_length bytes if it is longer; 0 if it has not all arrived."""
        limit = start + self.max_line_length
        newline = buffer.find(b"\n", start, limit)
        if newline >= 0:
            return newline + 1
        return limit if len(buffer) >= limit else 0

    def eof_received(self):
        line, self.partial_line = self.partial_line, b""
        return self.line_received(line) if line else None


class LineEchoHandler(LineHandler):
    """Answer each line with the line itself."""

    def line_received(self, line):
        return line


class Connection:
    """One entry of the server's table: a client socket and its pending output.

    write(data) sends what the socket takes at once and keeps the rest in
    pending_output for the loop to send when the socket is writable;
    close() closes the connection once pending_output is empty.  Both are
    for the loop's thread only, and do nothing once the connection is
    closed.
    """

    def __init__(self, sock, client_address, server):
        self.socket = sock
        self.fd = sock.fileno()
        self.client_address = client_address
        self.handler = None
        self.pending_output = bytearray()
        self.input_ended = False  # the client sent end-of-file
        self.closing = False  # close once pending_output is sent
        self.closed = False
        self.watched_events = 0  # what the selector watches for now
        self._server = server

    def write(self, data):
        """Send *data* (bytes), now or as soon as the client can take it."""
        if not self.closed and not self.closing:
            self.pending_output += data
            self._server._send_pending(self)

    def close(self):
        """Close the connection once all pending output has been sent."""
        if not self.closed:
            self.closing = True
            self._server._send_pending(self)


class SelectorMixIn:
    """Serve every connection from one thread with an event loop.

    RequestHandlerClass is an EventHandler (see the module docstring), not
    a BaseRequestHandler.  Settings (class attributes): request_queue_size
    (the listen() backlog, deep for bursts of clients), max_pending_output
    (a client whose unsent output reaches this many bytes is not read from
    until it takes some: it cannot make the server buffer without limit).

    The stdlib's hooks keep their places: get_request -> verify_request ->
    process_request (which adds the connection to the table), and, when a
    connection ends, shutdown_request -> close_request.
    """

    request_queue_size = 1024
    max_pending_output = 1 << 20
    _selector = None  # while serve_forever() runs

    def __init__(self, *args, **kwargs):
        self.connections = {}  # {file descriptor: Connection}
        super().__init__(*args, **kwargs)

    def serve_forever(self, poll_interval=0.5):
        """Serve every connection until shutdown().

        Calls service_actions() at least every *poll_interval* seconds.
        """
        waker = self._start_loop()
        if waker is None:  # shutdown() came first
            return
        timeout = self.socket.gettimeout()
        self._selector = selectors.DefaultSelector()
        try:
            self.socket.setblocking(False)  # a vanished client must not block accept()
            self._selector.register(waker, selectors.EVENT_READ)
            self._selector.register(self, selectors.EVENT_READ, self)
            for connection in self.connections.values():  # left by an earlier loop
                connection.watched_events = 0
                self._watch(connection)
            self._run_loop(poll_interval)
        finally:
            self._selector.close()
            self._selector = None
            self.socket.settimeout(timeout)
            self._end_loop()

    def _run_loop(self, poll_interval):
        while not self._shutdown_request:
            for key, events in self._selector.select(poll_interval):
                if key.data is self:
                    self._handle_request_noblock()
                elif key.data is not None:  # None: the waker of shutdown()
                    self._on_ready(key.data, events)
            self.service_actions()

    def process_request(self, request, client_address):
        """Add the connection to the table and call connection_made()."""
        request.setblocking(False)
        connection = Connection(request, client_address, self)
        connection.handler = self.RequestHandlerClass(connection, client_address, self)
        self.connections[connection.fd] = connection
        self._watch(connection)
        self._call_handler(connection, connection.handler.connection_made)

    def _on_ready(self, connection, events):
        if events & selectors.EVENT_WRITE:
            self._send_pending(connection)
        if events & selectors.EVENT_READ and not connection.closed:
            self._receive(connection)

    def _receive(self, connection):
        try:
            data = connection.socket.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. reset by the client
            self._close_connection(connection)
            return
        if data:
            self._call_handler(connection, connection.handler.data_received, data)
        else:
            connection.input_ended = True
            self._call_handler(connection, connection.handler.eof_received)
            connection.close()

    def _call_handler(self, connection, event, *args):
        """Run a handler's event; send what it returns; on error, drop the client."""
        try:
            reply = event(*args)
        except Exception:
            self.handle_error(connection.socket, connection.client_address)
            self._close_connection(connection)
            return
        if reply:
            connection.write(reply)

    def _send_pending(self, connection):
        """Send what the socket takes; close if done closing; else watch again."""
        if connection.closed:
            return
        if connection.pending_output:
            try:
                sent = connection.socket.send(connection.pending_output)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # e.g. the client went away
                self._close_connection(connection)
                return
            del connection.pending_output[:sent]
        if connection.closing and not connection.pending_output:
            self._close_connection(connection)
        else:
            self._watch(connection)

    def _watch(self, connection):
        """Make the selector watch *connection* for what it needs now."""
        events = 0
        if not (connection.input_ended or connection.closing) and (
            len(connection.pending_output) < self.max_pending_output
        ):
            events |= selectors.EVENT_READ
        if connection.pending_output:
            events |= selectors.EVENT_WRITE
        if self._selector is None or events == connection.watched_events:
            return
        if not connection.watched_events:
            self._selector.register(connection.socket, events, connection)
        elif not events:
            self._selector.unregister(connection.socket)
        else:
            self._selector.modify(connection.socket, events, connection)
        connection.watched_events = events

    def _close_connection(self, connection):
        """Remove from the table, call connection_lost(), close the socket."""
        if connection.closed:
            return
        connection.closed = True
        del self.connections[connection.fd]
        if self._selector is not None and connection.watched_events:
            self._selector.unregister(connection.socket)
        try:
            connection.handler.connection_lost()
        except Exception:
            self.handle_error(connection.socket, connection.client_address)
        self.shutdown_request(connection.socket)

    def server_close(self):
        """Close the listening socket, then every connection in the table."""
        super().server_close()
        for connection in list(self.connections.values()):
            self._close_connection(connection)


class SelectorTCPServer(SelectorMixIn, TCPServer): pass

if hasattr(socket, "AF_UNIX"):
    from .servers import UnixStreamServer

    class SelectorUnixStreamServer(SelectorMixIn, UnixStreamServer): pass
