"""``python -m sockserver_lib serve``: the demo server for a terminal.

Each test runs the command as a subprocess, reads the address from its
first line, talks to it, then sends SIGINT (what Ctrl-C sends) and expects
a clean exit.
"""

import os
import re
import selectors
import signal
import socket
import subprocess
import sys

import pytest
from checkout import environment

from sockserver_lib.lab import connect, recv_all

#: Seconds the command may take to start or stop before the test fails.
COMMAND_TIMEOUT = 20
LISTENING = re.compile(
    r"listening on 127\.0\.0\.1:(\d+) \((\w+), (\w+)\); press Ctrl-C to stop$"
)
FORK_KINDS = ("forking", "prefork")
KINDS = [
    pytest.param(kind, marks=pytest.mark.skipif(
        kind in FORK_KINDS and not hasattr(os, "fork"), reason="this platform has no fork()"))
    for kind in ("sync", "threading", "forking", "threadpool", "prefork", "selector")
]


def command(*arguments: str) -> list:
    return [sys.executable, "-m", "sockserver_lib", *arguments]


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*arguments), capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, env=environment())


class RunningServer:
    """The serve command as a subprocess; .port is read from its first line."""

    def __init__(self, *arguments: str):
        self.process = subprocess.Popen(command("serve", *arguments), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=environment())
        self.first_line = self._first_line()
        match = LISTENING.match(self.first_line)
        assert match, f"unexpected first line {self.first_line!r}"
        self.port = int(match.group(1))

    def _first_line(self) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(COMMAND_TIMEOUT):
                raise AssertionError("the command printed nothing in time")
        line = self.process.stdout.readline()
        assert line, f"the command ended: {self.process.stderr.read()}"
        return line.rstrip("\n")

    def ask(self, *lines: bytes) -> bytes:
        """Send *lines* on one connection, half-close, return the whole answer."""
        with connect(("127.0.0.1", self.port)) as client:
            client.sendall(b"".join(lines))
            client.shutdown(socket.SHUT_WR)
            return recv_all(client)

    def interrupt(self) -> tuple:
        """Send SIGINT (Ctrl-C); return (exit status, stdout, stderr) once it has exited."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=COMMAND_TIMEOUT)
        return self.process.returncode, out, err

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_serve_echo_answers_each_line_and_stops_cleanly_on_ctrl_c(kind):
    with RunningServer("echo", "--kind", kind) as server:
        assert server.first_line.endswith(f"({kind}, echo); press Ctrl-C to stop")
        if kind != "sync":  # a synchronous server would wait for the silent client
            with connect(("127.0.0.1", server.port)):
                assert server.ask(b"hello\n", b"two\n") == b"hello\ntwo\n"
        assert server.ask(b"hello\n", b"garbage \xff\x00 no newline") == (
            b"hello\ngarbage \xff\x00 no newline"
        )

        status, out, err = server.interrupt()

    assert status == 0, err
    assert "Traceback" not in err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("options", [["--kind", "threadpool", "--workers", "2"],
                                     ["--kind", "selector"]])
def test_serve_upper_answers_in_upper_case(options):
    with RunningServer("upper", *options) as server:
        assert server.ask(b"shout\n", b"Quietly\n") == b"SHOUT\nQUIETLY\n"
        status, _, err = server.interrupt()
    assert status == 0, err


@pytest.mark.timeout(30)
def test_ctrl_c_stops_a_threading_demo_even_while_a_client_stays_connected():
    with RunningServer("echo", "--kind", "threading") as server:
        with connect(("127.0.0.1", server.port)) as client:
            client.sendall(b"still here\n")
            assert client.recv(100) == b"still here\n"

            status, _, err = server.interrupt()

    assert status == 0, err


@pytest.mark.timeout(30)
def test_a_busy_port_is_a_one_line_error_with_status_1():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run("serve", "echo", "--port", str(port))

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "port 0" in done.stderr  # says how to fix it


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["serve", "echo", "--kind", "nope"], "invalid choice: 'nope'"),
        (["serve", "echo", "--port", "99999"], "invalid port '99999'"),
        (["serve", "shout"], "invalid choice: 'shout'"),
        (["serve", "echo", "--kind", "sync", "--workers", "2"], "--workers applies only"),
        ([], "required: COMMAND"),
    ],
)
def test_a_bad_command_line_is_a_one_line_error_with_status_2(arguments, complaint):
    done = run(*arguments)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert complaint in done.stderr
    assert "--help" in done.stderr


def test_help_explains_every_option_and_kind():
    done = run("serve", "--help")

    assert done.returncode == 0
    for word in ("--kind", "--host", "--port", "--workers", "echo", "upper",
                 "sync", "threading", "forking", "threadpool", "prefork", "selector",
                 "127.0.0.1"):
        assert word in done.stdout, word
    assert "serve" in run("--help").stdout
