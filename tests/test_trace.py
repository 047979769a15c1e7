"""The tracer records every hook of every kind of server, in order, in the
thread or process that ran it, and nothing when it is off."""

from __future__ import annotations

import os
import socket
import socketserver
import sys
import textwrap

import pytest

import sockserver_lib
from sockserver_lib import lab
from sockserver_lib.trace import SERVER_HOOKS, Trace

pytestmark = pytest.mark.timeout(60)

#: The hooks one TCP request goes through, in order, in every blocking server.
ONE_REQUEST = ["get_request", "verify_request", "process_request", "finish_request", "setup",
               "handle", "finish", "shutdown_request", "close_request"]


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


@pytest.fixture
def trace():
    with Trace() as trace:
        yield trace


def request_hooks(trace: Trace, phase: str = "call") -> list[str]:
    wanted = set(ONE_REQUEST) | {"process_request_thread", "handle_error"}
    return [e.hook for e in trace.events() if e.phase == phase and e.hook in wanted]


def serve_one(trace: Trace, server_class: type, handler: type = Echo, line: bytes = b"hi\n"):
    Server, Handler = trace.wrap(server_class, handler)
    with lab.background_server(Server(lab.LOCALHOST, Handler), poll_interval=0.05) as server:
        reply = lab.tcp_request(server.server_address, line)
    return reply


@pytest.mark.parametrize("library", [socketserver, sockserver_lib], ids=["stdlib", "kit"])
def test_one_request_of_a_synchronous_server_runs_the_hooks_in_order(trace, library):
    assert serve_one(trace, library.TCPServer) == b"hi\n"
    assert request_hooks(trace) == ONE_REQUEST
    assert request_hooks(trace, "return") == [
        "get_request", "verify_request", "setup", "handle", "finish", "finish_request",
        "close_request", "shutdown_request", "process_request"]  # inner ones return first
    lanes = {e.where for e in trace.events() if e.hook in ONE_REQUEST}
    assert len(lanes) == 1  # all in the loop's thread


def test_a_threading_server_runs_the_handler_in_another_thread(trace):
    serve_one(trace, socketserver.ThreadingTCPServer)
    events = trace.events()
    loop = next(e.thread for e in events if e.hook == "get_request")
    handler = next(e.thread for e in events if e.hook == "handle")
    assert handler != loop
    assert request_hooks(trace)[:3] == ["get_request", "verify_request", "process_request"]
    assert "process_request_thread" in request_hooks(trace)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forking_server_runs_the_handler_in_a_child_and_reaps_it(trace):
    serve_one(trace, socketserver.ForkingTCPServer)
    events = trace.events()
    parent = os.getpid()
    handle = next(e for e in events if e.hook == "handle" and e.phase == "call")
    assert handle.pid != parent  # the child's events came back through the file
    child_hooks = [e.hook for e in events if e.pid == handle.pid and e.phase == "call"]
    assert child_hooks == ["finish_request", "setup", "handle", "finish", "shutdown_request",
                           "close_request"]
    parent_closes = [e for e in events if e.pid == parent and e.hook == "close_request"]
    assert parent_closes, "the parent closes its copy of the connection"
    reaped = [e for e in events if e.hook == "collect_children" and e.pid == parent]
    assert reaped


def test_the_selector_server_records_the_event_handlers_calls(trace):
    Server, Handler = trace.wrap(sockserver_lib.SelectorTCPServer, sockserver_lib.LineEchoHandler)
    with lab.background_server(Server(lab.LOCALHOST, Handler), poll_interval=0.05) as server:
        assert lab.tcp_request(server.server_address, b"one\n") == b"one\n"
    hooks = [e.hook for e in trace.events() if e.phase == "call"]
    made, received = hooks.index("connection_made"), hooks.index("data_received")
    assert made < received < hooks.index("connection_lost")
    assert {e.thread for e in trace.events() if e.hook == "data_received"} == {
        next(e.thread for e in trace.events() if e.hook == "serve_forever")}  # one thread


def test_a_thread_pool_runs_handlers_in_its_workers(trace):
    serve_one(trace, sockserver_lib.ThreadPoolTCPServer)
    events = trace.events()
    assert next(e.thread for e in events if e.hook == "handle") != next(
        e.thread for e in events if e.hook == "get_request")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_prefork_workers_events_come_back_from_their_processes(trace):
    serve_one(trace, sockserver_lib.PreforkTCPServer)
    handles = [e for e in trace.events() if e.hook == "handle" and e.phase == "call"]
    assert handles and handles[0].pid != os.getpid()


