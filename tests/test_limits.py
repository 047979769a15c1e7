"""The limits of a careful server, each shown on a running server.

StreamRequestHandler: ``timeout`` (the stdlib's idle timeout),
``max_line_length`` and ``line_timeout`` for read_line().  ThreadingMixIn:
``max_threads``.  ThreadPoolMixIn: its bounded queue.  UDPServer: datagrams
longer than ``max_packet_size`` reported, not handled cut short.
AllowListMixIn: verify_request() with an allow-list.  And the rule that
every example binds to loopback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import queue
import re
import select
import socket
import sys
import threading
from collections.abc import Iterator

import pytest
from checkout import REPO

import sockserver_lib
from sockserver_lib import (
    AllowListMixIn,
    DatagramRequestHandler,
    LineTooLongError,
    OversizeDatagramError,
    StreamRequestHandler,
    TCPServer,
    ThreadingTCPServer,
    ThreadingUDPServer,
    ThreadPoolTCPServer,
    UDPServer,
    lab,
)

PATIENCE = lab.CLIENT_TIMEOUT
#: Seconds after which "it has not happened" is concluded, where nothing
#: can make it happen in that time (the server is held on purpose).
ABSENCE = 0.2
#: A shutdown() that returns within this many seconds did not wait for anything.
PROMPT = 2.0
#: A trickling client: this many bytes, one every TRICKLE_PAUSE seconds; an
#: idle timeout that it never trips, even on a busy machine.
TRICKLE_BYTES, TRICKLE_PAUSE = 20, 0.05
TRICKLE_IDLE_TIMEOUT = 1.0


# --- helpers --------------------------------------------------------------

class Recorder:
    """What the server saw: each read_line() result, and each handle_error()."""

    def __init__(self) -> None:
        self.lines: queue.Queue = queue.Queue()
        self.errors: queue.Queue = queue.Queue()

    @property
    def handle_error(self):
        """A handle_error() for a server class: it records the exception."""
        def handle_error(server, request, client_address) -> None:
            self.errors.put(sys.exc_info()[1])

        return handle_error

    def next_error(self) -> BaseException:
        return self.errors.get(timeout=PATIENCE)


def line_server(recorder: Recorder, server_class=TCPServer, **settings) -> TCPServer:
    """A server whose handler echoes each read_line() until the end; *settings* go on it."""

    class LineEcho(StreamRequestHandler):
        def handle(self):
            while line := self.read_line():
                recorder.lines.put(line)
                self.wfile.write(line)

    handler = type("LimitedLineEcho", (LineEcho,), settings)
    server = type("Recorded", (server_class,), {"handle_error": recorder.handle_error})
    return server(lab.LOCALHOST, handler)


def trickle(address, payload: bytes) -> tuple[int, bytes]:
    """Send *payload* one byte per TRICKLE_PAUSE; return (bytes sent, reply).

    Stops sending when the server has closed the connection.
    """
    sent = 0
    with lab.connect(address) as sock:
        try:
            for byte in payload:
                sock.sendall(bytes([byte]))
                sent += 1
                # the pause is the client's slowness, the point of the test
                if select_readable(sock, TRICKLE_PAUSE):
                    break  # the server answered or closed: stop trickling
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return sent, lab.recv_all(sock, reset_ends=True)


def select_readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


# --- StreamRequestHandler: read_line() and its limits ----------------------

def test_read_line_without_limits_reads_any_line_as_readline_does():
    assert StreamRequestHandler.max_line_length is None
    assert StreamRequestHandler.line_timeout is None
    recorder = Recorder()
    big_line = b"x" * 1_000_000 + b"\n"
    with lab.background_server(line_server(recorder)) as server:
        assert lab.tcp_request(server.server_address, big_line + b"last") == big_line + b"last"


@pytest.mark.parametrize("rbufsize", [-1, 0], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("line_timeout", [None, 5.0], ids=["no-line-timeout", "line-timeout"])
def test_max_line_length_counts_the_newline_and_stops_a_longer_line(rbufsize, line_timeout):
    recorder = Recorder()
    server = line_server(recorder, max_line_length=8, rbufsize=rbufsize,
                         line_timeout=line_timeout)
    with lab.background_server(server):
        address = server.server_address
        assert lab.tcp_request(address, b"1234567\n12\n") == b"1234567\n12\n"
        assert lab.tcp_request(address, b"1234567") == b"1234567"  # last line, no newline
        with lab.connect(address) as sock:
            sock.sendall(b"12345678 and much more\n")
            assert lab.recv_all(sock, reset_ends=True) == b""
        error = recorder.next_error()
        assert isinstance(error, LineTooLongError)
        assert "8 bytes without a newline (max_line_length = 8)" in str(error)
        assert lab.tcp_request(address, b"next\n") == b"next\n"  # the server goes on
    assert recorder.errors.empty()


def test_a_megabyte_without_newline_is_cut_at_max_line_length():
    recorder = Recorder()
    with lab.background_server(line_server(recorder, max_line_length=1024)) as server:
        with lab.connect(server.server_address) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"g" * 1_000_000)  # the server stops reading at 1024
            assert lab.recv_all(sock, reset_ends=True) == b""
        assert isinstance(recorder.next_error(), LineTooLongError)
    assert recorder.lines.empty()


@pytest.mark.timeout(20)
def test_idle_timeout_frees_a_sync_server_from_a_silent_client():
    recorder = Recorder()
    with lab.background_server(line_server(recorder, timeout=ABSENCE)) as server:
        with lab.connect(server.server_address) as silent:
            # served only once the silent client has been dropped
            assert lab.tcp_request(server.server_address, b"next\n") == b"next\n"
            assert lab.recv_all(silent, reset_ends=True) == b""
        assert isinstance(recorder.next_error(), TimeoutError)


@pytest.mark.timeout(20)
def test_idle_timeout_alone_does_not_stop_a_trickling_client():
    recorder = Recorder()
    line = b"t" * (TRICKLE_BYTES - 1) + b"\n"
    with lab.background_server(line_server(recorder, timeout=TRICKLE_IDLE_TIMEOUT)) as server:
        assert trickle(server.server_address, line) == (TRICKLE_BYTES, line)
    assert recorder.errors.empty()


@pytest.mark.timeout(20)
def test_line_timeout_stops_a_trickling_client():
    recorder = Recorder()
    line = b"t" * (TRICKLE_BYTES - 1) + b"\n"
    line_timeout = TRICKLE_BYTES * TRICKLE_PAUSE / 4  # a quarter of the time the line takes
    server = line_server(recorder, timeout=TRICKLE_IDLE_TIMEOUT, line_timeout=line_timeout)
    with lab.background_server(server):
        sent, reply = trickle(server.server_address, line)
        error = recorder.next_error()
    assert reply == b"" and sent < TRICKLE_BYTES
    assert isinstance(error, TimeoutError)
    assert f"within line_timeout = {line_timeout} s" in str(error)


@pytest.mark.timeout(20)
def test_line_timeout_without_idle_timeout_and_the_socket_is_blocking_again():
    recorder = Recorder()
    timeouts_after: list = []

    class Checked(StreamRequestHandler):
        line_timeout = ABSENCE

        def handle(self):
            self.wfile.write(self.read_line())
            timeouts_after.append(self.connection.gettimeout())
            self.read_line()  # a partial line, then silence

    server_class = type("Recorded", (TCPServer,), {"handle_error": recorder.handle_error})
    with lab.background_server(server_class(lab.LOCALHOST, Checked)) as server:
        with lab.connect(server.server_address) as sock:
            sock.sendall(b"whole\npart")
            assert lab.recv_all(sock, reset_ends=True) == b"whole\n"
        error = recorder.next_error()
    assert timeouts_after == [None]  # read_line() put the handler's timeout back
    assert isinstance(error, TimeoutError) and "line_timeout" in str(error)


# --- ThreadingMixIn.max_threads -------------------------------------------

class HeldThreads:
    """A handler that tells when it starts and waits until released."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()
        held = self

        class Held(StreamRequestHandler):
            timeout = PATIENCE

            def handle(self):
                with held._lock:
                    held.running += 1
                    held.most_running = max(held.most_running, held.running)
                held.started.release()
                held.release.wait(PATIENCE)
                self.wfile.write(b"done\n")
                with held._lock:
                    held.running -= 1

        self.handler = Held

    def wait_started(self, count: int) -> bool:
        return all(self.started.acquire(timeout=PATIENCE) for _ in range(count))


