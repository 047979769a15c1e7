"""ThreadPoolMixIn and PreforkMixIn: workers made once and reused.

Thread pools run in this process with background_server().  Prefork
servers run in a fresh interpreter -- this file run as a script, see
serve_prefork() at the bottom -- because forking a process that has threads
(pytest's) is fragile, and because a fresh process lets the test prove
that every worker is gone: the workers inherit the script's stdout, so
reading it to end-of-file waits until the script and all its workers have
exited.
"""

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading

import pytest
from checkout import environment

from sockserver_lib import StreamRequestHandler, TCPServer
from sockserver_lib.lab import (
    CLIENT_TIMEOUT,
    LOCALHOST,
    background_server,
    close_with_reset,
    connect,
    server_process,
    tcp_request,
    temporary_socket_path,
)
from sockserver_lib.pools import POOL_LISTEN_BACKLOG, ThreadPoolMixIn, usable_cpu_count

HAS_UNIX = hasattr(socket, "AF_UNIX")
HAS_FORK = hasattr(os, "fork")
needs_unix = pytest.mark.skipif(not HAS_UNIX, reason="this platform has no AF_UNIX")
needs_fork = pytest.mark.skipif(not HAS_FORK, reason="this platform has no fork()")
TRANSPORTS = ["tcp", pytest.param("unix-stream", marks=needs_unix)]
#: Seconds a prefork script may take to start, answer or stop before the test fails.
SCRIPT_TIMEOUT = 20
#: Seconds a blocked test handler waits to be released: far longer than any
#: wait the test itself makes, so that only the test can release it.
HANDLER_PATIENCE = 30


class EchoHandler(StreamRequestHandler):
    """Echo each line; ``pid`` answers "<pid> <parent pid>"; ``shutdown`` tries to."""

    def handle(self):
        for line in self.rfile:
            if line == b"pid\n":
                line = b"%d %d\n" % (os.getpid(), os.getppid())
            elif line == b"shutdown\n":
                line = try_shutdown(self.server).encode() + b"\n"
            self.wfile.write(line)


def try_shutdown(server) -> str:
    try:
        server.shutdown()
    except RuntimeError as error:
        return f"RuntimeError: {error}"
    return "no error"


def pool_server(transport, handler=EchoHandler, **settings):
    """A ThreadPool server for *transport*, with class attributes *settings*."""
    if transport == "tcp":
        from sockserver_lib import ThreadPoolTCPServer as base
        address = LOCALHOST
    else:
        from sockserver_lib import ThreadPoolUnixStreamServer as base
        address = settings.pop("path")
    server_class = type("TestThreadPoolServer", (base,), settings)
    return server_class(address, handler)


def pool_threads(server):
    return [t for t in threading.enumerate() if t.name.startswith(type(server).__name__)]


def ask(sock, line: bytes) -> bytes:
    """Send one line on a connected socket and read one line back."""
    sock.sendall(line)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; got {reply!r}"
        reply += chunk
    return reply


# --- ThreadPoolMixIn ------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_thread_pool_echoes_garbage_and_survives_early_disconnects(transport):
    with temporary_socket_path() as path:
        with background_server(pool_server(transport, path=path, pool_size=2)) as server:
            address = server.server_address
            connect(address).close()
            half_line = connect(address)
            half_line.sendall(b"no newline yet")
            close_with_reset(half_line)
            garbage = os.urandom(50_000)

            assert tcp_request(address, b"one\ntwo\n") == b"one\ntwo\n"
            assert tcp_request(address, garbage) == garbage


@pytest.mark.timeout(10)
def test_thread_pool_starts_pool_size_threads_and_server_close_joins_them():
    server = pool_server("tcp", pool_size=3)
    try:
        workers = pool_threads(server)
        assert len(workers) == 3
        with background_server(server):
            assert tcp_request(server.server_address, b"hi\n") == b"hi\n"
    finally:
        server.server_close()

    assert not any(worker.is_alive() for worker in workers)


