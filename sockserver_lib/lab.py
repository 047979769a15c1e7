"""Helpers shared by the notebooks, the tests and the exercises.

One way to run a server in the background and always stop it
(background_server), and small clients with a timeout on every socket.
Everything binds to 127.0.0.1 and port 0 unless told otherwise.
"""

from __future__ import annotations

import ast
import contextlib
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
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


def recv_all(sock: socket.socket, *, reset_ends: bool = False) -> bytes:
    """Read from *sock* until the peer closes; return everything read.

    With ``reset_ends=True`` a connection reset also ends the reading, like a
    close (a server that closes with unread data from the client resets the
    connection, and what it sent before may still be read).
    """
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        if not reset_ends:
            raise
    return b"".join(chunks)


def close_with_reset(sock: socket.socket) -> None:
    """Close *sock* with a reset (RST) instead of an orderly end-of-file (FIN).

    SO_LINGER on with a zero timeout makes close() drop unsent data and
    reset the connection: what a crashed or impatient peer looks like.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def recv_line(sock: socket.socket) -> bytes:
    """Read up to and including the next b"\\n"; less if the peer closes first.

    Reads one byte at a time, so nothing after the newline is taken from the
    socket: the next call (or another reader) gets the following line.
    """
    data = bytearray()
    while not data.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        data += byte
    return bytes(data)


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


#: Bytes a Unix socket's path may have everywhere (sun_path: 104 on macOS, 108 on Linux,
#: its final NUL included).
SOCKET_PATH_LIMIT = 100


@contextlib.contextmanager
def temporary_socket_path(name: str = "server") -> Iterator[str]:
    """Yield a fresh path for a Unix socket; remove it and its folder after.

    The folder is short-named under the temp dir, or under /tmp if the temp
    dir's own path is too long (macOS's, inside a grader's): a Unix socket's
    path holds at most SOCKET_PATH_LIMIT bytes.
    """
    folder = tempfile.mkdtemp(prefix="sk-")
    path = os.path.join(folder, name + ".sock")
    if len(os.fsencode(path)) > SOCKET_PATH_LIMIT and os.path.isdir("/tmp"):
        os.rmdir(folder)
        folder = tempfile.mkdtemp(prefix="sk-", dir="/tmp")
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


#: Seconds server_process() waits for a script to print its address, and
#: then for it to exit once asked to stop, before it gives up on it.
PROCESS_TIMEOUT = 10.0


class ServerProcess:
    """A server script running in a child process, as yielded by server_process().

    ``address`` is what the script printed on its first line, ``pid`` the
    child's process id.  Once the ``with`` block has ended, ``returncode``,
    ``stdout`` (everything printed after the address line) and ``stderr``
    are filled in.
    """

    def __init__(self, process: subprocess.Popen, address: Any) -> None:
        self.process = process
        self.address = address
        self.pid: int = process.pid
        self.returncode: int | None = None
        self.stdout = ""
        self.stderr = ""


@contextlib.contextmanager
def server_process(
    script_path: str | os.PathLike, *args: Any, timeout: float = PROCESS_TIMEOUT
) -> Iterator[ServerProcess]:
    """Run ``python script_path *args`` in a child process for a ``with`` block.

    The script must print ``repr(server.server_address)`` as its first line,
    with ``flush=True`` (its stdout is a pipe, so block-buffered: the child's
    environment has no PYTHONUNBUFFERED, so this holds on every machine), and
    then serve.  The line is parsed with ``ast.literal_eval`` (a line that is
    not a Python literal is used as a string) and yielded as ``.address``::

        with server_process("forking_server.py") as child:
            print(tcp_request(child.address, b"hi\n"))
        print(child.stdout)

    However the block is left, the child is asked to stop as Ctrl-C would
    (SIGINT: KeyboardInterrupt in the script, whose ``with server:`` then
    closes the server), killed if it has not exited within *timeout*
    seconds, and always reaped.  Its output is then in ``.stdout`` and
    ``.stderr``, except what its own still-running children print later.
    Raises RuntimeError if the script exits before printing its address,
    TimeoutError if it prints nothing within *timeout* seconds.
    """
    process = subprocess.Popen(
        [sys.executable, os.fspath(script_path), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
    )
    first_line: queue.Queue[str] = queue.Queue()
    stdout_rest: list[str] = []
    stderr_all: list[str] = []

    def read_stdout() -> None:
        first_line.put(process.stdout.readline())
        stdout_rest.append(process.stdout.read())

    pumps = [
        run_in_thread(read_stdout, name="server_process-stdout"),
        run_in_thread(lambda: stderr_all.append(process.stderr.read()), "server_process-stderr"),
    ]
    child = ServerProcess(process, None)
    line = None
    try:
        line = _first_line(first_line, timeout)
        if line:
            child.address = _parse_address(line)
            yield child
    finally:
        child.returncode = _stop_process(process, timeout)
        for pump in pumps:
            pump.join(timeout)
        child.stdout = "".join(stdout_rest)
        child.stderr = "".join(stderr_all)
        if not any(pump.is_alive() for pump in pumps):  # else a grandchild holds them
            process.stdout.close()
            process.stderr.close()
    if line is None:
        raise TimeoutError(
            f"{script_path} printed no address within {timeout} s; print "
            "repr(server.server_address) with flush=True before serving.\n"
            f"Its stderr:\n{child.stderr[-2000:]}"
        )
    if not line:
        raise RuntimeError(
            f"{script_path} exited (status {child.returncode}) before printing "
            f"its address. Its stderr:\n{child.stderr[-2000:]}"
        )


def _first_line(lines: queue.Queue, timeout: float) -> str | None:
    """Return the script's first line ("" if it ended first), None on timeout."""
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def _parse_address(line: str) -> Any:
    """Parse ``repr(server_address)``; a line that is no literal is a path."""
    try:
        return ast.literal_eval(line.strip())
    except (ValueError, SyntaxError):
        return line.strip()


def _stop_process(process: subprocess.Popen, timeout: float) -> int:
    """Interrupt *process* (SIGINT, as Ctrl-C), kill it if it lingers, reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
