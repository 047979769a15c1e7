"""Layer 2-3: the request loop (BaseServer) and the socket servers.

The inheritance is the standard library's::

    BaseServer -> TCPServer -> UnixStreamServer
                      |
                      v
                  UDPServer -> UnixDatagramServer

UnixDatagramServer derives from UDPServer, not UnixStreamServer: the only
difference between an IP and a Unix server is ``address_family``.

Where ``socketserver`` has known flaws this module does better, and each
place says so in its docstring ("Better than the stdlib: ..."):

- shutdown() wakes serve_forever() at once instead of after poll_interval,
  works when called before serve_forever() starts, and raises RuntimeError
  instead of deadlocking when called from the thread running the loop.
- accept() failing for lack of file descriptors backs off instead of
  spinning at 100% CPU.
- a busy address gives an error that says how to fix it.
- server_close() of a Unix server removes the socket file it created.
- a datagram longer than max_packet_size is reported to handle_error()
  (OversizeDatagramError) and dropped, instead of being handled cut short
  without notice.
"""

import errno
import math
import os
import select
import socket
import sys
import threading
from socket import SHUT_WR
from time import monotonic

#: accept() errors that mean "the process or system is out of resources";
#: retrying at once would spin, so the loop backs off instead.
OUT_OF_RESOURCES_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)
#: First and longest pause (seconds) after an out-of-resources accept().
ACCEPT_BACKOFF_FIRST = 0.01
ACCEPT_BACKOFF_MAX = 0.5

#: The event "readable" for a poller's register().
_READABLE = getattr(select, "POLLIN", 1)


class _SelectPoller:
    """select.poll()'s register() and poll() made of select.select(), for Windows."""

    def __init__(self):
        self._files = []

    def register(self, file, eventmask=_READABLE):
        self._files.append(file)

    def poll(self, timeout=None):
        """The readable files, as (file, _READABLE) pairs; wait at most *timeout* ms."""
        seconds = None if timeout is None or timeout < 0 else timeout / 1000
        readable, _, _ = select.select(self._files, [], [], seconds)
        return [(file, _READABLE) for file in readable]


#: Makes the object the loops wait with: select.poll() (any file number, one
#: system call, and unlike the selectors module no Python objects to build
#: on each wake-up), or the stand-in above where there is no poll().
_Poller = getattr(select, "poll", _SelectPoller)


def _milliseconds(seconds):
    """A poll() timeout: *seconds* rounded up to whole ms (None: wait forever)."""
    return None if seconds is None else max(0, math.ceil(seconds * 1000))


class OversizeDatagramError(OSError):
    """A datagram longer than the server's max_packet_size arrived; it was dropped.

    Raised by UDPServer.get_request() and given to handle_error() by the
    loop, while it is being handled (``sys.exc_info()`` holds it).  errno
    is EMSGSIZE; ``request`` is (the first max_packet_size bytes, the
    server's socket) and ``client_address`` the sender.
    """

    def __init__(self, request, client_address, max_packet_size):
        super().__init__(
            errno.EMSGSIZE,
            f"a datagram from {client_address!r} is longer than max_packet_size "
            f"({max_packet_size} bytes): dropped",
        )
        self.request = request
        self.client_address = client_address