def test_defaults_follow_the_cpu_count_and_listen_deeper_than_tcpserver():
    server = pool_server("tcp")
    try:
        assert len(pool_threads(server)) == 4 * usable_cpu_count()
    finally:
        server.server_close()
    assert ThreadPoolMixIn.request_queue_size == POOL_LISTEN_BACKLOG > TCPServer.request_queue_size


@pytest.mark.timeout(10)
def test_a_client_that_never_sends_does_not_block_a_pool_of_two():
    with background_server(pool_server("tcp", pool_size=2)) as server:
        with connect(server.server_address):  # connected, and sends nothing
            assert tcp_request(server.server_address, b"still served\n") == b"still served\n"


class BlockingHandler(StreamRequestHandler):
    """Reports that it started, then waits until the test releases it."""

    def handle(self):
        self.server.started.release()
        self.server.release.wait(HANDLER_PATIENCE)
        self.wfile.write(b"done\n")


class RecordingPoolServer(ThreadPoolMixIn, TCPServer):
    """Records process_request() entries and exits, to watch backpressure."""

    pool_size = 1
    queue_size = 1

    def __init__(self, *args, **kwargs):
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.entered = []
        self.left = []
        self.changed = threading.Condition()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        self._note(self.entered)
        super().process_request(request, client_address)
        self._note(self.left)

    def _note(self, events):
        with self.changed:
            events.append(len(events) + 1)
            self.changed.notify_all()

    def wait_until(self, predicate):
        with self.changed:
            assert self.changed.wait_for(predicate, CLIENT_TIMEOUT), "timed out"


def fill_pool_and_queue(server):
    """One request in the worker, one in the queue, a third blocked in process_request."""
    clients = [connect(server.server_address) for _ in range(3)]
    assert server.started.acquire(timeout=CLIENT_TIMEOUT)  # request 1 is in the worker
    server.wait_until(lambda: len(server.entered) == 3)
    return clients


@pytest.mark.timeout(15)
def test_a_full_queue_stops_the_loop_from_accepting_until_a_worker_is_free():
    server = RecordingPoolServer(LOCALHOST, BlockingHandler)
    with background_server(server):
        clients = fill_pool_and_queue(server)
        try:
            # a bounded negative check: with room in the queue this returns at once
            with server.changed:
                assert not server.changed.wait_for(lambda: len(server.left) == 3, 0.2)
            assert server.left == [1, 2]

            server.release.set()
            server.wait_until(lambda: len(server.left) == 3)
            for client in clients:
                assert client.recv(100) == b"done\n"
        finally:
            server.release.set()
            for client in clients:
                client.close()


