"""ex01 (notebook 01, sockets by hand): the tests of an echo server built by hand.

No library class: every test is specific to the exercise.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .. import lab
from .engine import _where
from .helpers import STOP_TIME, _exchange, _expect, _recv_exactly, _talking
from .model import Students


@contextlib.contextmanager
def _serving_by_hand(students: Students, name: str, sock: socket.socket,
                     close_on_error: bool) -> Iterator[tuple[threading.Event, list]]:
    """Run the student's function *name*, ``name(sock, stop)``, in a thread for a ``with`` block;
    yield (stop, errors).  On leaving, stop is set, the thread given STOP_TIME to end and
    *sock* closed.  With *close_on_error*, an error closes *sock* at once, so that
    waiting clients fail at once instead of timing out."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            students[name](sock, stop)
        except BaseException as error:
            errors.append(error)
            if close_on_error:
                sock.close()

    thread = lab.run_in_thread(serve, name)
    try:
        yield stop, errors
    finally:
        stop.set()
        thread.join(STOP_TIME)
        sock.close()


@contextlib.contextmanager
def _echo_by_hand(students: Students) -> Iterator[tuple[Any, threading.Event, list]]:
    """Run the student's serve_echo() in a thread; yield (address, stop, errors)."""
    listener = students["open_listener"]()
    address = listener.getsockname()
    with _serving_by_hand(students, "serve_echo", listener, True) as (stop, errors):
        yield address, stop, errors


def _ex01_listener(students: Students) -> None:
    listener = students["open_listener"]()
    _expect(isinstance(listener, socket.socket),
            f"open_listener() should return a socket.socket, it returned {listener!r}")
    with listener:
        _expect(listener.family == socket.AF_INET and listener.type == socket.SOCK_STREAM,
                f"expected a TCP socket (AF_INET, SOCK_STREAM), got {listener!r}")
        host, port = listener.getsockname()
        _expect(port != 0, 'the socket is not bound: bind it to 127.0.0.1, port 0, before listen()')
        _expect(host == "127.0.0.1", f"expected it bound to 127.0.0.1, got {host}")
        with _talking("connecting to it", "call listen() after bind()"):
            lab.connect((host, port)).close()


def _ex01_echo(students: Students) -> None:
    with _echo_by_hand(students) as (address, _, errors):
        with _talking("echo of b'hello'", "close the connection once recv() returns b''", errors):
            reply = lab.tcp_request(address, b"hello")
        _expect(reply == b"hello", f"sent b'hello', expected it back, got {reply!r}")


def _ex01_echo_in_pieces(students: Students) -> None:
    hint = "send back each piece as soon as recv() returns it, do not wait for the end"
    with _echo_by_hand(students) as (address, _, errors):
        with _talking("a conversation", hint, errors), lab.connect(address) as sock:
            for piece in (b"one ", b"two ", b"three"):
                sock.sendall(piece)
                reply = _recv_exactly(sock, len(piece))
                _expect(reply == piece, f"sent {piece!r} and waited, got back {reply!r}; {hint}")


def _ex01_large_message(students: Students) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB, far more than one recv() returns
    hint = "loop on recv() until it returns b'', and use sendall(), not send()"
    with _echo_by_hand(students) as (address, _, errors):
        with _talking("echo of 256 KiB", hint, errors):
            reply = _exchange(address, payload)
        _expect(reply == payload,
                f"sent {len(payload)} bytes, got {len(reply)} back"
                + ("" if len(reply) != len(payload) else " but different") + f"; {hint}")


def _ex01_silent_client(students: Students) -> None:
    hint = ("give each connection a timeout (settimeout) and catch the error, "
            "so one client cannot stop the server")
    with _echo_by_hand(students) as (address, _, errors):
        with lab.connect(address):  # connects and never sends
            try:
                with _talking("a client after a silent one", hint):
                    reply = lab.tcp_request(address, b"still there?")
            except AssertionError:
                if not errors:
                    raise
                raise AssertionError(f"serve_echo() stopped with {errors[0]!r}"
                                     f"{_where(errors[0])} because of a silent client; "
                                     f"{hint}") from None
            _expect(reply == b"still there?", f"expected b'still there?' back, got {reply!r}")


def _ex01_stops(students: Students) -> None:
    with students["open_listener"]() as listener:
        _expect_stops(students["serve_echo"], listener, "serve_echo", "accept()")


def _expect_stops(serve: Callable, sock: socket.socket, name: str, call: str) -> None:
    """serve(sock, stop) must return soon after stop is set, and close *sock*."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(sock, stop)
        except BaseException as error:
            errors.append(error)

    thread = lab.run_in_thread(run, name)
    stop.set()
    thread.join(STOP_TIME)
    if errors:
        raise errors[0]
    _expect(not thread.is_alive(),
            f"{name}() still runs {STOP_TIME:g} s after stop.set(); give the socket a "
            f"timeout so {call} wakes up to look at stop")
    _expect(sock.fileno() == -1, f"{name}() returned but left its socket open; close it "
            "in a finally")


@contextlib.contextmanager
def _udp_echo_by_hand(students: Students) -> Iterator[tuple[socket.socket, threading.Event, list]]:
    """Run the student's serve_udp_echo() on a fresh UDP socket; yield (sock, stop, errors)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(lab.LOCALHOST)
    with _serving_by_hand(students, "serve_udp_echo", sock, False) as (stop, errors):
        yield sock, stop, errors


def _ex01_udp_echo(students: Students) -> None:
    hint = "recvfrom() one datagram, then sendto() it back to the address it came from"
    with _udp_echo_by_hand(students) as (sock, _, errors):
        address = sock.getsockname()
        for message in (b"first datagram", b"second datagram"):
            with _talking(f"echo of {message!r}", hint, errors):
                reply = lab.udp_request(address, message)
            _expect(reply == message, f"sent {message!r}, got {reply!r}; {hint}")


def _ex01_udp_stops(students: Students) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(lab.LOCALHOST)
        _expect_stops(students["serve_udp_echo"], sock, "serve_udp_echo", "recvfrom()")
