"""Layer 4: request handlers.

A handler object is created for each request; its constructor runs
setup(), then handle(), then finish() (even if handle() raised; not if
setup() raised).
StreamRequestHandler and DatagramRequestHandler hide the difference between
a connected socket and a (data, socket) pair behind rfile and wfile.

Beyond the stdlib, StreamRequestHandler.read_line() reads a line with the
limits of a careful server (max_line_length, line_timeout), so that a
client cannot make a handler buffer without limit or keep it forever.
"""

import socket
from io import BufferedIOBase, BytesIO
from time import monotonic


class LineTooLongError(ValueError):
    """read_line() got max_line_length bytes without a newline.

    The rest of that line is not read: the connection is out of step with
    the protocol, so the request should end (the default, when the error
    leaves handle()) or answer an error and return.
    """


class BaseRequestHandler:
    """Base class for request handlers: override handle().

    Available to handle(): self.request (a socket for stream servers, the
    pair (data, socket) for datagram servers), self.client_address and
    self.server.  finish() runs after handle() even if handle() raised
    (as in the stdlib; older docs said otherwise); it is not called if
    setup() raised.
    """

    def __init__(self, request, client_address, server):
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self):
        """Called before handle().  Does nothing by default."""

    def handle(self):
        """Service the request.  Does nothing by default."""

    def finish(self):
        """Called after handle() to clean up.  Does nothing by default."""


class StreamRequestHandler(BaseRequestHandler):
    """Handler for stream sockets with file objects rfile and wfile.

    Class attributes: rbufsize (rfile buffer, -1 = default), wbufsize
    (0 = unbuffered: every wfile.write() is sent at once), timeout (seconds
    for socket operations, None = block forever), disable_nagle_algorithm
    (set TCP_NODELAY).

    ``timeout`` is the idle timeout: it bounds each wait for the client, so
    a client that sends nothing for that long gets TimeoutError in the
    handler (and its connection closed) instead of keeping the worker
    forever.  Its default, None, waits forever, as in the stdlib.

    Beyond the stdlib, for read_line() (None = no limit, the default):
    max_line_length, the most bytes a line may have, its newline included;
    line_timeout, the seconds a client has to send one whole line -- unlike
    ``timeout``, which a client that trickles one byte at a time never
    trips.
    """

    rbufsize = -1
    wbufsize = 0
    timeout = None
    disable_nagle_algorithm = False
    max_line_length = None
    line_timeout = None

    def setup(self):
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        if self.wbufsize == 0:
            self.wfile = _SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def read_line(self):
        """Read one line from rfile, its b"\\n" included; b"" at end of input.

        Like ``self.rfile.readline()``, with limits: raises LineTooLongError
        once max_line_length bytes have come without a newline, and
        TimeoutError when the whole line has not come within line_timeout
        seconds (each wait is also bounded by ``timeout``).  The last line
        lacks its newline if the client ends without one.  May be overridden.
        """
        limit = self.max_line_length
        if self.line_timeout is None:
            line = self.rfile.readline(-1 if limit is None else limit)
        else:
            line = self._read_line_by(monotonic() + self.line_timeout, limit)
        if limit is not None and len(line) >= limit and not line.endswith(b"\n"):
            raise LineTooLongError(
                f"{self.client_address!r} sent {limit} bytes without a newline "
                f"(max_line_length = {limit})"
            )
        return line

    def _read_line_by(self, deadline, limit):
        """Read as rfile.readline(limit) does; TimeoutError once *deadline* has passed."""
        line = bytearray()
        try:
            while not line.endswith(b"\n") and (limit is None or len(line) < limit):
                wait = deadline - monotonic()
                if wait <= 0:
                    raise self._line_timed_out()
                deadline_first = self.timeout is None or wait < self.timeout
                self.connection.settimeout(wait if deadline_first else self.timeout)
                try:
                    piece = self._read_piece(-1 if limit is None else limit - len(line))
                except TimeoutError:
                    if deadline_first:
                        raise self._line_timed_out() from None
                    raise  # the idle timeout: nothing came for ``timeout`` seconds
                if not piece:
                    break  # end of input
                line += piece
        finally:
            self.connection.settimeout(self.timeout)
        return bytes(line)

    def _line_timed_out(self):
        return TimeoutError(
            f"{self.client_address!r} did not send a whole line within "
            f"line_timeout = {self.line_timeout} s"
        )

    def _read_piece(self, most):
        """Up to *most* bytes (-1: any), never past a newline, with at most one wait."""
        peek = getattr(self.rfile, "peek", None)
        if peek is None:  # rbufsize = 0: an unbuffered rfile has no peek()
            return self.rfile.read(1)
        buffered = peek(1)  # waits only when nothing is buffered
        end = buffered.find(b"\n") + 1 or len(buffered)
        return self.rfile.read(end if most < 0 else min(end, most))

    def finish(self):
        if not self.wfile.closed:
            try:
                self.wfile.flush()
            except OSError:
                pass  # the client went away; nothing left to deliver to
        self.wfile.close()
        self.rfile.close()


class _SocketWriter(BufferedIOBase):
    """An unbuffered writable file on a socket: write() is sendall()."""

    def __init__(self, sock):
        self._sock = sock

    def writable(self):
        return True

    def write(self, b):
        self._sock.sendall(b)
        if type(b) is bytes:  # the usual case, and cheaper: no memoryview to build
            return len(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self):
        return self._sock.fileno()


class DatagramRequestHandler(BaseRequestHandler):
    """Handler for datagram sockets with in-memory rfile and wfile.

    rfile holds the received datagram; whatever handle() writes to wfile is
    sent back to the client as one datagram by finish().
    """

    def setup(self):
        self.packet, self.socket = self.request
        self.rfile = BytesIO(self.packet)
        self.wfile = BytesIO()

    def finish(self):
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