@pytest.mark.timeout(15)
def test_shutdown_is_prompt_while_the_loop_waits_for_room():
    server = RecordingPoolServer(LOCALHOST, BlockingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clients = fill_pool_and_queue(server)
    try:
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(CLIENT_TIMEOUT)  # the handler holds its worker for HANDLER_PATIENCE

        assert not stopper.is_alive(), "shutdown() waited for a busy worker"
        thread.join(CLIENT_TIMEOUT)
        assert not thread.is_alive()
        assert server.left == [1, 2, 3]  # the request in hand was queued, not dropped
    finally:
        server.release.set()
        server.server_close()
        for client in clients:
            assert client.recv(100) == b"done\n"
            client.close()
    assert pool_threads(server) == []


class FailingHandler(StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        if line == b"fail\n":
            raise ValueError("the handler failed on purpose")
        if line == b"exit\n":
            raise SystemExit(3)
        self.wfile.write(b"fine\n")


@pytest.mark.timeout(10)
def test_a_failing_or_exiting_handler_leaves_the_only_worker_alive():
    errors = []

    class Server(ThreadPoolMixIn, TCPServer):
        pool_size = 1

        def handle_error(self, request, client_address):
            errors.append(sys.exc_info()[0])

    with background_server(Server(LOCALHOST, FailingHandler)) as server:
        assert tcp_request(server.server_address, b"fail\n") == b""
        assert tcp_request(server.server_address, b"exit\n") == b""
        assert tcp_request(server.server_address, b"ok\n") == b"fine\n"
    assert errors == [ValueError]  # handle_error() is for Exception, not SystemExit


# --- PreforkMixIn, in this process: the parts that do not fork -------------


@needs_fork
@pytest.mark.timeout(10)
def test_prefork_handle_request_serves_in_the_calling_process_without_workers():
    from sockserver_lib import PreforkTCPServer

    with PreforkTCPServer(LOCALHOST, EchoHandler) as server:
        with connect(server.server_address) as client:
            client.sendall(b"pid\n")
            client.shutdown(socket.SHUT_WR)
            server.handle_request()
            assert client.recv(100) == b"%d %d\n" % (os.getpid(), os.getppid())
        assert server.worker_pids == []


@needs_fork
@pytest.mark.timeout(10)
def test_prefork_shutdown_before_serve_forever_forks_nothing():
    from sockserver_lib import PreforkTCPServer

    with PreforkTCPServer(LOCALHOST, EchoHandler) as server:
        server.shutdown()
        server.serve_forever()  # returns at once
        assert server.worker_pids == []


# --- PreforkMixIn, in a fresh interpreter ----------------------------------


class PreforkScript:
    """This file run as a prefork server script; see serve_prefork()."""

    def __init__(self, transport, pool_size="default", stop_timeout="5", path=""):
        self.process = subprocess.Popen(
            [sys.executable, __file__, transport, pool_size, stop_timeout, path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
        )
        self.workers = []
        started = self.read_json()
        self.address = tuple(started["address"]) if transport == "tcp" else started["address"]
        self.workers = started["workers"]

    def read_json(self) -> dict:
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(SCRIPT_TIMEOUT):
                raise AssertionError("the prefork script did not report in time")
        line = self.process.stdout.readline()
        assert line, f"the prefork script ended: {self.process.stderr.read().decode()}"
        return json.loads(line)

    def stop(self, signal_number=signal.SIGINT):
        """Signal the script; return (its last report or None, stderr) once all have exited."""
        self.process.send_signal(signal_number)
        out, err = self.process.communicate(timeout=SCRIPT_TIMEOUT)
        return (json.loads(out) if out.strip() else None), err.decode()

    def kill_leftovers(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@needs_fork
@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_prefork_serves_from_its_workers_and_shutdown_reaps_them_all(transport):
    with temporary_socket_path() as path:
        script = PreforkScript(transport, pool_size="2", path=path)
        try:
            assert len(script.workers) == 2
            connect(script.address).close()
            half_line = connect(script.address)
            half_line.sendall(b"no newline yet")
            close_with_reset(half_line)
            garbage = os.urandom(50_000)
            with connect(script.address):  # a silent client occupies one of the two workers
                assert tcp_request(script.address, garbage) == garbage
                pid, parent = map(int, tcp_request(script.address, b"pid\n").split())
                refused = tcp_request(script.address, b"shutdown\n").decode()

            assert pid in script.workers
            assert parent == script.process.pid
            assert refused.startswith("RuntimeError: shutdown() was called in a prefork worker")

            report, errors = script.stop(signal.SIGINT)
            assert script.process.returncode == 0, errors
            assert report == {"stopped": True, "children_left": False}
        finally:
            script.kill_leftovers()


PREFORK_OUTPUT_SCRIPT = """
from sockserver_lib import StreamRequestHandler
from sockserver_lib.pools import PreforkTCPServer


class Report(StreamRequestHandler):
    def handle(self):
        print("worker handled", self.rfile.readline().strip().decode())  # not flushed
        self.wfile.write(b"ok\\n")


class TwoWorkers(PreforkTCPServer):
    pool_size = 2


with TwoWorkers(("127.0.0.1", 0), Report) as server:
    print(repr(server.server_address), flush=True)
    print("parent serving")  # not flushed when the workers are forked
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
print("parent done")
"""


@needs_fork
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("scripts_import_this_checkout")
def test_prefork_workers_keep_their_output_and_do_not_repeat_the_parents(tmp_path):
    """Workers serve for long, so they flush when they exit; the parent flushes
    before forking them, or each worker would write its pending line again."""
    script = tmp_path / "prefork_output.py"
    script.write_text(PREFORK_OUTPUT_SCRIPT)
    with server_process(script) as child:
        for word in (b"one", b"two", b"three"):
            assert tcp_request(child.address, word + b"\n") == b"ok\n"
    lines = child.stdout.splitlines()
    assert lines.count("parent serving") == 1, lines
    assert sorted(line for line in lines if line.startswith("worker")) == [
        "worker handled one", "worker handled three", "worker handled two"]
    assert lines[-1] == "parent done"


@needs_fork
@pytest.mark.timeout(60)
def test_prefork_replaces_a_worker_that_dies():
    script = PreforkScript("tcp", pool_size="1")
    try:
        first, parent = map(int, tcp_request(script.address, b"pid\n").split())
        os.kill(first, signal.SIGKILL)

        second, same_parent = map(int, tcp_request(script.address, b"pid\n").split())

        assert second != first
        assert same_parent == parent == script.process.pid
        script.workers.append(second)
        report, errors = script.stop()
        assert report == {"stopped": True, "children_left": False}, errors
    finally:
        script.kill_leftovers()


@needs_fork
@pytest.mark.timeout(60)
def test_prefork_stop_kills_a_worker_stuck_with_a_silent_client_after_stop_timeout():
    script = PreforkScript("tcp", pool_size="1", stop_timeout="0.2")
    try:
        with connect(script.address) as silent:
            ask(silent, b"pid\n")  # the worker now waits in readline() for more

            report, errors = script.stop(signal.SIGINT)

            assert report == {"stopped": True, "children_left": False}, errors
            assert silent.recv(100) == b""  # its worker is gone
    finally:
        script.kill_leftovers()


@needs_fork
@pytest.mark.timeout(60)
def test_prefork_workers_default_to_the_cpu_count_and_exit_when_the_parent_is_killed():
    script = PreforkScript("tcp")
    try:
        assert len(script.workers) == usable_cpu_count()
        assert tcp_request(script.address, b"hi\n") == b"hi\n"

        report, _ = script.stop(signal.SIGKILL)  # returns once every worker closed stdout

        assert report is None
    finally:
        script.kill_leftovers()


def serve_prefork(transport, pool_size, stop_timeout, path):
    """Serve EchoHandler from a prefork server until SIGINT, reporting as JSON lines.

    First line: {"address", "workers"} once serving; last line after SIGINT:
    {"stopped": true, "children_left": false} if every child was reaped.
    """
    from sockserver_lib import PreforkTCPServer, PreforkUnixStreamServer

    base = PreforkTCPServer if transport == "tcp" else PreforkUnixStreamServer

    class Server(base):
        reported = False

        def service_actions(self):
            if not self.reported:
                self.reported = True
                report(address=self.server_address, workers=self.worker_pids)

    Server.pool_size = None if pool_size == "default" else int(pool_size)
    Server.stop_timeout = float(stop_timeout)
    server = Server(LOCALHOST if transport == "tcp" else path, EchoHandler)
    with server:
        try:
            server.serve_forever(poll_interval=0.01)
        except KeyboardInterrupt:
            pass
    try:
        os.waitpid(-1, os.WNOHANG)
        children_left = True
    except ChildProcessError:
        children_left = False
    report(stopped=True, children_left=children_left)


def report(**fields):
    print(json.dumps(fields), flush=True)


if __name__ == "__main__":
    serve_prefork(*sys.argv[1:])
