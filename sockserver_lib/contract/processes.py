"""Processes (notebook 09): a forking server reaps the children that have ended."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import types
from typing import Any

from .core import ABSENCE, PATIENCE, Kind, _Call, _fail, _within_time_limit, check
from .harness import _ask, _closing, _fresh_address, _receive, _reply, _server, _unblock


def _pid_handler(impl: types.SimpleNamespace, kind: Kind) -> type:
    """Answers with the pid of the process that handled the request."""
    class Pid(impl.BaseRequestHandler):
        def handle(self):
            _receive(self.request, kind)  # closing with unread data would reset
            _reply(self.request, self.client_address, kind, str(os.getpid()).encode())

    return Pid


def _served_by(server: Any, kind: Kind) -> tuple[int, int]:
    """Let *server* handle_request() one request in a child process.

    Returns the child's pid, and the reading end of a pipe whose writing
    end only that child holds (it reads end-of-file once the child is gone).
    """
    exit_reader, exit_writer = os.pipe()
    try:
        call = _Call(server.handle_request)
        try:
            reply = _ask(kind, server.server_address, b"pid?")
            call.result("handle_request()", "handle_request() returns once the child is started")
        finally:
            _unblock(call, kind, server.server_address)
    except BaseException:
        os.close(exit_reader)
        raise
    finally:
        os.close(exit_writer)  # the child has its copy; later children get none
    if not reply.isdigit() or int(reply) == os.getpid():
        os.close(exit_reader)
        _fail("the request handled in a child process", f"reply {reply!r}",
              "process_request() forks; the child runs finish_request()")
    return int(reply), exit_reader


def _wait_until_exited(pid: int, exit_reader: int) -> None:
    """Wait until child *pid* has exited, without reaping it.

    os.waitid(WNOWAIT) waits for the zombie itself; where it is missing
    (macOS before Python 3.13) the child's pipe reaching end-of-file says
    it is exiting, and _reap_with() allows for the moment until it is a
    zombie.
    """
    try:
        if hasattr(os, "waitid"):
            exited = _Call(_wait_without_reaping, pid).finished()
        else:
            ready, _, _ = select.select([exit_reader], [], [], PATIENCE)
            exited = bool(ready) and os.read(exit_reader, 1) == b""
    finally:
        os.close(exit_reader)
    if not exited:
        _fail(f"child {pid} exits after its request", "it was still running",
              "after finish_request() and shutdown_request() the child must os._exit()")


def _wait_without_reaping(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # reaped already: it has exited
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def _reap_with(server: Any, reaper: str, pid: int) -> None:
    """Call the hook *reaper* of *server*; fail unless it reaped child *pid*."""
    for _ in range(1 if hasattr(os, "waitid") else 20):
        if reaper == "service_actions":
            server.service_actions()
        else:
            _within_time_limit(server.handle_request, "handle_request() with nobody",
                               "handle_request() calls handle_timeout() after timeout")
        if not _exists(pid):
            break
        threading.Event().wait(ABSENCE / 20)  # without waitid: not a zombie yet?
    if _exists(pid):
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # reap it ourselves, to report it
        _fail(f"{reaper}() reaps the child that has exited",
              f"zombie {pid}" if reaped else f"child {pid} still running",
              "collect_children(): os.waitpid(pid, os.WNOHANG) for each child in "
              "active_children; call it from service_actions() and handle_timeout()")
    if pid in (server.active_children or ()):
        _fail(f"child {pid} removed from active_children once reaped",
              f"active_children = {server.active_children!r}",
              "discard the pid from active_children when waitpid() reaps it")


def _exists(pid: int) -> bool:
    """True while *pid* is a process, zombie or not (a reaped child is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, and belongs to someone else
    return True


@check(applies_to=lambda kind: kind.concurrency == "forking")
def forking_server_reaps_children(impl, kind):
    """Children that have ended are reaped by service_actions() and handle_timeout().

    serve_forever() calls service_actions() on every turn of its loop, and
    handle_request() calls handle_timeout() when nothing came: either one
    must reap (os.waitpid) the children that have exited, so no zombie is
    left while the server runs, and forget them (active_children).
    """
    with _fresh_address(kind) as address:
        server = _server(impl, kind, _pid_handler(impl, kind), address, timeout=ABSENCE / 4)
        with _closing(server, kind):
            for reaper in ("service_actions", "handle_timeout"):
                pid, exit_reader = _served_by(server, kind)
                _wait_until_exited(pid, exit_reader)
                _reap_with(server, reaper, pid)
