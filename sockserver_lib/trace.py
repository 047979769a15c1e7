"""Record what a server does, hook by hook, to draw it afterwards (kit-only).

Not part of ``socketserver``: a teaching tool.  A Trace wraps a server
class and a handler class in subclasses that record every hook call::

    trace = Trace()
    Server, Handler = trace.wrap(socketserver.ThreadingTCPServer, EchoHandler)
    with background_server(Server(LOCALHOST, Handler)) as server:
        tcp_request(server.server_address, b"hi\\n")
    trace.events()    # [Event(time=0.000012, hook='get_request', phase='call', ...), ...]

Each Event has the time (seconds since the trace began, from the monotonic
clock), the hook, the phase ("call", "return", "raise" or "note"), the
process id and thread name it ran in, and its arguments or result in short
form ("fd 7", "('127.0.0.1', 53422)").  ``trace.note(what, detail)`` adds an
event of your own (a client's step, a value read).

Events go to a file, one JSON line each, appended with a single write: a
forked child inherits the file and its events arrive too, and a server run
in another process (``lab.server_process``) can be given the file's path
(``Trace(path)``).  Classes that are not wrapped are not touched, so tracing
costs nothing when not used; ``trace.enabled = False`` makes the wrapped
ones call straight through (benchmarks/bench_trace.py measures both).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The server's hooks a trace records, where the class has them.
SERVER_HOOKS = (
    "serve_forever", "handle_request", "service_actions", "handle_timeout", "shutdown",
    "get_request", "verify_request", "process_request", "process_request_thread",
    "finish_request", "shutdown_request", "close_request", "handle_error",
    "collect_children", "server_close",
)
#: The request handler's hooks a trace records (the blocking ones and the event ones).
HANDLER_HOOKS = ("setup", "handle", "finish",
                 "connection_made", "data_received", "eof_received", "connection_lost")
#: Longest detail kept, in characters: enough to tell arguments apart.
DETAIL_WIDTH = 60


@dataclasses.dataclass(frozen=True)
class Event:
    """One recorded step: *hook* entered ("call"), left ("return", "raise") or a "note"."""

    time: float
    hook: str
    phase: str
    pid: int
    thread: str
    detail: str = ""

    @property
    def where(self) -> str:
        """The lane it ran in: "pid 123 MainThread"."""
        return f"pid {self.pid} {self.thread}"


class Trace:
    """Where events are recorded; see the module docstring."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            handle, path = tempfile.mkstemp(prefix="sockserver-trace-", suffix=".jsonl")
            os.close(handle)
        self.path = Path(path)
        self.enabled = True
        self._start = time.monotonic()
        # O_APPEND: each event is one write() at the end, whole, from any process
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    # --- recording ---------------------------------------------------------

    def note(self, hook: str, detail: Any = "", phase: str = "note") -> None:
        """Record one event now, in the calling thread and process."""
        # the monotonic clock is the same in every process: times from a forked child or
        # another process using the same file line up with this one's
        event = Event(time.monotonic(), hook, phase, os.getpid(),
                      threading.current_thread().name, _short(detail))
        os.write(self._fd, (json.dumps(dataclasses.asdict(event)) + "\n").encode())

    def events(self) -> list[Event]:
        """Every event recorded so far, by any process, in time order; times in seconds
        since this Trace was made."""
        lines = self.path.read_text(encoding="utf-8").splitlines()
        found = [Event(**json.loads(line)) for line in lines if line.endswith("}")]
        return [dataclasses.replace(event, time=round(event.time - self._start, 6))
                for event in sorted(found, key=lambda event: event.time)]

    def clear(self) -> None:
        """Forget the events so far (the clock goes on)."""
        os.truncate(self.path, 0)

    def close(self) -> None:
        """Stop recording and remove the file."""
        os.close(self._fd)
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- wrapping ------------------------------------------------------------

    def wrap(self, server_class: type, handler_class: type | None = None
             ) -> tuple[type, type | None]:
        """(a traced subclass of *server_class*, a traced subclass of *handler_class*)."""
        traced_handler = self.traced(handler_class, HANDLER_HOOKS) if handler_class else None
        return self.traced(server_class, SERVER_HOOKS), traced_handler

    def traced(self, cls: type, hooks: Iterable[str]) -> type:
        """A subclass of *cls* whose *hooks* (those it has) record their calls."""
        methods = {name: self._recording(name, getattr(cls, name))
                   for name in hooks if callable(getattr(cls, name, None))}
        return type(f"Traced{cls.__name__}", (cls,), methods)

    def _recording(self, hook: str, method: Any) -> Any:
        trace = self

        @functools.wraps(method)
        def recording(instance: Any, *args: Any, **kwargs: Any) -> Any:
            if not trace.enabled:
                return method(instance, *args, **kwargs)
            trace.note(hook, _arguments(hook, instance, args), "call")
            try:
                result = method(instance, *args, **kwargs)
            except BaseException as error:
                trace.note(hook, type(error).__name__, "raise")
                raise
            trace.note(hook, _result(hook, instance, result), "return")
            return result

        return recording


# --- short forms --------------------------------------------------------------

def _short(value: Any) -> str:
    if isinstance(value, socket.socket):
        text = f"fd {value.fileno()}" if value.fileno() >= 0 else "closed socket"
    elif isinstance(value, bytes):
        text = repr(value)
    elif isinstance(value, tuple) and any(isinstance(item, socket.socket) for item in value):
        text = ", ".join(_short(item) for item in value)
    else:
        text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= DETAIL_WIDTH else text[: DETAIL_WIDTH - 3] + "..."


def _arguments(hook: str, instance: Any, args: tuple) -> str:
    if hook == "collect_children":
        return _short(sorted(getattr(instance, "active_children", None) or ()))
    return _short(args[0]) if len(args) == 1 else _short(args) if args else ""


def _result(hook: str, instance: Any, result: Any) -> str:
    if hook == "collect_children":  # which children were reaped: those gone from the set
        return _short(sorted(getattr(instance, "active_children", None) or ()))
    return "" if result is None else _short(result)
