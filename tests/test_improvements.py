"""Where sockserver_lib does better than the stdlib's socketserver, asserted.

Each improvement is documented in servers.py or mixins.py ("Better than the
stdlib: ...").  Where the difference can be shown without hanging, the same
scenario also runs on the stdlib, to prove that there is a difference.

Run as a script (``python test_improvements.py MODULE``), this file runs the
out-of-descriptors scenario in a fresh process, whose lowered descriptor
limit cannot disturb pytest.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from checkout import environment

import sockserver_lib
from sockserver_lib import lab, servers

PATIENCE = lab.CLIENT_TIMEOUT
#: Seconds after which "it has not happened" is concluded (nothing can make
#: it happen in that time: the server is blocked by design).
ABSENCE = 0.3
#: serve_forever()'s poll_interval where promptness is shown: far longer
#: than any test may take.
LONG_POLL = 30.0
#: A serve_forever(poll_interval=30) that stops within this many seconds
#: did not wait for poll_interval.
PROMPT = 2.0

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform has no fork()")


def echo_handler(module) -> type:
    """A line echo handler built on *module*'s StreamRequestHandler."""
    class Echo(module.StreamRequestHandler):
        timeout = PATIENCE

        def handle(self):
            self.wfile.write(self.rfile.readline())

    return Echo


def talk(sock: socket.socket, line: bytes) -> None:
    sock.sendall(line)
    assert lab.recv_line(sock) == line


# --- shutdown() -----------------------------------------------------------

def watch_selector(monkeypatch, module) -> threading.Event:
    """An event set whenever *module*'s serve_forever() starts waiting in select().

    Once it is set, a shutdown request can only be seen after select()
    returns: either woken up, or after poll_interval.
    """
    waiting = threading.Event()

    class WatchedSelector(module._ServerSelector):
        def select(self, timeout=None):
            waiting.set()
            return super().select(timeout)

    monkeypatch.setattr(module, "_ServerSelector", WatchedSelector)
    return waiting


def watch_poller(monkeypatch) -> threading.Event:
    """watch_selector() for sockserver_lib, whose loops wait in poll()."""
    waiting = threading.Event()
    new_poller = servers._Poller

    class WatchedPoller:
        def __init__(self):
            self._poller = new_poller()

        def register(self, file, eventmask):
            self._poller.register(file, eventmask)

        def poll(self, timeout=None):
            waiting.set()
            return self._poller.poll(timeout)

    monkeypatch.setattr(servers, "_Poller", WatchedPoller)
    return waiting


def serve_in_thread(server, poll_interval: float = LONG_POLL) -> threading.Thread:
    return lab.run_in_thread(lambda: server.serve_forever(poll_interval), "serve_forever")


def stop_for_sure(server, loop: threading.Thread) -> None:
    """End a loop a failed test left running: ask it to stop, then wake it."""
    if loop.is_alive():
        lab.run_in_thread(server.shutdown, "shutdown")
        lab.connect(server.server_address).close()  # wakes a select() that polls
        loop.join(PATIENCE)


@pytest.mark.timeout(10)
def test_shutdown_wakes_serve_forever_at_once(monkeypatch):
    waiting = watch_poller(monkeypatch)
    with sockserver_lib.TCPServer(lab.LOCALHOST, echo_handler(sockserver_lib)) as server:
        loop = serve_in_thread(server)
        try:
            assert waiting.wait(PATIENCE)
            server.shutdown()
            loop.join(PROMPT)
            assert not loop.is_alive(), "serve_forever(poll_interval=30) did not stop at once"
        finally:
            stop_for_sure(server, loop)


