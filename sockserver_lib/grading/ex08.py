"""ex08 (notebook 08, threads): a shared counter that must not race.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import sockserver_lib

from .. import lab
from .helpers import RACE_WINDOW, _ContentionDetectingLock, _expect
from .model import Students


def _counting_server(barrier: threading.Barrier | None = None) -> type:
    """A threading server with hits and hits_lock; with *barrier*, a race detector."""

    class Counting(sockserver_lib.ThreadingMixIn, sockserver_lib.TCPServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.hits = 0
            self.hits_lock = (
                threading.Lock() if barrier is None else _ContentionDetectingLock(barrier)
            )
            super().__init__(*args, **kwargs)

    if barrier is None:
        return Counting

    class RaceDetecting(Counting):
        @property
        def hits(self) -> int:
            value = self._hits
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(RACE_WINDOW)  # let a second reader read the same value
            return value

        @hits.setter
        def hits(self, value: int) -> None:
            self._hits = value

    return RaceDetecting


def _ex08_counts(students: Students) -> None:
    server = _counting_server()(lab.LOCALHOST, students["CountingHandler"])
    with lab.background_server(server):
        replies = [lab.tcp_request(server.server_address, b"") for _ in range(3)]
    _expect(replies == [b"1\n", b"2\n", b"3\n"],
            f"3 clients one after the other got {replies!r}, expected [b'1\\n', b'2\\n', "
            "b'3\\n']: add 1 to self.server.hits and reply with the new count")
    _expect(server.hits == 3, f"after 3 requests server.hits is {server.hits!r}")


def _ex08_no_lost_updates(students: Students) -> None:
    barrier = threading.Barrier(2)
    server = _counting_server(barrier)(lab.LOCALHOST, students["CountingHandler"])
    replies: list[bytes] = []
    with lab.background_server(server):
        clients = [
            lab.run_in_thread(lambda: replies.append(lab.tcp_request(server.server_address, b"")))
            for _ in range(2)
        ]
        for client in clients:
            client.join(lab.CLIENT_TIMEOUT + RACE_WINDOW)
    _expect(server._hits == 2 and sorted(replies) == [b"1\n", b"2\n"],
            f"two clients at the same time left hits = {server._hits} and got {replies!r}: "
            "both threads read hits before either wrote it back, so one update was lost. "
            "Hold self.server.hits_lock (with ...:) around reading and writing hits")