class BaseServer:
    """The request loop, independent of any socket type.

    Methods for the caller: ``__init__(server_address, RequestHandlerClass)``,
    serve_forever(poll_interval=0.5), shutdown(), handle_request(), fileno().

    Methods that may be overridden: server_bind, server_activate,
    get_request, handle_timeout, verify_request, server_close,
    process_request, shutdown_request, close_request, service_actions,
    handle_error.  For derived classes: finish_request.

    One request goes through, in order: get_request -> verify_request ->
    process_request -> finish_request (builds the handler) ->
    shutdown_request -> close_request.  An exception from the handler goes to
    handle_error and the server keeps serving; SystemExit and
    KeyboardInterrupt are never swallowed.
    """

    timeout = None

    def __init__(self, server_address, RequestHandlerClass):
        """Constructor.  May be extended, do not override."""
        if not callable(RequestHandlerClass):
            raise TypeError(
                "RequestHandlerClass must be a class such as a "
                f"BaseRequestHandler subclass, got {RequestHandlerClass!r}"
            )
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self._is_shut_down = threading.Event()
        self._is_shut_down.set()  # not serving yet: shutdown() must not wait
        self._shutdown_request = False
        self._loop_lock = threading.Lock()
        self._waker = None  # (reader, writer) socket pair while serving
        self._loop_thread = None
        self._accept_backoff = 0.0

    def server_activate(self):
        """Called by the constructor to activate the server.

        May be overridden.
        """

    def serve_forever(self, poll_interval=0.5):
        """Handle one request at a time until shutdown().

        Calls service_actions() at least every *poll_interval* seconds.
        Ignores self.timeout.

        Better than the stdlib: shutdown() wakes this loop at once through a
        socket pair, instead of waiting up to poll_interval; a shutdown()
        that came before this call makes it return at once.
        """
        waker = self._start_loop()
        if waker is None:  # shutdown() came first; the socket may be closed
            return
        try:
            poller = _Poller()
            poller.register(self, _READABLE)
            poller.register(waker, _READABLE)
            timeout = _milliseconds(poll_interval)
            while not self._shutdown_request:
                ready = poller.poll(timeout)
                if self._shutdown_request:
                    break
                # Only shutdown() writes to the waker, so here a wake-up
                # means a request: no need to look at which file is ready.
                if ready:
                    self._handle_request_noblock()
                self.service_actions()
        finally:
            self._end_loop()

    def _start_loop(self):
        """Create the waker and mark the loop running; None if shut down."""
        with self._loop_lock:
            if self._waker is not None:
                raise RuntimeError("serve_forever() is already running")
            if self._shutdown_request:
                self._shutdown_request = False
                return None
            self._waker = socket.socketpair()
            for end in self._waker:
                end.setblocking(False)
            self._loop_thread = threading.get_ident()
            self._is_shut_down.clear()
            return self._waker[0]

    def _end_loop(self):
        with self._loop_lock:
            for end in self._waker:
                end.close()
            self._waker = None
            self._loop_thread = None
            self._shutdown_request = False
            self._is_shut_down.set()

    def shutdown(self):
        """Stop the serve_forever() loop and wait until it has stopped.

        Better than the stdlib: the loop stops at once (not after up to
        poll_interval); when no loop is running yet, the next
        serve_forever() returns at once instead of this call hanging; when
        called from the thread running serve_forever() (a handler of a
        synchronous server), it raises RuntimeError instead of deadlocking.
        """
        with self._loop_lock:
            if self._loop_thread == threading.get_ident():
                raise RuntimeError(
                    "shutdown() was called from the thread running "
                    "serve_forever() (a handler of a synchronous server?) "
                    "and would wait for itself forever; call it from "
                    "another thread, e.g. threading.Thread("
                    "target=server.shutdown).start()"
                )
            self._shutdown_request = True
            if self._waker is not None:
                try:
                    self._waker[1].send(b"x")
                except OSError:  # buffer full: the loop is awake already
                    pass
        self._wake_waits()
        self._is_shut_down.wait()

    def _wake_waits(self):
        """Called by shutdown() once it is requested: end any wait of the loop.

        A mix-in whose process_request() may wait (ThreadingMixIn with
        max_threads) extends this so that shutdown() stays prompt.
        """

    def service_actions(self):
        """Called by the serve_forever() loop after each wake-up.

        May be overridden by a subclass or mix-in to run periodic work.
        """

    def handle_request(self):
        """Handle one request, possibly blocking.

        Waits at most self.timeout seconds (or the socket's own timeout,
        whichever is shorter); if nothing arrives, calls handle_timeout().
        """
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = None if timeout is None else monotonic() + timeout
        poller = _Poller()
        poller.register(self, _READABLE)
        while True:
            if poller.poll(_milliseconds(timeout)):
                return self._handle_request_noblock()
            if deadline is not None:
                timeout = deadline - monotonic()
                if timeout < 0:
                    return self.handle_timeout()

    def _handle_request_noblock(self):
        """Handle one request; the socket is known to be readable."""
        try:
            request, client_address = self.get_request()
        except OversizeDatagramError as error:
            self.handle_error(error.request, error.client_address)
            return
        except OSError as error:
            self._after_failed_accept(error)
            return
        if self._accept_backoff:
            self._accept_backoff = 0.0
        if not self.verify_request(request, client_address):
            self.shutdown_request(request)
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
        except BaseException:
            self.shutdown_request(request)
            raise

    def _after_failed_accept(self, error):
        """Back off after an accept() that failed for lack of resources.

        Better than the stdlib, which retries at once and so spins at 100%
        CPU while the process is out of file descriptors.  Other errors
        (a client that reset before accept) are ignored, as in the stdlib.
        """
        if error.errno not in OUT_OF_RESOURCES_ERRNOS:
            return
        self._accept_backoff = min(
            max(2 * self._accept_backoff, ACCEPT_BACKOFF_FIRST),
            ACCEPT_BACKOFF_MAX,
        )
        self._pause(self._accept_backoff)

    def _pause(self, seconds):
        """Wait *seconds*, or less if shutdown() is called meanwhile."""
        waker = self._waker
        if waker is not None and self._loop_thread == threading.get_ident():
            select.select([waker[0]], [], [], seconds)
        else:  # handle_request(): no loop that shutdown() could stop
            threading.Event().wait(seconds)

    def handle_timeout(self):
        """Called when handle_request() waited self.timeout for nothing.

        May be overridden; ForkingMixIn extends it to reap children.
        """

    def verify_request(self, request, client_address):
        """Return True to process the request, False to deny it.

        May be overridden, e.g. for access control.  The default allows all.
        """
        return True

    def process_request(self, request, client_address):
        """Call finish_request(), then shutdown_request().

        Overridden by ForkingMixIn and ThreadingMixIn to do the same in a
        new process or thread.
        """
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self):
        """Clean up the server.  May be overridden."""

    def finish_request(self, request, client_address):
        """Finish one request by instantiating RequestHandlerClass."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request):
        """Shut down and close one request."""
        self.close_request(request)

    def close_request(self, request):
        """Clean up one request."""

    def handle_error(self, request, client_address):
        """Handle an exception raised while processing a request.

        May be overridden.  The default prints the traceback to stderr and
        lets the server go on serving.
        """
        import traceback  # here, as in the stdlib: it pulls in tokenize, linecache, ...,
        # about 1 MB that every forked child would otherwise copy page tables for
        print("-" * 40, file=sys.stderr)
        print(
            "Exception occurred during processing of request from",
            client_address,
            file=sys.stderr,
        )
        traceback.print_exc()
        print("-" * 40, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.server_close()


class TCPServer(BaseServer):
    """A synchronous TCP server: one connection at a time.

    Class attributes that may be overridden: address_family, socket_type,
    request_queue_size (the listen() backlog), allow_reuse_address,
    allow_reuse_port, timeout.

    Better than the stdlib: a busy address raises an OSError (errno
    EADDRINUSE, as before) whose message says how to fix it, and a Unix
    server removes the socket file it created when it is closed.
    """

    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    request_queue_size = 5
    allow_reuse_address = False
    allow_reuse_port = False

    def __init__(self, server_address, RequestHandlerClass, bind_and_activate=True):
        """Constructor.  May be extended, do not override."""
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self._socket_file = None  # (path, inode) of a Unix socket we bound
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def server_bind(self):
        """Called by the constructor to bind the socket.  May be overridden."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.allow_reuse_port and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            self.socket.bind(self.server_address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise OSError(error.errno, _address_in_use(self.server_address)) from None
            raise
        self._remember_socket_file()
        self.server_address = self.socket.getsockname()

    def _remember_socket_file(self):
        """Note the file a Unix socket created, so server_close removes it."""
        address = self.server_address
        if getattr(socket, "AF_UNIX", None) != self.address_family:
            return
        if not isinstance(address, (str, bytes)) or address[:1] in ("\0", b"\0", "", b""):
            return  # abstract namespace or autobind: no file
        self._socket_file = (address, os.stat(address).st_ino)

    def server_activate(self):
        """Called by the constructor to listen().  May be overridden."""
        self.socket.listen(self.request_queue_size)

    def server_close(self):
        """Close the listening socket.  May be overridden.

        Better than the stdlib: a Unix server also removes the socket file it
        created (only if it is still that file), so the path can be bound
        again.
        """
        self.socket.close()
        path_and_inode, self._socket_file = getattr(self, "_socket_file", None), None
        if path_and_inode is not None:
            path, inode = path_and_inode
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except OSError:
                pass  # already gone

    def fileno(self):
        """Return the listening socket's file descriptor (for poll() and selectors)."""
        return self.socket.fileno()

    def get_request(self):
        """Accept a connection: return (socket, client_address).

        May be overridden.
        """
        return self.socket.accept()

    def shutdown_request(self, request):
        """Shut down the writing side, then close the connection."""
        try:
            request.shutdown(SHUT_WR)  # not socket.SHUT_WR: cheaper in a cold forked child
        except OSError:
            pass  # some platforms raise ENOTCONN here
        self.close_request(request)

    def close_request(self, request):
        """Close the connection."""
        request.close()


