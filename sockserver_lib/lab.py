"""Helpers shared by the notebooks, the tests and the exercises.

One way to run a server in the background and always stop it
(background_server), and small clients with a timeout on every socket.
Everything binds to 127.0.0.1 and port 0 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: Seconds any helper socket waits before giving up: long enough for a slow
#: laptop, short enough that a mistake fails instead of hanging a notebook.
CLIENT_TIMEOUT = 5.0
#: The address to serve on: loopback, with port 0 so the system picks a
#: free port (nothing else on the machine can reach it or collide with it).
LOCALHOST = ("127.0.0.1", 0)


@contextlib.contextmanager
def background_server(server: Any, poll_interval: float = 0.5) -> Iterator[Any]:
    """Run ``server.serve_forever()`` in a daemon thread for a ``with`` block.

    On leaving the block, however it is left, the server is shut down and
    closed and the thread is joined, so re-running a notebook cell never
    finds an old server still holding its port::

        with background_server(TCPServer(LOCALHOST, Echo)) as server:
            print(tcp_request(server.server_address, b"hi\\n"))
    """
    thread = threading.Thread(
        target=server.serve_forever,
        args=(poll_interval,),
        name=f"serve_forever-{type(server).__name__}",
        daemon=True,
    )
    thread.start()
    try:
        yield server
    finally:
        try:
            server.shutdown()
        finally:
            server.server_close()
            thread.join(CLIENT_TIMEOUT)


def family_of(address: Any) -> int:
    """Return the socket family that can reach *address* (a path is AF_UNIX)."""
    if isinstance(address, (str, bytes)):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET


def connect(address: Any, timeout: float = CLIENT_TIMEOUT) -> socket.socket:
    """Return a stream socket connected to *address*, with a timeout."""
    sock = socket.socket(family_of(address), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def recv_all(sock: socket.socket) -> bytes:
    """Read from *sock* until the peer closes; return everything read."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def tcp_request(address: Any, payload: bytes, timeout: float = CLIENT_TIMEOUT) -> bytes:
    """Send *payload* on a new connection, then return all the reply.

    The sending side is shut down after the payload, so a server that reads
    until end-of-file sees it; the reply is read until the server closes.
    Works for TCP and Unix stream servers.
    """
    with connect(address, timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


def udp_request(
    address: Any, payload: bytes, timeout: float = CLIENT_TIMEOUT, bufsize: int = 65536
) -> bytes:
    """Send one datagram to *address* and return the first reply datagram.

    Works for UDP and Unix datagram servers; a Unix datagram client needs
    its own path to be answered, so one is made in a temporary folder and
    removed afterwards.
    """
    family = family_of(address)
    with contextlib.ExitStack() as cleanup:
        sock = cleanup.enter_context(socket.socket(family, socket.SOCK_DGRAM))
        sock.settimeout(timeout)
        if family == socket.AF_UNIX:
            sock.bind(cleanup.enter_context(temporary_socket_path("client")))
        sock.sendto(payload, address)
        return sock.recv(bufsize)


@contextlib.contextmanager
def temporary_socket_path(name: str = "server") -> Iterator[str]:
    """Yield a fresh path for a Unix socket; remove it and its folder after.

    The folder is short-named under the system temp dir because Unix socket
    paths are limited to about 100 bytes.
    """
    folder = tempfile.mkdtemp(prefix="sk-")
    path = os.path.join(folder, name + ".sock")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.rmdir(folder)


def run_in_thread(target: Callable[[], Any], name: str = "worker") -> threading.Thread:
    """Start *target* in a daemon thread and return the thread."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