@pytest.mark.timeout(10)
def test_stdlib_shutdown_waits_for_poll_interval(monkeypatch):
    waiting = watch_selector(monkeypatch, socketserver)
    with socketserver.TCPServer(lab.LOCALHOST, echo_handler(socketserver)) as server:
        loop = serve_in_thread(server)
        try:
            assert waiting.wait(PATIENCE)
            stopping = lab.run_in_thread(server.shutdown, "shutdown")
            stopping.join(ABSENCE)
            assert stopping.is_alive(), "the stdlib's loop sleeps in select(poll_interval)"
            # only something that wakes select() lets the stdlib's loop notice
            with lab.connect(server.server_address):
                loop.join(PATIENCE)
            stopping.join(PATIENCE)
            assert not loop.is_alive() and not stopping.is_alive()
        finally:
            stop_for_sure(server, loop)


@pytest.mark.timeout(10)
def test_shutdown_before_serve_forever_makes_it_return_at_once():
    with sockserver_lib.TCPServer(lab.LOCALHOST, echo_handler(sockserver_lib)) as server:
        server.shutdown()  # no loop yet: returns at once instead of waiting for one
        loop = serve_in_thread(server)
        loop.join(PROMPT)
        assert not loop.is_alive(), "serve_forever() should return at once"
        # that shutdown() is used up: serving again works
        with lab.background_server(server):
            assert lab.tcp_request(server.server_address, b"again\n") == b"again\n"


@pytest.mark.timeout(10)
def test_stdlib_shutdown_before_serve_forever_waits_for_a_loop():
    with socketserver.TCPServer(lab.LOCALHOST, echo_handler(socketserver)) as server:
        stopping = lab.run_in_thread(server.shutdown, "shutdown")
        stopping.join(ABSENCE)
        assert stopping.is_alive(), "the stdlib's shutdown() waits for a loop to stop"
        loop = serve_in_thread(server)
        loop.join(PATIENCE)
        stopping.join(PATIENCE)
        assert not loop.is_alive() and not stopping.is_alive()


@pytest.mark.timeout(10)
def test_shutdown_twice_then_serve_again():
    with sockserver_lib.TCPServer(lab.LOCALHOST, echo_handler(sockserver_lib)) as server:
        loop = serve_in_thread(server)
        try:
            assert lab.tcp_request(server.server_address, b"one\n") == b"one\n"
            server.shutdown()
            loop.join(PROMPT)
            assert not loop.is_alive()
            server.shutdown()  # nothing to wait for: returns at once...
            loop = serve_in_thread(server)
            loop.join(PROMPT)  # ...and, as documented, the next loop returns at once
            assert not loop.is_alive()
            loop = serve_in_thread(server)  # after that, serving works again
            assert lab.tcp_request(server.server_address, b"two\n") == b"two\n"
            server.shutdown()
            loop.join(PROMPT)
            assert not loop.is_alive()
        finally:
            stop_for_sure(server, loop)


def test_poll_timeouts_round_up_to_whole_milliseconds():
    assert servers._milliseconds(None) is None  # wait forever
    assert servers._milliseconds(0) == 0
    assert servers._milliseconds(-1.0) == 0  # a deadline already past: do not block
    assert servers._milliseconds(0.0001) == 1  # never wake up before the time is up
    assert servers._milliseconds(0.5) == 500


@pytest.mark.timeout(10)
def test_select_stand_in_for_poll_serves_times_out_and_stops_at_once(monkeypatch):
    """The loops on Windows (no select.poll()): the same behaviour on select.select()."""
    monkeypatch.setattr(servers, "_Poller", servers._SelectPoller)
    timeouts = []

    class CountingServer(sockserver_lib.TCPServer):
        timeout = 0.05

        def handle_timeout(self):
            timeouts.append(True)

    with CountingServer(lab.LOCALHOST, echo_handler(sockserver_lib)) as server:
        server.handle_request()  # nobody connects: times out
        assert timeouts == [True]
        loop = serve_in_thread(server)
        try:
            assert lab.tcp_request(server.server_address, b"hi\n") == b"hi\n"
            server.shutdown()
            loop.join(PROMPT)
            assert not loop.is_alive(), "shutdown() did not wake the select() stand-in"
        finally:
            stop_for_sure(server, loop)


