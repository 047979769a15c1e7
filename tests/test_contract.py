"""The contract suite: every check in sockserver_lib.contract, on every kind.

One test per check, named after it (``test_echo_round_trip``), parametrized
by conftest.py over the implementations under test and the kinds the check
applies to: ``test_echo_round_trip[library-tcp-threading]``.

Then the documentation's examples, run as printed in the docs (with
127.0.0.1, port 0 and a timeout on each client, and today's spelling
``threading.current_thread().name`` instead of ``getName()``/``setDaemon()``),
checking that they print what the documentation says they print.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from sockserver_lib import contract, lab

#: Seconds one contract check may take; a passing check takes hundredths.
CHECK_TIME_LIMIT = 60


def _test_for(check: contract.Check):
    @pytest.mark.contract_check(check)
    @pytest.mark.timeout(CHECK_TIME_LIMIT)
    def test(impl, kind):
        check.run(impl, kind)

    test.__name__ = test.__qualname__ = f"test_{check.name}"
    test.__doc__ = check.doc
    return test


for _check in contract.CHECKS.values():
    globals()[f"test_{_check.name}"] = _test_for(_check)


# --- The documentation's examples -----------------------------------------

class PrintedLines:
    """A stdout for several threads: keeps what each thread printed, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text: dict[str, list[str]] = {}

    def write(self, text: str) -> int:
        with self._lock:
            self._text.setdefault(threading.current_thread().name, []).append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def of_main_thread(self) -> list[str]:
        """Lines printed by the test itself (the docs' "client" side)."""
        return self._lines(lambda name: name == threading.main_thread().name)

    def of_other_threads(self) -> list[str]:
        """Lines printed by server threads (the docs' "server" side)."""
        return self._lines(lambda name: name != threading.main_thread().name)

    def _lines(self, wanted) -> list[str]:
        with self._lock:
            return "".join(
                "".join(texts) for name, texts in self._text.items() if wanted(name)
            ).splitlines()


@contextlib.contextmanager
def printed_lines() -> Iterator[PrintedLines]:
    """Capture what every thread prints during the ``with`` block."""
    printed = PrintedLines()
    with contextlib.redirect_stdout(printed):
        yield printed


def docs_tcp_handler(impl, style: str) -> type:
    """The docs' MyTCPHandler, in its BaseRequestHandler or StreamRequestHandler form."""
    if style == "BaseRequestHandler":
        class MyTCPHandler(impl.BaseRequestHandler):
            def handle(self):
                # self.request is the TCP socket connected to the client
                self.data = self.request.recv(1024).strip()
                print("%s wrote:" % self.client_address[0])  # noqa: UP031 - as in the docs
                print(self.data)
                # just send back the same data, but upper-cased
                self.request.send(self.data.upper())

        return MyTCPHandler

    class MyStreamTCPHandler(impl.StreamRequestHandler):
        def handle(self):
            # self.rfile is a file-like object created by the handler
            self.data = self.rfile.readline().strip()
            print("%s wrote:" % self.client_address[0])  # noqa: UP031 - as in the docs
            print(self.data)
            # Likewise, self.wfile is a file-like object used to write back to the client
            self.wfile.write(self.data.upper())

    return MyStreamTCPHandler


def docs_tcp_client(address, data: str) -> None:
    """The docs' TCP client, with a timeout added."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(lab.CLIENT_TIMEOUT)
    try:
        sock.connect(address)
        sock.send(bytes(data + "\n", "utf8"))
        received = sock.recv(1024)
    finally:
        sock.close()
    print("Sent:     %s" % data)  # noqa: UP031 - as in the docs
    print("Received: %s" % received)  # noqa: UP031


def docs_udp_handler(impl) -> type:
    class MyUDPHandler(impl.BaseRequestHandler):
        def handle(self):
            data = self.request[0].strip()
            socket = self.request[1]
            print("%s wrote:" % self.client_address[0])  # noqa: UP031 - as in the docs
            print(data)
            socket.sendto(data.upper(), self.client_address)

    return MyUDPHandler


def docs_udp_client(address, data: str) -> None:
    """The docs' UDP client, with a timeout added."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(lab.CLIENT_TIMEOUT)
        sock.sendto(bytes(data + "\n", "utf8"), address)
        received = sock.recv(1024)
    print("Sent:     %s" % data)  # noqa: UP031 - as in the docs
    print("Received: %s" % received)  # noqa: UP031


