"""Tests of the kit's helpers in sockserver_lib.lab (server_process)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from checkout import REPO, environment

from sockserver_lib import lab

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

ECHO_SERVER = """
    import sockserver_lib

    class Echo(sockserver_lib.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    with sockserver_lib.TCPServer(("127.0.0.1", 0), Echo) as server:
        print(repr(server.server_address), flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped by SIGINT")
"""


def write_script(folder, source, name="script.py"):
    """Write *source* (dedented) to folder/name and return the path."""
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def assert_reaped(pid):
    """Fail unless *pid* is gone from the process table (not even a zombie)."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@posix_only
@pytest.mark.timeout(30)
def test_yields_the_printed_address_and_stops_the_script_like_ctrl_c(tmp_path):
    script = write_script(tmp_path, ECHO_SERVER)
    with lab.server_process(script) as child:
        assert child.address[0] == "127.0.0.1" and child.address[1] > 0
        assert lab.tcp_request(child.address, b"hello\n") == b"hello\n"
        assert child.returncode is None
    assert child.returncode == 0
    assert child.stdout == "stopped by SIGINT\n"
    assert child.stderr == ""
    assert_reaped(child.pid)


@posix_only
@pytest.mark.timeout(30)
def test_passes_arguments_and_reads_a_path_address(tmp_path):
    script = write_script(tmp_path, """
        import signal, sys
        # one write, so the second line is in the pipe before SIGINT can come
        print(repr(sys.argv[1]) + "\\nplain: " + sys.argv[2], flush=True)
        signal.pause()
    """)
    with lab.server_process(script, "/tmp/some path.sock", 7) as child:
        assert child.address == "/tmp/some path.sock"
    assert "plain: 7" in child.stdout


@pytest.mark.timeout(30)
def test_a_first_line_that_is_no_literal_is_the_address_as_text(tmp_path):
    script = write_script(tmp_path, "print('/tmp/not quoted.sock', flush=True)\n")
    with lab.server_process(script) as child:
        assert child.address == "/tmp/not quoted.sock"


@pytest.mark.timeout(30)
def test_a_script_that_dies_before_its_address_raises_with_its_stderr(tmp_path):
    script = write_script(tmp_path, "raise SystemExit('cannot bind: boom')\n")
    with pytest.raises(RuntimeError, match="boom"):
        with lab.server_process(script):
            pytest.fail("the block must not run without an address")


@posix_only
@pytest.mark.timeout(30)
def test_a_silent_script_times_out_and_is_reaped(tmp_path):
    pid_file = tmp_path / "pid"
    script = write_script(tmp_path, f"""
        import os, signal
        with open({str(pid_file)!r}, "w") as f:
            f.write(str(os.getpid()))
        signal.pause()
    """)
    with pytest.raises(TimeoutError, match="printed no address"):
        with lab.server_process(script, timeout=0.5):
            pytest.fail("the block must not run without an address")
    assert_reaped(int(pid_file.read_text()))


@posix_only
@pytest.mark.timeout(30)
def test_a_script_that_ignores_sigint_is_killed_and_reaped(tmp_path):
    script = write_script(tmp_path, """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("('127.0.0.1', 1)", flush=True)
        signal.pause()
    """)
    with lab.server_process(script, timeout=0.5) as child:
        pass
    assert child.returncode == -9  # SIGKILL
    assert_reaped(child.pid)


@posix_only
@pytest.mark.timeout(60)
def test_the_ctrl_c_tests_pass_when_pytest_starts_with_sigint_ignored():
    """As in a background job of a shell without job control (``pytest &``)."""
    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    ctrl_c_test = f"{__file__}::test_yields_the_printed_address_and_stops_the_script_like_ctrl_c"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", ctrl_c_test],
        cwd=REPO, env=environment(), preexec_fn=ignore_sigint,
        capture_output=True, text=True, timeout=50,
    )
    assert run.returncode == 0, run.stdout[-2000:]


@pytest.mark.timeout(30)
def test_the_script_is_stopped_when_the_block_raises(tmp_path):
    class CellFailed(Exception):
        pass

    script = write_script(tmp_path, ECHO_SERVER)
    with pytest.raises(CellFailed):
        with lab.server_process(script) as child:
            raise CellFailed
    assert child.returncode is not None
    assert_reaped(child.pid)


@needs_fork
@posix_only
@pytest.mark.timeout(30)
@pytest.mark.parametrize("module", ["socketserver", "sockserver_lib"])
@pytest.mark.usefixtures("scripts_import_this_checkout")
def test_forked_children_flush_nothing_like_the_stdlibs(tmp_path, module):
    """A child ends with os._exit(), which flushes nothing (notebook 09 teaches it).

    stdout is a pipe here, so block-buffered.  What a handler prints with
    flush=True arrives; what it prints after that is lost; and every child
    that flushes writes again the line the parent left in its buffer.
    """
    script = write_script(tmp_path, """
        import importlib
        import sys

        socketserver = importlib.import_module(sys.argv[1])

        class Report(socketserver.StreamRequestHandler):
            def handle(self):
                word = self.rfile.readline().strip().decode()
                print("kept", word, flush=True)
                print("lost", word)  # still in the buffer at os._exit()
                self.wfile.write(b"ok\\n")

        with socketserver.ForkingTCPServer(("127.0.0.1", 0), Report) as server:
            print(repr(server.server_address), flush=True)
            print("parent serving")  # not flushed: every child inherits it
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
        print("parent done")
    """)
    with lab.server_process(script, module) as child:
        for word in (b"one", b"two"):
            assert lab.tcp_request(child.address, word + b"\n") == b"ok\n"
    assert child.stdout.splitlines() == [  # server_process() read the address line
        "parent serving", "kept one",
        "parent serving", "kept two",
        "parent serving", "parent done",
    ]


@pytest.fixture
def reset_connection():
    """A client socket whose peer wrote b"bye", then reset the connection."""
    with socket.create_server(lab.LOCALHOST) as listener:
        listener.settimeout(lab.CLIENT_TIMEOUT)
        client = lab.connect(listener.getsockname())
        peer, _ = listener.accept()
        with peer:
            peer.sendall(b"bye")
            lab.close_with_reset(peer)
    with client:
        yield client


@pytest.mark.timeout(10)
def test_recv_all_reads_until_the_peer_closes():
    with socket.create_server(lab.LOCALHOST) as listener:
        listener.settimeout(lab.CLIENT_TIMEOUT)
        with lab.connect(listener.getsockname()) as client:
            peer, _ = listener.accept()
            with peer:
                peer.sendall(b"one, ")
                peer.sendall(b"two")
            assert lab.recv_all(client) == b"one, two"


@pytest.mark.timeout(10)
def test_recv_all_raises_on_a_reset_by_default(reset_connection):
    with pytest.raises(ConnectionResetError):
        lab.recv_all(reset_connection)


@pytest.mark.timeout(10)
def test_recv_all_with_reset_ends_returns_what_came_before_the_reset(reset_connection):
    # Linux delivers b"bye" and then the reset; some systems drop unread data on a reset
    assert lab.recv_all(reset_connection, reset_ends=True) in (b"bye", b"")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")
@pytest.mark.parametrize("depth", [0, 90], ids=["short temp dir", "long temp dir"])
def test_a_temporary_socket_path_fits_in_a_unix_address_and_is_removed(
        tmp_path, monkeypatch, depth):
    long_dir = tmp_path / ("d" * max(1, depth - len(str(tmp_path))))  # macOS, in a grader
    long_dir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(long_dir if depth else tmp_path))
    with lab.temporary_socket_path() as path:
        assert len(os.fsencode(path)) <= lab.SOCKET_PATH_LIMIT
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
        folder = os.path.dirname(path)
    assert not os.path.exists(folder)