def counting_server(base, handler, **settings):
    """A *base* server that counts get_request() calls in ``accepted``."""

    class Counting(base):
        accepted = 0

        def get_request(self):
            result = super().get_request()
            self.accepted += 1
            return result

    return type("Limited", (Counting,), settings)(lab.LOCALHOST, handler)


@pytest.mark.timeout(30)
def test_max_threads_stops_accepting_until_a_thread_ends():
    assert ThreadingTCPServer.max_threads is None
    held = HeldThreads()
    server = counting_server(ThreadingTCPServer, held.handler, max_threads=2)
    with lab.background_server(server, poll_interval=0.05), contextlib.ExitStack() as clients:
        socks = [clients.enter_context(lab.connect(server.server_address)) for _ in range(4)]
        assert held.wait_started(2)
        assert not held.started.acquire(timeout=ABSENCE)  # no third thread while two run
        # one accepted and waiting for a thread; the fourth waits in the backlog
        assert server.accepted == 3
        held.release.set()
        assert held.wait_started(2)
        assert [lab.recv_all(sock, reset_ends=True) for sock in socks] == [b"done\n"] * 4
    assert held.most_running == 2


@pytest.mark.timeout(30)
def test_shutdown_is_prompt_while_the_loop_waits_for_a_thread():
    held = HeldThreads()
    server = counting_server(ThreadingTCPServer, held.handler, max_threads=1)
    loop = lab.run_in_thread(lambda: server.serve_forever(30), "serve_forever")
    try:
        with lab.connect(server.server_address) as first, \
                lab.connect(server.server_address) as second:
            assert held.wait_started(1)
            assert not held.started.acquire(timeout=ABSENCE)  # the loop waits for room
            stopping = lab.run_in_thread(server.shutdown, "shutdown")
            stopping.join(PROMPT)
            loop.join(PROMPT)  # shutdown() returns as the loop ends; its thread then exits
            assert not stopping.is_alive() and not loop.is_alive()
            # the request in hand got its thread, beyond the limit
            assert held.wait_started(1)
            held.release.set()
            replies = [lab.recv_all(sock, reset_ends=True) for sock in (first, second)]
            assert replies == [b"done\n", b"done\n"]
    finally:
        held.release.set()
        server.server_close()


