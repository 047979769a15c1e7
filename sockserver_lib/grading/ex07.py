"""ex07 (notebook 07, serve_forever and shutdown): service_actions() on every
turn, and a shutdown() that stops the loop at once.
"""

from __future__ import annotations

import threading
from typing import Any

import sockserver_lib

from .. import lab
from .helpers import STOP_TIME, _expect, _line_echo_handler, _talking
from .model import Students


def _ex07_server(students: Students, handler: type | None = None, **attributes: Any):
    base = type("Loop", (students["ServeForeverMixIn"], sockserver_lib.TCPServer), attributes)
    return base(lab.LOCALHOST, handler or _line_echo_handler())


def _ex07_service_actions(students: Students) -> None:
    turns = threading.Semaphore(0)
    server = _ex07_server(students, service_actions=lambda self: turns.release())
    loop = lab.run_in_thread(lambda: server.serve_forever(0.01), "serve_forever")
    try:
        for turn in range(3):
            _expect(turns.acquire(timeout=lab.CLIENT_TIMEOUT),
                    f"service_actions() was called {turn} times in {lab.CLIENT_TIMEOUT:g} s "
                    "with poll_interval=0.01 and no client; call it after every wake-up "
                    "of the loop, timeouts included")
    finally:
        _stop_loop(server, loop)


def _ex07_shutdown_at_once(students: Students) -> None:
    server = _ex07_server(students)
    loop = lab.run_in_thread(lambda: server.serve_forever(60), "serve_forever")
    try:
        with _talking("a request", "serve_forever() handles ready requests"):
            reply = lab.tcp_request(server.server_address, b"up?\n")
        _expect(reply == b"up?\n", f"expected b'up?\\n', got {reply!r}")
        stopper = lab.run_in_thread(server.shutdown, "shutdown")
        stopper.join(STOP_TIME)
        loop.join(STOP_TIME)  # shutdown() returns as the loop ends; its thread then exits
        _expect(not stopper.is_alive() and not loop.is_alive(),
                f"with poll_interval=60, shutdown() had not stopped the loop after "
                f"{STOP_TIME:g} s; wake the loop up at once: register the reading end of "
                "a socket.socketpair() with the selector and write a byte to the other end")
    finally:
        server.server_close()


def _stop_loop(server: Any, loop: threading.Thread) -> None:
    stopper = lab.run_in_thread(server.shutdown, "shutdown")
    stopper.join(STOP_TIME)
    loop.join(STOP_TIME)
    server.server_close()