def test_a_handler_that_raises_is_recorded_with_its_exception(trace):
    class Failing(socketserver.BaseRequestHandler):
        def handle(self):
            raise ValueError("boom")

    class Quiet(socketserver.TCPServer):
        def handle_error(self, request, client_address):
            pass  # keep the test's output clean

    Server, Handler = trace.wrap(Quiet, Failing)
    with lab.background_server(Server(lab.LOCALHOST, Handler), poll_interval=0.05) as server:
        with socket.create_connection(server.server_address, timeout=5) as client:
            assert client.recv(10) == b""  # the server closed the connection after the error
    raised = [(e.hook, e.detail) for e in trace.events() if e.phase == "raise"]
    # it rises through the hooks that called handle(), to the loop, which calls handle_error
    assert raised == [("handle", "ValueError"), ("finish_request", "ValueError"),
                      ("process_request", "ValueError")]
    assert request_hooks(trace)[-3:] == ["handle_error", "shutdown_request", "close_request"]


def test_arguments_are_recorded_in_short_form(trace):
    serve_one(trace, socketserver.TCPServer)
    got = next(e for e in trace.events() if e.hook == "get_request" and e.phase == "return")
    assert got.detail.startswith("fd ") and "'127.0.0.1'" in got.detail
    closing = next(e for e in trace.events() if e.hook == "shutdown_request")
    assert closing.detail.startswith("fd ")


def test_nothing_is_recorded_when_tracing_is_off_and_plain_classes_are_untouched(trace):
    original = socketserver.TCPServer.get_request
    trace.enabled = False
    assert serve_one(trace, socketserver.TCPServer) == b"hi\n"
    assert trace.events() == []
    assert socketserver.TCPServer.get_request is original
    assert Echo.__dict__["handle"].__name__ == "handle"


def test_only_hooks_the_class_has_are_wrapped(trace):
    Server = trace.traced(socketserver.TCPServer, SERVER_HOOKS)
    assert "collect_children" not in vars(Server) and "get_request" in vars(Server)
    assert Server.__name__ == "TracedTCPServer" and issubclass(Server, socketserver.TCPServer)


def test_notes_and_clear(trace):
    trace.note("read", 5)
    trace.note("write", b"6")
    assert [(e.hook, e.phase, e.detail) for e in trace.events()] == [
        ("read", "note", "5"), ("write", "note", "b'6'")]
    assert trace.events()[0].time <= trace.events()[1].time
    trace.clear()
    assert trace.events() == []


def test_long_details_are_cut(trace):
    trace.note("big", "x" * 500)
    assert len(trace.events()[0].detail) == 60 and trace.events()[0].detail.endswith("...")


def test_a_server_in_another_process_records_into_the_same_file(trace, tmp_path):
    script = tmp_path / "traced_server.py"
    script.write_text(textwrap.dedent("""
        import socketserver, sys
        from sockserver_lib.trace import Trace

        class Echo(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(self.rfile.readline())

        Server, Handler = Trace(sys.argv[1]).wrap(socketserver.TCPServer, Echo)
        with Server(("127.0.0.1", 0), Handler) as server:
            print(repr(server.server_address), flush=True)
            try:
                server.serve_forever(0.05)
            except KeyboardInterrupt:
                pass
    """), encoding="utf-8")
    with lab.server_process(script, trace.path) as child:
        assert lab.tcp_request(child.address, b"there\n") == b"there\n"
        # a synchronous server takes the second request only once the first is finished
        # (the second may still be running when the block's Ctrl-C stops the server)
        assert lab.tcp_request(child.address, b"again\n") == b"again\n"
    assert request_hooks(trace)[:len(ONE_REQUEST)] == ONE_REQUEST
    assert {e.pid for e in trace.events()} != {os.getpid()}
    assert all(e.time >= 0 for e in trace.events())  # on this trace's clock


def test_close_removes_the_file():
    trace = Trace()
    trace.close()
    assert not trace.path.exists()


def test_the_tracer_uses_the_standard_library_only():
    import subprocess
    done = subprocess.run([sys.executable, "-c", "import sys, sockserver_lib.trace; "
                           "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