@pytest.mark.timeout(30)
def test_max_threads_holds_datagrams_too():
    started, release = threading.Semaphore(0), threading.Event()

    class HeldDatagram(DatagramRequestHandler):
        def handle(self):
            started.release()
            release.wait(PATIENCE)
            self.wfile.write(self.rfile.read())

    server = type("Limited", (ThreadingUDPServer,), {"max_threads": 1})(lab.LOCALHOST,
                                                                          HeldDatagram)
    with lab.background_server(server, poll_interval=0.05):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(PATIENCE)
            for payload in (b"one", b"two"):
                client.sendto(payload, server.server_address)
            assert started.acquire(timeout=PATIENCE)
            assert not started.acquire(timeout=ABSENCE)
            release.set()
            assert {client.recv(100), client.recv(100)} == {b"one", b"two"}


# --- ThreadPoolMixIn: its queue bounds the connections in flight ----------

@pytest.mark.timeout(30)
def test_thread_pool_holds_at_most_pool_size_plus_queue_size_plus_one_connections():
    held = HeldThreads()
    server = counting_server(ThreadPoolTCPServer, held.handler, pool_size=1, queue_size=1)
    with lab.background_server(server, poll_interval=0.05), contextlib.ExitStack() as clients:
        socks = [clients.enter_context(lab.connect(server.server_address)) for _ in range(5)]
        assert held.wait_started(1)
        assert not held.started.acquire(timeout=ABSENCE)
        # one handled, one queued, one in hand waiting for room; the rest in the backlog
        assert server.accepted == 3
        held.release.set()
        assert held.wait_started(4)
        assert [lab.recv_all(sock, reset_ends=True) for sock in socks] == [b"done\n"] * 5
    assert held.most_running == 1


# --- UDPServer: datagrams longer than max_packet_size ---------------------