@pytest.mark.timeout(10)
def test_shutdown_from_a_sync_handler_raises_instead_of_deadlocking():
    errors = []

    class StopOnRequest(sockserver_lib.StreamRequestHandler):
        timeout = PATIENCE

        def handle(self):
            line = self.rfile.readline()
            if line == b"stop\n":
                self.server.shutdown()
            self.wfile.write(line)

    class Server(sockserver_lib.TCPServer):
        def handle_error(self, request, client_address):
            errors.append(sys.exc_info()[1])

    with lab.background_server(Server(lab.LOCALHOST, StopOnRequest)) as server:
        assert lab.tcp_request(server.server_address, b"stop\n") == b""
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
        assert "another thread" in str(errors[0])
        assert lab.tcp_request(server.server_address, b"still here\n") == b"still here\n"


# --- accept() out of descriptors ------------------------------------------

class FlakyAccept(sockserver_lib.TCPServer):
    """get_request() first fails with the errnos in ``failures``; pauses are recorded."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.failures: list[int] = []
        self.pauses: list[float] = []

    def get_request(self):
        if self.failures:
            code = self.failures.pop(0)
            raise OSError(code, os.strerror(code))
        return super().get_request()

    def _pause(self, seconds):
        self.pauses.append(seconds)


@pytest.mark.timeout(10)
def test_accept_out_of_descriptors_backs_off_then_resets():
    first, longest = servers.ACCEPT_BACKOFF_FIRST, servers.ACCEPT_BACKOFF_MAX
    with FlakyAccept(lab.LOCALHOST, echo_handler(sockserver_lib)) as server:
        with lab.connect(server.server_address) as client:  # keeps the socket readable
            client.sendall(b"hi\n")
            server.failures = [errno.EMFILE] * 8
            for _ in range(8):
                server.handle_request()
            assert server.pauses[0] == first
            for before, after in zip(server.pauses[:-1], server.pauses[1:], strict=True):
                assert after == min(2 * before, longest), server.pauses
            assert server.pauses[-1] == longest
            server.handle_request()  # accept() works again
            assert lab.recv_all(client) == b"hi\n"
        with lab.connect(server.server_address) as client:
            client.sendall(b"again\n")
            server.failures = [errno.ENFILE, errno.ECONNABORTED]
            server.handle_request()
            assert server.pauses[-1] == first, "a success resets the back-off"
            pauses_so_far = len(server.pauses)
            server.handle_request()  # a client that gave up: not a lack of resources
            assert len(server.pauses) == pauses_so_far
            server.handle_request()
            assert lab.recv_all(client) == b"again\n"


#: How long the out-of-descriptors scenario counts accept() attempts.
OUT_OF_DESCRIPTORS_WINDOW = 0.5


def run_out_of_descriptors(module_name: str) -> dict:
    """In this (throwaway) process: run out of descriptors while a client waits.

    Counts get_request() calls while no descriptor is free, then frees them
    and returns the count and the reply the client finally got.
    """
    import resource

    module = importlib.import_module(module_name)
    calls = []
    closed = threading.Event()

    class CountingServer(module.TCPServer):
        def get_request(self):
            calls.append(None)
            return super().get_request()

        def close_request(self, request):
            super().close_request(request)
            closed.set()

    server = CountingServer(lab.LOCALHOST, echo_handler(module))
    with lab.background_server(server, poll_interval=0.05):
        assert lab.tcp_request(server.server_address, b"warm-up\n") == b"warm-up\n"
        # the client saw the end of the reply (shutdown) before the server
        # closed the connection: wait, or that descriptor would come free later
        assert closed.wait(PATIENCE)
        with socket.socket() as client:  # made before the descriptors run out
            client.settimeout(PATIENCE)
            with out_of_descriptors(resource):
                before = len(calls)
                client.connect(server.server_address)  # accept() now fails: EMFILE
                client.sendall(b"ping\n")
                threading.Event().wait(OUT_OF_DESCRIPTORS_WINDOW)  # a window to count in
                attempts = len(calls) - before
            reply = lab.recv_all(client)
    return {"attempts_while_full": attempts, "reply": reply.decode()}


class out_of_descriptors:  # noqa: N801 - used as a context manager, like a function
    """Lower RLIMIT_NOFILE and open descriptors until none is left; undo on exit."""

    def __init__(self, resource) -> None:
        self._resource = resource
        self._limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        self._fillers: list[int] = []

    def __enter__(self) -> None:
        soft, hard = self._limits
        low = 64 if hard == self._resource.RLIM_INFINITY else min(64, hard)
        self._resource.setrlimit(self._resource.RLIMIT_NOFILE, (low, hard))
        while True:
            try:
                self._fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as error:
                assert error.errno == errno.EMFILE, error
                return

    def __exit__(self, *exc_info) -> None:
        for descriptor in self._fillers:
            os.close(descriptor)
        self._resource.setrlimit(self._resource.RLIMIT_NOFILE, self._limits)


def start_out_of_descriptors(module_name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, module_name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
    )


def result_of(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.timeout(60)
def test_accept_out_of_descriptors_does_not_spin():
    pytest.importorskip("resource", reason="this platform has no resource module (rlimits)")
    library = start_out_of_descriptors("sockserver_lib")
    stdlib = start_out_of_descriptors("socketserver")
    library, stdlib = result_of(library), result_of(stdlib)
    # both answer the client once descriptors are free again
    assert library["reply"] == stdlib["reply"] == "ping\n"
    # the library backs off: a handful of attempts, not a spin
    assert 1 <= library["attempts_while_full"] < 50, library
    # the stdlib retries at once, over and over
    assert stdlib["attempts_while_full"] > 10 * library["attempts_while_full"], (library, stdlib)


# --- ThreadingMixIn -------------------------------------------------------

def join_request_threads() -> None:
    for thread in threading.enumerate():
        if "process_request_thread" in thread.name:
            thread.join(PATIENCE)


def records_of_finished_threads(module) -> list:
    """Serve 20 requests; once every request thread has ended, return server._threads."""
    server = module.ThreadingTCPServer(lab.LOCALHOST, echo_handler(module))
    with lab.background_server(server, poll_interval=0.05):
        for number in range(20):
            line = b"request %d\n" % number
            assert lab.tcp_request(server.server_address, line) == line
        join_request_threads()
        return list(vars(server).get("_threads", []))


@pytest.mark.timeout(10)
def test_threading_server_keeps_no_record_of_finished_threads():
    assert records_of_finished_threads(sockserver_lib) == []
    stdlib_records = records_of_finished_threads(socketserver)
    assert stdlib_records, "the stdlib keeps finished threads until its next request"
    assert not any(thread.is_alive() for thread in stdlib_records)


@pytest.mark.timeout(10)
def test_threading_server_close_waits_for_request_threads():
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    class Slow(sockserver_lib.BaseRequestHandler):
        def handle(self):
            started.set()
            release.wait(PATIENCE)
            finished.set()

    server = sockserver_lib.ThreadingTCPServer(lab.LOCALHOST, Slow)
    loop = serve_in_thread(server, poll_interval=0.05)
    try:
        with lab.connect(server.server_address):
            assert started.wait(PATIENCE)
        server.shutdown()
        closing = lab.run_in_thread(server.server_close, "server_close")
        closing.join(ABSENCE)
        assert closing.is_alive(), "server_close() should wait for the running handler"
    finally:
        release.set()
        stop_for_sure(server, loop)
        server.server_close()
    closing.join(PATIENCE)
    assert not closing.is_alive() and finished.is_set()


@pytest.mark.timeout(10)
def test_daemon_threads_are_daemons_and_not_recorded():
    class SayDaemon(sockserver_lib.BaseRequestHandler):
        def handle(self):
            self.request.sendall(str(threading.current_thread().daemon).encode())

    class Server(sockserver_lib.ThreadingTCPServer):
        daemon_threads = True

    with lab.background_server(Server(lab.LOCALHOST, SayDaemon)) as server:
        assert lab.tcp_request(server.server_address, b"") == b"True"
        assert not vars(server).get("_threads")


# --- ForkingMixIn ---------------------------------------------------------

def pid_greeter(module) -> type:
    """Greets with b"ready <pid>\\n", then echoes one line."""
    class PidGreeter(module.StreamRequestHandler):
        timeout = PATIENCE

        def handle(self):
            self.wfile.write(b"ready %d\n" % os.getpid())
            self.wfile.write(self.rfile.readline())

    return PidGreeter


def greeted_pid(sock: socket.socket) -> int:
    word, pid = lab.recv_line(sock).split()
    assert word == b"ready"
    return int(pid)


@needs_fork
@pytest.mark.skipif(not hasattr(os, "waitid"), reason="this platform has no os.waitid()")
@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("module", "status_seen_by_its_owner"),
    [(sockserver_lib, 7), (socketserver, 0)],
    ids=["library", "stdlib"],
)
def test_forking_server_reaps_only_its_own_children(module, status_seen_by_its_owner):
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(7)"],
        stdin=subprocess.PIPE,
    )
    other.stdin.close()
    # exited but not reaped: a zombie that any waitpid(-1) could take
    os.waitid(os.P_PID, other.pid, os.WEXITED | os.WNOWAIT)

    class Server(module.ForkingTCPServer):
        max_children = 1  # the stdlib waits with waitpid(-1) at max_children

    with lab.background_server(Server(lab.LOCALHOST, pid_greeter(module)), 0.05) as server:
        with lab.connect(server.server_address) as first:
            greeted_pid(first)
            with lab.connect(server.server_address) as second:
                talk(first, b"one\n")  # the first child ends: room for the second
                greeted_pid(second)
                talk(second, b"two\n")
    # the stdlib's waitpid(-1) took the exit status: Popen can only report 0
    assert other.wait(PATIENCE) == status_seen_by_its_owner


@needs_fork
@pytest.mark.timeout(20)
def test_forking_server_honours_max_children_and_leaves_no_zombie():
    class Server(sockserver_lib.ForkingTCPServer):
        max_children = 2

    with lab.background_server(Server(lab.LOCALHOST, pid_greeter(sockserver_lib)), 0.05) as server:
        address = server.server_address
        with lab.connect(address) as one, lab.connect(address) as two, \
                lab.connect(address) as three:
            pids = {greeted_pid(one), greeted_pid(two)}
            assert len(pids) == 2  # two children alive, each blocked on its client
            three.settimeout(ABSENCE)
            with pytest.raises(TimeoutError):  # no third child while two run
                three.recv(1024)
            three.settimeout(PATIENCE)
            talk(one, b"one\n")
            talk(two, b"two\n")
            third_pid = greeted_pid(three)
            assert third_pid not in pids
            talk(three, b"three\n")
    assert not server.active_children
    for pid in pids | {third_pid}:  # all reaped: not even a zombie is left
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@needs_fork
@pytest.mark.timeout(20)
def test_forking_server_at_max_children_uses_the_slot_of_whichever_child_ends():
    class Server(sockserver_lib.ForkingTCPServer):
        max_children = 2

    with lab.background_server(Server(lab.LOCALHOST, pid_greeter(sockserver_lib)), 0.05) as server:
        address = server.server_address
        with lab.connect(address) as older, lab.connect(address) as younger, \
                lab.connect(address) as third:
            greeted_pid(older)
            greeted_pid(younger)
            talk(younger, b"bye\n")  # the younger child ends; the older one stays
            greeted_pid(third)  # served while the older child still runs
            talk(third, b"three\n")
            talk(older, b"one\n")


@needs_fork
@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux 5.3+)")
@pytest.mark.timeout(20)
def test_shutdown_is_prompt_while_a_forking_server_waits_at_max_children():
    waiting_for_room = threading.Event()

    class Server(sockserver_lib.ForkingTCPServer):
        max_children = 1

        def collect_children(self, *, blocking=False):
            if len(self.active_children or ()) >= self.max_children:
                waiting_for_room.set()
            super().collect_children(blocking=blocking)

    server = Server(lab.LOCALHOST, pid_greeter(sockserver_lib))
    loop = serve_in_thread(server)
    try:
        with lab.connect(server.server_address) as silent, \
                lab.connect(server.server_address) as waiting:
            greeted_pid(silent)  # the only child, held by a client that never sends
            waiting.sendall(b"hi\n")
            assert waiting_for_room.wait(PATIENCE)  # the loop waits for a child to end
            stopper = lab.run_in_thread(server.shutdown, name="shutdown")
            stopper.join(PATIENCE)
            assert not stopper.is_alive(), "shutdown() waited for a child to end"
            loop.join(PATIENCE)
            assert not loop.is_alive()
            talk(silent, b"bye\n")  # now let its child end
    finally:
        stop_for_sure(server, loop)
        server.server_close()  # reaps the child


# --- Unix socket files ----------------------------------------------------

unix_server_names = pytest.mark.parametrize(
    "name", ["UnixStreamServer", "UnixDatagramServer"]
)


@unix_server_names
def test_unix_server_close_removes_its_socket_file(unix_socket_path, name):
    server_class = getattr(sockserver_lib, name)
    server = server_class(unix_socket_path, sockserver_lib.BaseRequestHandler)
    assert os.path.exists(unix_socket_path)
    server.server_close()
    assert not os.path.exists(unix_socket_path)
    server_class(unix_socket_path, sockserver_lib.BaseRequestHandler).server_close()


@unix_server_names
def test_unix_server_close_leaves_a_file_that_replaced_its_socket(unix_socket_path, name):
    server = getattr(sockserver_lib, name)(unix_socket_path, sockserver_lib.BaseRequestHandler)
    os.unlink(unix_socket_path)
    Path(unix_socket_path).write_text("someone else's file")
    server.server_close()
    assert Path(unix_socket_path).read_text() == "someone else's file"


@unix_server_names
def test_stdlib_unix_server_leaves_its_socket_file_behind(unix_socket_path, name):
    server_class = getattr(socketserver, name)
    server_class(unix_socket_path, socketserver.BaseRequestHandler).server_close()
    assert os.path.exists(unix_socket_path)
    with pytest.raises(OSError) as raised:
        server_class(unix_socket_path, socketserver.BaseRequestHandler)
    assert raised.value.errno == errno.EADDRINUSE


# --- Clearer errors -------------------------------------------------------

def address_in_use_error(module) -> OSError:
    """The error *module*'s TCPServer raises for a port that is in use."""
    with module.TCPServer(lab.LOCALHOST, module.BaseRequestHandler) as first:
        with pytest.raises(OSError) as raised:
            module.TCPServer(first.server_address, module.BaseRequestHandler)
    return raised.value


def test_busy_port_error_says_to_pass_port_0():
    error = address_in_use_error(sockserver_lib)
    assert error.errno == errno.EADDRINUSE
    assert "pass port 0" in str(error)
    stdlib_error = address_in_use_error(socketserver)
    assert stdlib_error.errno == errno.EADDRINUSE
    assert "port 0" not in str(stdlib_error)


def test_stale_unix_socket_file_error_says_what_to_do(unix_socket_path):
    Path(unix_socket_path).write_text("stale")
    with pytest.raises(OSError) as raised:
        sockserver_lib.UnixStreamServer(unix_socket_path, sockserver_lib.BaseRequestHandler)
    assert raised.value.errno == errno.EADDRINUSE
    assert "remove the stale socket file" in str(raised.value)


def test_handler_class_that_is_not_callable_is_refused_at_once():
    with pytest.raises(TypeError, match=r"RequestHandlerClass .*'not a class'"):
        sockserver_lib.TCPServer(lab.LOCALHOST, "not a class")
    # the stdlib accepts it, and fails only when the first request comes
    socketserver.TCPServer(lab.LOCALHOST, "not a class").server_close()


if __name__ == "__main__":
    print(json.dumps(run_out_of_descriptors(sys.argv[1])))
