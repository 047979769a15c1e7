"""The checks' harness: servers, clients and child processes, with bounded waits.

A server of a kind on a fresh address, served in the background and always
stopped and closed (_running, _closing, _serving); clients for every
transport (_ask, _datagram_client, _hang_up); simple handlers; the child
processes of a forking server, which must all be gone after server_close();
and _Signal, a one-way signal that crosses threads and fork().
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import types
from collections.abc import Callable, Iterator
from typing import Any

from sockserver_lib import lab

from .core import (
    ABSENCE,
    PATIENCE,
    POLL_INTERVAL,
    POOL_CONCURRENCIES,
    Kind,
    _Call,
    _expect_equal,
    _fail,
    _within_time_limit,
    server_class,
)

# --- Servers --------------------------------------------------------------

@contextlib.contextmanager
def _fresh_address(kind: Kind) -> Iterator[Any]:
    """Yield an address for *kind*: 127.0.0.1 port 0, or a temporary path."""
    if kind.is_unix:
        with lab.temporary_socket_path() as path:
            yield path
    else:
        yield lab.LOCALHOST


def _server(impl: types.SimpleNamespace, kind: Kind, handler: type, address: Any,
            **overrides: Any) -> Any:
    """Build and bind a server of *kind*; *overrides* become class attributes."""
    if kind.concurrency in POOL_CONCURRENCIES:
        # two workers: enough to show concurrency, and the same on every machine
        overrides.setdefault("pool_size", 2)
    returned = _Signal()
    overrides.setdefault("process_request", _exit_if_child_returns(returned))
    base = server_class(impl, kind)
    cls = type(f"Checked{base.__name__}", (base,), {**overrides, "_returned_children": returned})
    try:
        return cls(address, handler)
    except BaseException:
        returned.close()
        raise


def _exit_if_child_returns(returned: _Signal) -> Callable[..., None]:
    """A process_request() that ends a forked child that comes back from it.

    A child that returns would go on running the parent's serve_forever()
    loop (and fork children of its own); this ends it at once and notes it,
    so the check fails with a clear message instead of leaving processes.
    """
    def process_request(server, request, client_address):
        pid = os.getpid()
        try:
            super(type(server), server).process_request(request, client_address)
        finally:
            if os.getpid() != pid:
                returned.notify()
                os._exit(1)

    return process_request


def _forks(kind: Kind) -> bool:
    """True if servers of *kind* handle requests in child processes."""
    return kind.concurrency in ("forking", "prefork")


def _close(server: Any) -> None:
    _within_time_limit(
        server.server_close, "server_close()",
        "server_close() closes the socket; a mix-in may wait for its threads or "
        "children, which must all end when their clients have gone",
    )


@contextlib.contextmanager
def _closing(server: Any, kind: Kind) -> Iterator[Any]:
    """Close *server* on leaving; fail if it left child processes behind."""
    children_before = _children() if _forks(kind) else None
    failed = False
    try:
        yield server
    except BaseException:
        failed = True
        raise
    finally:
        try:
            _close(server)
        finally:
            _check_child_processes(server, kind, children_before, report=not failed)


def _check_child_processes(server: Any, kind: Kind, children_before: set[int] | None,
                           report: bool) -> None:
    """After server_close(): no child came back from process_request(), none is left."""
    returned = vars(type(server)).get("_returned_children")
    came_back = returned is not None and returned.wait(0)
    if returned is not None:
        returned.close()
    if _forks(kind):
        _check_no_new_children(children_before, report=report and not came_back)
    if came_back:
        _fail("each child process ends with os._exit() after its request",
              "a child returned from process_request() (it would have gone on "
              "running the parent's serve_forever() loop)",
              "in the child (fork() returned 0): finish_request(), shutdown_request(), "
              "then os._exit(), even if the handler raised; never return")


@contextlib.contextmanager
def _serving(server: Any) -> Iterator[Any]:
    """Run serve_forever() in a thread for a ``with`` block; always stop it.

    Like lab.background_server, but every wait is bounded, so a
    shutdown() that never returns fails the check instead of hanging it.
    """
    loop = _Call(server.serve_forever, POLL_INTERVAL)
    try:
        yield server
    finally:
        stop = _Call(server.shutdown)
        if not stop.finished():
            problem = "" if loop.raised is None else f" (serve_forever() raised {loop.raised!r})"
            _fail("shutdown() returns once serve_forever() has stopped",
                  f"shutdown() was still waiting after {PATIENCE:g} s{problem}",
                  "serve_forever() must check the shutdown request at least every "
                  "poll_interval and signal that it has stopped, even when it fails")
        loop.finished()


@contextlib.contextmanager
def _running(impl: types.SimpleNamespace, kind: Kind, handler: type,
             **overrides: Any) -> Iterator[Any]:
    """A server of *kind* serving in the background on a fresh address."""
    with _fresh_address(kind) as address:
        server = _server(impl, kind, handler, address, **overrides)
        with _closing(server, kind), _serving(server):
            yield server


# --- Child processes (forking servers) ------------------------------------

def _children() -> set[int] | None:
    """Pids of this process's children, zombies included; None without /proc."""
    if not os.path.isdir("/proc/self/task"):
        return None
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == me:
            found.add(int(entry))
    return found