@contextlib.contextmanager
def datagram_client(family: int) -> Iterator[socket.socket]:
    with contextlib.ExitStack() as cleanup:
        sock = cleanup.enter_context(socket.socket(family, socket.SOCK_DGRAM))
        sock.settimeout(PATIENCE)
        if family == getattr(socket, "AF_UNIX", None):
            sock.bind(cleanup.enter_context(lab.temporary_socket_path("client")))
        else:
            sock.bind(lab.LOCALHOST)
        yield sock


def datagram_servers() -> list:
    kinds = [
        pytest.param(UDPServer, id="udp"),
        pytest.param(ThreadingUDPServer, id="udp-threading"),
    ]
    if hasattr(socket, "AF_UNIX"):
        kinds.append(pytest.param(sockserver_lib.UnixDatagramServer, id="unix-dgram"))
    return kinds


class DatagramEcho(DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())


@pytest.mark.timeout(20)
@pytest.mark.parametrize("base", datagram_servers())
def test_an_oversize_datagram_is_reported_and_dropped(base):
    recorder = Recorder()
    server_class = type("Small", (base,), {
        "max_packet_size": 16, "handle_error": recorder.handle_error,
    })
    with contextlib.ExitStack() as cleanup:
        address = lab.LOCALHOST
        if base.address_family == getattr(socket, "AF_UNIX", None):
            address = cleanup.enter_context(lab.temporary_socket_path())
        server = cleanup.enter_context(lab.background_server(server_class(address, DatagramEcho)))
        client = cleanup.enter_context(datagram_client(base.address_family))
        client_address = client.getsockname()
        client.sendto(b"x" * 16, server.server_address)  # exactly max_packet_size: served
        assert client.recv(100) == b"x" * 16
        client.sendto(b"0123456789abcdef and more", server.server_address)
        client.sendto(b"after", server.server_address)
        assert client.recv(100) == b"after"  # no reply to the oversize one
        error = recorder.next_error()
    assert isinstance(error, OversizeDatagramError) and isinstance(error, OSError)
    assert error.request == (b"0123456789abcdef", server.socket)
    assert error.client_address == client_address
    assert "longer than max_packet_size (16 bytes): dropped" in str(error)
    assert recorder.errors.empty()


@pytest.mark.timeout(20)
def test_the_default_handle_error_prints_the_oversize_datagram_to_stderr(capfd):
    server_class = type("Small", (UDPServer,), {"max_packet_size": 4})
    with lab.background_server(server_class(lab.LOCALHOST, DatagramEcho)) as server:
        with datagram_client(socket.AF_INET) as client:
            client.sendto(b"too long", server.server_address)
            client.sendto(b"ok", server.server_address)
            assert client.recv(100) == b"ok"
    assert "OversizeDatagramError" in capfd.readouterr().err


# --- AllowListMixIn -------------------------------------------------------

class Greeter(StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"welcome\n")


def ask(address) -> bytes:
    """The reply to one client; b"" if the server closed the connection at once."""
    with lab.connect(address) as sock:
        return lab.recv_all(sock, reset_ends=True)


def allow_list_server(networks, base=TCPServer, address=lab.LOCALHOST, handler=Greeter):
    class Guarded(AllowListMixIn, base):
        allowed_networks = networks
        processed = 0

        def process_request(self, request, client_address):
            self.processed += 1
            super().process_request(request, client_address)

    return Guarded(address, handler)


@pytest.mark.parametrize("base", [TCPServer, ThreadingTCPServer], ids=["sync", "threading"])
def test_allow_list_serves_allowed_clients_and_refuses_others_before_processing(base):
    assert AllowListMixIn.allowed_networks == ("127.0.0.0/8", "::1/128")  # loopback only
    for networks, expected in [
        (AllowListMixIn.allowed_networks, b"welcome\n"),
        (("10.0.0.0/8", "127.0.0.1"), b"welcome\n"),
        (("10.0.0.0/8",), b""),
        ((), b""),
    ]:
        with lab.background_server(allow_list_server(networks, base)) as server:
            assert ask(server.server_address) == expected, networks
            refused = int(expected == b"")
            assert (server.refused, server.processed) == (refused, 1 - refused)


