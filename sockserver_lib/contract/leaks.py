"""No leaks (notebooks 03 to 09, and 13 on hardening): after many requests, polite or not,
no descriptor, thread or child process is left.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from sockserver_lib import lab

from .core import GARBAGE, LEAK_ROUNDS, PATIENCE, Kind, _fail, check
from .harness import (
    _ask,
    _datagram_client,
    _echo_handler,
    _expect_echo,
    _hang_up,
    _quiet_handle_error,
    _running,
)


def _open_descriptors() -> int | None:
    """How many file descriptors this process has open; None where unknown."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return len(os.listdir(folder))
    return None


def _misbehave(kind: Kind, address: Any, round_number: int, silent: list) -> None:
    """Send one request, polite or not, depending on *round_number*."""
    behaviour = round_number % 4
    if behaviour == 0:
        _expect_echo(kind, address, b"polite %d\n" % round_number)
    elif behaviour == 1:
        _ask(kind, address, GARBAGE)
    elif kind.is_stream and behaviour == 2:
        _hang_up(lab.connect(address, PATIENCE))  # without a word
    elif kind.is_stream and kind.concurrency in ("threading", "forking"):
        silent.append(lab.connect(address, PATIENCE))  # says nothing until the end
    elif kind.is_stream:
        # a sync server (or every worker of a pool) would wait for a silent client
        _hang_up(lab.connect(address, PATIENCE))
    else:
        with _datagram_client(kind) as client:  # leaves before the reply
            client.sendto(b"" if behaviour == 2 else b"bye", address)


def _check_threads_ended(before: set[threading.Thread]) -> None:
    leftover = [thread for thread in threading.enumerate() if thread not in before]
    for thread in leftover:
        thread.join(PATIENCE)
    alive = [thread.name for thread in leftover if thread.is_alive()]
    if alive:
        _fail("no thread left once server_close() has returned", f"threads {alive}",
              "each request thread must end when its request is done; server_close() "
              "waits for them when block_on_close is true")


@check()
def no_leaks_after_many_requests(impl, kind):
    """After many requests, polite or not, no descriptor, thread or child process is left."""
    threads_before = set(threading.enumerate())
    descriptors_before = _open_descriptors()
    with _running(impl, kind, _echo_handler(impl, kind),
                  handle_error=_quiet_handle_error) as server:
        silent: list[socket.socket] = []
        try:
            for round_number in range(LEAK_ROUNDS):
                _misbehave(kind, server.server_address, round_number, silent)
        finally:
            for client in silent:
                _hang_up(client)
        _expect_echo(kind, server.server_address, b"still serving\n")
    _check_threads_ended(threads_before)
    descriptors_after = _open_descriptors()
    if descriptors_before is not None and descriptors_after > descriptors_before:
        _fail(f"at most {descriptors_before} open descriptors, as before the server started",
              f"{descriptors_after}",
              "close every request (close_request) and the listening socket "
              "(server_close)")