#: What the docs print for the TCP (and UDP) example: server, then client.
DOCS_SERVER_OUTPUT = [
    "127.0.0.1 wrote:",
    "b'hello world with TCP'",
    "127.0.0.1 wrote:",
    "b'python is nice'",
]
DOCS_CLIENT_OUTPUT = [
    "Sent:     hello world with TCP",
    "Received: b'HELLO WORLD WITH TCP'",
    "Sent:     python is nice",
    "Received: b'PYTHON IS NICE'",
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("style", ["BaseRequestHandler", "StreamRequestHandler"])
def test_docs_tcp_example(impl, style):
    """The docs' TCPServer example prints what the docs say, with either handler."""
    server = impl.TCPServer(("127.0.0.1", 0), docs_tcp_handler(impl, style))
    with printed_lines() as printed, lab.background_server(server):
        docs_tcp_client(server.server_address, "hello world with TCP")
        docs_tcp_client(server.server_address, "python is nice")
    assert printed.of_other_threads() == DOCS_SERVER_OUTPUT
    assert printed.of_main_thread() == DOCS_CLIENT_OUTPUT


@pytest.mark.timeout(10)
def test_docs_udp_example(impl):
    """The docs' UDPServer example prints exactly what the TCP example prints."""
    server = impl.UDPServer(("127.0.0.1", 0), docs_udp_handler(impl))
    with printed_lines() as printed, lab.background_server(server):
        docs_udp_client(server.server_address, "hello world with TCP")
        docs_udp_client(server.server_address, "python is nice")
    assert printed.of_other_threads() == DOCS_SERVER_OUTPUT
    assert printed.of_main_thread() == DOCS_CLIENT_OUTPUT


def run_docs_threaded_example(impl) -> list[str]:
    """The docs' ThreadingMixIn example; returns what it printed."""

    class ThreadedTCPRequestHandler(impl.BaseRequestHandler):
        def handle(self):
            data = self.request.recv(1024)
            cur_thread = threading.current_thread()
            response = bytes("%s: %s" % (cur_thread.name, data), "ascii")  # noqa: UP031
            self.request.send(response)

    class ThreadedTCPServer(impl.ThreadingMixIn, impl.TCPServer):
        pass

    def client(ip, port, message):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(lab.CLIENT_TIMEOUT)
        try:
            sock.connect((ip, port))
            sock.send(message)
            response = sock.recv(1024)
            print("Received: %s" % response)  # noqa: UP031 - as in the docs
        finally:
            sock.close()

    with printed_lines() as printed:
        server = ThreadedTCPServer(("127.0.0.1", 0), ThreadedTCPRequestHandler)
        with server:
            ip, port = server.server_address
            server_thread = threading.Thread(target=server.serve_forever, daemon=True)
            server_thread.start()
            try:
                print("Server loop running in thread:", server_thread.name)
                client(ip, port, b"Hello World 1")
                client(ip, port, b"Hello World 2")
                client(ip, port, b"Hello World 3")
            finally:
                server.shutdown()
                server_thread.join(lab.CLIENT_TIMEOUT)
    return printed.of_main_thread()


@pytest.mark.timeout(10)
def test_docs_threaded_example(impl):
    """The docs' ThreadingMixIn example: each request answered from its own new thread."""
    lines = run_docs_threaded_example(impl)
    assert len(lines) == 4, lines
    loop = re.fullmatch(r"Server loop running in thread: (Thread-(\d+)\b.*)", lines[0])
    assert loop, lines[0]
    numbers = [int(loop.group(2))]
    for n, line in enumerate(lines[1:], start=1):
        reply = re.fullmatch(r"""Received: b"(Thread-(\d+)\b[^:]*): b'Hello World (\d)'\"""", line)
        assert reply, f"{line!r} does not have the documented shape"
        assert int(reply.group(3)) == n
        numbers.append(int(reply.group(2)))
    # each request ran in a thread started after the previous one
    assert numbers == sorted(set(numbers)), lines