def test_allow_list_is_read_on_every_request_and_fails_closed_when_invalid():
    recorder = Recorder()
    server = allow_list_server(("10.0.0.0/8",))
    server.handle_error = lambda request, address: recorder.handle_error(server, request, address)
    with lab.background_server(server):
        assert ask(server.server_address) == b""
        server.allowed_networks = ["127.0.0.0/8"]  # a list works too
        assert ask(server.server_address) == b"welcome\n"
        server.allowed_networks = ("127.0.0.0/33",)
        assert ask(server.server_address) == b""
        assert isinstance(recorder.next_error(), ValueError)
    assert server.refused == 2


def test_allow_list_rejects_invalid_networks_when_the_server_is_built():
    with pytest.raises(ValueError, match="127.0.0.1/8"):
        allow_list_server(("127.0.0.1/8",))  # host bits set: did you mean 127.0.0.0/8?


def test_allow_list_checks_ipv4_seen_through_ipv6_and_refuses_addresses_without_ip():
    guard = type("Guard", (AllowListMixIn,), {"allowed_networks": ("10.1.0.0/16",)})()
    assert guard.is_allowed(("10.1.2.3", 5000))
    assert guard.is_allowed(("::ffff:10.1.2.3", 5000, 0, 0))
    assert not guard.is_allowed(("10.2.0.1", 5000))
    assert not guard.is_allowed(("::1", 5000, 0, 0))
    assert not guard.is_allowed("/tmp/client.sock")  # a Unix client's address
    assert not guard.is_allowed(None)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this platform")
def test_allow_list_serves_ipv6_loopback_by_default():
    class TCP6Server(TCPServer):
        address_family = socket.AF_INET6

    try:
        server = allow_list_server(AllowListMixIn.allowed_networks, TCP6Server, ("::1", 0))
    except OSError as error:
        pytest.skip(f"cannot bind ::1 here: {error}")
    with lab.background_server(server):
        assert ask(server.server_address[:2]) == b"welcome\n"


def test_allow_list_drops_a_refused_datagram():
    decided = threading.Event()

    class Guarded(AllowListMixIn, UDPServer):
        allowed_networks = ("10.0.0.0/8",)

        def verify_request(self, request, client_address):
            try:
                return super().verify_request(request, client_address)
            finally:
                decided.set()

    with lab.background_server(Guarded(lab.LOCALHOST, DatagramEcho)) as server:
        with datagram_client(socket.AF_INET) as client:
            client.sendto(b"refused", server.server_address)
            assert decided.wait(PATIENCE)
            server.allowed_networks = ("127.0.0.1",)
            client.sendto(b"served", server.server_address)
            assert client.recv(100) == b"served"
    assert server.refused == 1


def test_allow_list_is_exported_with_the_new_errors():
    for name in ("AllowListMixIn", "LineTooLongError", "OversizeDatagramError"):
        assert name in sockserver_lib.EXTRAS and hasattr(sockserver_lib, name)
    assert ipaddress.ip_address("127.0.0.1") in ipaddress.ip_network("127.0.0.0/8")


# --- examples bind to loopback --------------------------------------------

#: A bind to every interface in Python source: "0.0.0.0", "::" or "" as the host.
ALL_INTERFACES = re.compile(r"""\(\s*(["'])(0\.0\.0\.0|::|)\1\s*,\s*\w+\s*\)|["']0\.0\.0\.0["']""")


def example_sources() -> Iterator[tuple[str, str]]:
    """(where, code) for every example: notebooks' and solutions' code cells, Python files."""
    for folder in ("notebooks", "solutions", "exercises"):
        for path in sorted((REPO / folder).glob("*.ipynb")):
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            for number, cell in enumerate(cells, start=1):
                if cell["cell_type"] == "code":
                    yield f"{path.name} cell {number}", "".join(cell["source"])
    for folder in ("sockserver_lib", "benchmarks", "tools"):
        for path in sorted((REPO / folder).rglob("*.py")):
            yield str(path.relative_to(REPO)), path.read_text(encoding="utf-8")


def test_the_pattern_finds_binds_to_every_interface():
    for code in ['("0.0.0.0", 8000)', "('', PORT)", 'HOST = "0.0.0.0"', '("::", 0)']:
        assert ALL_INTERFACES.search(code), code
    assert not ALL_INTERFACES.search('("127.0.0.1", 0)')


def test_examples_bind_to_loopback_never_to_every_interface():
    offenders = [where for where, code in example_sources() if ALL_INTERFACES.search(code)]
    assert offenders == []