def _check_no_new_children(before: set[int] | None, report: bool) -> None:
    """Kill and reap children that appeared since *before*; fail if *report*."""
    if before is None:  # no /proc: ask the kernel whether any child is left
        if report:
            _check_no_child_with_waitpid()
        return
    strays = sorted((_children() or set()) - before)
    for pid in strays:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    if strays and report:
        _fail("no child process left once server_close() has returned",
              f"child processes {strays} were still running or not reaped (zombies)",
              "a child must end with os._exit() after its request; the server must "
              "os.waitpid() each child, and server_close() must wait for them all")


def _check_no_child_with_waitpid() -> None:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return  # no children at all
    _fail("no child process left once server_close() has returned",
          "a child that had not been reaped" if pid else "a child still running",
          "the server must os.waitpid() each child, and server_close() must wait for them")


# --- Clients and handlers -------------------------------------------------

def _ask(kind: Kind, address: Any, payload: bytes) -> bytes:
    """Send one request on a new client and return the whole reply."""
    try:
        if kind.is_stream:
            return lab.tcp_request(address, payload, PATIENCE)
        return lab.udp_request(address, payload, PATIENCE)
    except TimeoutError:
        _fail(f"a reply to {payload!r} within {PATIENCE:g} s", "no reply (timed out)",
              "is serve_forever() handling requests, does the handler write its "
              "answer, and is a stream connection closed after the request?")


def _expect_echo(kind: Kind, address: Any, payload: bytes = b"hello\n") -> None:
    _expect_equal(_ask(kind, address, payload), payload,
                  "the server should answer every request; the echo handler writes "
                  "back exactly what it read")


@contextlib.contextmanager
def _datagram_client(kind: Kind) -> Iterator[socket.socket]:
    """A bound datagram socket with a timeout (a Unix one needs a path to be answered)."""
    family = socket.AF_UNIX if kind.is_unix else socket.AF_INET
    with contextlib.ExitStack() as cleanup:
        sock = cleanup.enter_context(socket.socket(family, socket.SOCK_DGRAM))
        sock.settimeout(PATIENCE)
        if kind.is_unix:
            sock.bind(cleanup.enter_context(lab.temporary_socket_path("client")))
        else:
            sock.bind(lab.LOCALHOST)
        yield sock


def _hang_up(sock: socket.socket) -> None:
    """Close a client's connection for good.

    shutdown() first: a forking server's children inherit copies of the
    test's own client sockets, and close() alone would leave the connection
    open through those copies (the handler would then wait for nothing).
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _receive(request: Any, kind: Kind) -> bytes:
    """The request's data, read by a BaseRequestHandler-based handler."""
    return request.recv(1024) if kind.is_stream else request[0]


def _reply(request: Any, client_address: Any, kind: Kind, data: bytes) -> None:
    """Send *data* back on a raw request (a socket, or a (data, socket) pair)."""
    if kind.is_stream:
        request.sendall(data)
    else:
        request[1].sendto(data, client_address)


def _echo_handler(impl: types.SimpleNamespace, kind: Kind) -> type:
    """An echo handler built on the implementation's Stream/DatagramRequestHandler."""
    if kind.is_stream:
        class StreamEcho(impl.StreamRequestHandler):
            timeout = PATIENCE

            def handle(self):
                self.wfile.write(self.rfile.readline())

        return StreamEcho

    class DatagramEcho(impl.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read())

    return DatagramEcho


def _quiet_handle_error(server: Any, request: Any, client_address: Any) -> None:
    """handle_error() that prints nothing: errors are expected in that check."""


class _Signal:
    """A one-way signal that crosses threads and fork(): a socket pair."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()

    def notify(self) -> None:
        self._writer.send(b"!")

    def wait(self, timeout: float = PATIENCE) -> bool:
        """Consume one notification; False if none came within *timeout*.

        ``wait(0)`` takes a notification only if one is there already.
        """
        ready, _, _ = select.select([self._reader], [], [], timeout)
        return bool(ready) and self._reader.recv(1) == b"!"

    def count(self) -> int:
        """Consume the notifications there are; return how many."""
        taken = 0
        while self.wait(0):
            taken += 1
        return taken

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def _unblock(call: _Call, kind: Kind, address: Any) -> None:
    """Wake a handle_request() that is still waiting, by sending it a request."""
    if call.finished(0):
        return
    with contextlib.suppress(OSError):
        if kind.is_stream:
            _hang_up(lab.connect(address, ABSENCE))
        else:
            with _datagram_client(kind) as sock:
                sock.sendto(b"wake up", address)
    call.finished()
