"""Layer 4: request handlers.

A handler object is created for each request; its constructor runs
setup(), then handle(), then finish() (even if handle() raised; not if
setup() raised).
StreamRequestHandler and DatagramRequestHandler hide the difference between
a connected socket and a (data, socket) pair behind rfile and wfile.
"""

import socket
from io import BufferedIOBase, BytesIO


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
    """

    rbufsize = -1
    wbufsize = 0
    timeout = None
    disable_nagle_algorithm = False

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