def _address_in_use(address):
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return (
            f"address {host}:{port} is already in use; pass port 0 to let the "
            "system choose a free port, or stop the other server first"
        )
    return (
        f"address {address!r} is already in use; remove the stale socket "
        "file or choose another path"
    )


class UDPServer(TCPServer):
    """A synchronous UDP server: one datagram at a time.

    The request is the pair (data, socket); max_packet_size bounds data.

    Better than the stdlib: a datagram longer than max_packet_size is not
    handled cut short without notice; the loop gives it to handle_error()
    as an OversizeDatagramError (printed to stderr by default) and drops it.
    """

    allow_reuse_address = False
    allow_reuse_port = False
    socket_type = socket.SOCK_DGRAM
    max_packet_size = 8192

    def get_request(self):
        """Receive one datagram: return ((data, socket), client_address).

        Raises OversizeDatagramError for a datagram longer than
        max_packet_size (detected with recvmsg() and MSG_TRUNC; where the
        socket has no recvmsg(), as on Windows, the system decides: it
        raises an OSError, which the loop ignores).
        """
        data, client_addr, cut = _receive_datagram(self.socket, self.max_packet_size)
        if cut:
            raise OversizeDatagramError((data, self.socket), client_addr, self.max_packet_size)
        return (data, self.socket), client_addr

    def server_activate(self):
        """Nothing to do: datagram sockets do not listen()."""

    def shutdown_request(self, request):
        """Nothing to shut down: the socket is shared by all requests."""
        self.close_request(request)

    def close_request(self, request):
        """Nothing to close: the socket is shared by all requests."""


def _receive_datagram(sock, size):
    """Receive one datagram: (its first *size* bytes, sender, True if it was longer)."""
    if not hasattr(sock, "recvmsg"):
        data, address = sock.recvfrom(size)
        return data, address, False
    data, _, flags, address = sock.recvmsg(size)
    return data, address, bool(flags & getattr(socket, "MSG_TRUNC", 0))


if hasattr(socket, "AF_UNIX"):

    class UnixStreamServer(TCPServer):
        """TCPServer on a Unix domain socket (a path in the file system)."""

        address_family = socket.AF_UNIX

    class UnixDatagramServer(UDPServer):
        """UDPServer on a Unix domain socket; derives from UDPServer."""

        address_family = socket.AF_UNIX
