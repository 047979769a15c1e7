"""ex15 (notebook 15, the chat server): rooms under a lock, and clients that never read.

The protocol (notebook 15): on connecting, "* hello guestN" and "* you are
in lobby"; "/nick NAME" -> "* you are now NAME" (the room: "* OLD is now
NAME"); "/join ROOM" -> "* you are in ROOM" (the old room: "* NAME left",
the new one: "* NAME joined"); "/quit" -> "* bye", then the server closes;
another "/..." -> "* unknown command: LINE"; any other line goes to the
others in the room as "<NAME> line".  Empty lines and a last line without
its newline are ignored.  A client whose outbox is full is dropped.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

from .. import lab
from .helpers import POLL_INTERVAL, _expect, _small_send_buffers, _talking
from .model import Students

#: Clients in the many-clients test, in two rooms, and the lines each one says.
EX15_CLIENTS, EX15_LINES = 20, 5
#: The flood: rounds of lines from alice while mallory reads nothing; bob
#: reads each round before the next one is sent.
EX15_ROUNDS, EX15_PER_ROUND, EX15_LINE_SIZE = 10, 10, 1000
#: The outbox bound and the send/receive buffers (bytes) used in the flood,
#: so that mallory's buffers and outbox fill after a few dozen lines.
EX15_MAX_QUEUED, EX15_SMALL_BUFFER = 20, 4096

GREETING = re.compile(rb"\* hello guest\d+\n")
HINT_GREETING = "see the hints for the handler and for the outbox"


class _Chatter:
    """A chat client for the tests: a socket with a timeout, and the lines it has read."""

    def __init__(self, address: Any, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(lab.family_of(address), socket.SOCK_STREAM)
        self.sock.settimeout(lab.CLIENT_TIMEOUT)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(address)
        self.buffer = b""
        self.heard: list[bytes] = []

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\n")

    def read_line(self) -> bytes:
        """The next line (b"" at end-of-file); it is added to self.heard."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        self.heard.append(line + b"\n")
        return line + b"\n"

    def read_until(self, expected: bytes) -> list[bytes]:
        """Read lines up to *expected* (a line without b"\\n"); return those before it."""
        before = []
        while (line := self.read_line()) != expected + b"\n":
            _expect(line, f"the server closed the connection before sending {expected!r}; "
                    f"it sent {before!r}")
            before.append(line)
        return before

    def greeted(self) -> None:
        line = self.read_line()
        _expect(GREETING.fullmatch(line), f"a new client got {line!r} first, expected "
                f"b'* hello guestN\\n' (guest1, guest2...); {HINT_GREETING}")
        self.read_until(b"* you are in lobby")

    def nick(self, name: bytes) -> None:
        self.send(b"/nick " + name)
        self.read_until(b"* you are now " + name)

    def join(self, room: bytes) -> None:
        self.send(b"/join " + room)
        self.read_until(b"* you are in " + room)

    def said(self, count: int) -> list[bytes]:
        """The next *count* lines starting with b"<" (others are skipped)."""
        lines = []
        while len(lines) < count:
            line = self.read_line()
            _expect(line, f"the connection was closed after {len(lines)} of {count} "
                    f"messages: {lines[-3:]!r}")
            if line.startswith(b"<"):
                lines.append(line)
        return lines

    def rest(self) -> list[bytes]:
        """Every line until the server closes (a reset also ends it)."""
        lines = []
        with contextlib.suppress(ConnectionResetError):
            while line := self.read_line():
                lines.append(line)
        return lines

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def _chat(students: Students, **attributes: Any) -> Iterator[tuple[Any, list[_Chatter]]]:
    """Serve the student's chat in the background; yield (server, clients to close)."""
    attributes.setdefault("request_queue_size", 4 * EX15_CLIENTS)  # a burst of connects
    server_type = type("ChatUnderTest", (students["ChatServer"],), attributes)
    server = server_type(lab.LOCALHOST, students["ChatHandler"])
    clients: list[_Chatter] = []
    with lab.background_server(server, POLL_INTERVAL):
        try:
            yield server, clients
        finally:  # first: a server stuck sending to a client gets an error and goes on
            for client in clients:
                client.close()


def _joined(address: Any, clients: list[_Chatter], name: bytes, room: bytes | None = None,
            rcvbuf: int | None = None) -> _Chatter:
    """A client that was greeted, took *name* and joined *room*."""
    client = _Chatter(address, rcvbuf)
    clients.append(client)
    client.greeted()
    client.nick(name)
    if room is not None:
        client.join(room)
    return client


def _alice_and_bob(address: Any, clients: list[_Chatter]) -> tuple[_Chatter, _Chatter]:
    """alice and bob in the lobby; alice has read the lines about bob's arrival."""
    alice = _joined(address, clients, b"alice")
    bob = _joined(address, clients, b"bob")
    alice.read_until(b"* guest2 is now bob")
    return alice, bob


def _ex15_welcome_and_nick(students: Students) -> None:
    hint = ("'/nick NAME' (NAME: 1 to 20 letters, digits or _) renames the client; see the "
            "hints for the handler")
    with _chat(students) as (server, clients), _talking("greeting, then /nick", hint):
        first = _Chatter(server.server_address)
        clients.append(first)
        first.greeted()
        second = _Chatter(server.server_address)
        clients.append(second)
        second.greeted()
        line = first.read_line()
        _expect(re.fullmatch(rb"\* guest\d+ joined\n", line), f"a client in the lobby got "
                f"{line!r} when another one came in, expected b'* guestN joined\\n'; see the "
                "hints for the rooms")
        second.nick(b"alice")
        line = first.read_line()
        _expect(re.fullmatch(rb"\* guest\d+ is now alice\n", line),
                f"the lobby got {line!r} after /nick alice, expected b'* guestN is now alice\\n'")


def _ex15_join_moves_between_rooms(students: Students) -> None:
    hint = ("after /join ROOM, the old room hears '* NAME left' and the new one "
            "'* NAME joined'; see the hints for the rooms")
    with _chat(students) as (server, clients), _talking("/join between rooms", hint):
        alice, bob = _alice_and_bob(server.server_address, clients)
        alice.join(b"red")
        line = bob.read_line()
        _expect(line == b"* alice left\n", f"the lobby got {line!r} when alice joined red, "
                "expected b'* alice left\\n'")
        bob.join(b"red")
        line = alice.read_line()
        _expect(line == b"* bob joined\n", f"red got {line!r} when bob joined it, expected "
                "b'* bob joined\\n'")
        members = sorted(client.name for client in server.rooms.get("red", []))
        _expect(members == ["alice", "bob"], f"server.rooms['red'] holds {members}, expected "
                "alice and bob")
        _expect("lobby" not in server.rooms, "the lobby is empty but still in server.rooms: "
                "delete a room when its last member leaves")


def _ex15_messages_reach_the_room_only(students: Students) -> None:
    hint = ("a line said in a room reaches the others in that room, and no one else; see "
            "the hints for the rooms")
    with _chat(students) as (server, clients), _talking("messages in two rooms", hint):
        address = server.server_address
        alice = _joined(address, clients, b"alice", b"red")
        bob = _joined(address, clients, b"bob", b"red")
        carol = _joined(address, clients, b"carol", b"blue")
        dave = _joined(address, clients, b"dave", b"blue")
        alice.read_until(b"* bob joined")
        carol.read_until(b"* dave joined")
        alice.send(b"hi bob")
        line = bob.read_line()
        _expect(line == b"<alice> hi bob\n", f"bob got {line!r}, expected "
                f"b'<alice> hi bob\\n'; {hint}")
        dave.send(b"hi carol")
        line = carol.read_line()
        _expect(line == b"<dave> hi carol\n", f"carol, in another room, got {line!r} before "
                f"dave's b'<dave> hi carol\\n'; {hint}")
        bob.send(b"hello alice")
        line = alice.read_line()
        _expect(line == b"<bob> hello alice\n", f"alice got {line!r} before bob's answer: a "
                f"sender must not get its own line back; {hint}")


def _ex15_commands_checked(students: Students) -> None:
    hint = ("on_line(): an empty line does nothing; a line starting with / that is not "
            "'/quit', '/nick NAME' or '/join ROOM' is answered '* unknown command: LINE'")
    with _chat(students) as (server, clients), _talking("unknown commands", hint):
        alice, bob = _alice_and_bob(server.server_address, clients)
        for line in (b"/dance", b"/nick two words", b"/join", b"/nick " + b"x" * 21):
            alice.send(line)
            reply = alice.read_line()
            expected = b"* unknown command: " + line + b"\n"
            _expect(reply == expected, f"{line!r} was answered {reply!r}, expected {expected!r}")
        alice.send(b"")
        alice.send(b"after an empty line")
        line = bob.read_line()
        _expect(line == b"<alice> after an empty line\n", f"bob got {line!r}; after an empty "
                "line, the next message should come first (an empty line is not a message)")


def _ex15_quit_closes(students: Students) -> None:
    hint = ("after /quit, the client gets '* bye', then the end of its connection, and its "
            "room hears '* NAME left'; see the hints for the handler")
    with _chat(students) as (server, clients), _talking("/quit", hint):
        alice, bob = _alice_and_bob(server.server_address, clients)
        bob.send(b"/quit")
        rest = bob.rest()
        _expect(rest == [b"* bye\n"], f"after /quit the client read {rest!r} and then the "
                "end of the connection; expected [b'* bye\\n'] and then the end")
        line = alice.read_line()
        _expect(line == b"* bob left\n", f"the room got {line!r}, expected b'* bob left\\n'")


def _ex15_many_clients_in_order(students: Students) -> None:
    hint = ("every member of a room, and only they, gets each line, in the order it was "
            "said; see the hints for the outbox")
    rooms = [b"even", b"odd"]
    ready = threading.Barrier(EX15_CLIENTS, timeout=lab.CLIENT_TIMEOUT)
    done = threading.Barrier(EX15_CLIENTS, timeout=lab.CLIENT_TIMEOUT)
    heard: dict[int, list[bytes]] = {}
    failures: list[BaseException] = []

    def talk(number: int, address: Any, clients: list[_Chatter]) -> None:
        try:
            client = _joined(address, clients, b"c%d" % number, rooms[number % 2])
            ready.wait()  # everybody is in a room: nobody misses a line
            for line in range(EX15_LINES):
                client.send(b"line %d from c%d" % (line, number))
            heard[number] = client.said(EX15_LINES * (EX15_CLIENTS // 2 - 1))
            done.wait()  # nobody leaves before everybody has heard everything
        except BaseException as error:
            failures.append(error)
            ready.abort()
            done.abort()

    with _chat(students) as (server, clients), _talking(f"{EX15_CLIENTS} clients", hint):
        threads = [lab.run_in_thread(lambda n=n: talk(n, server.server_address, clients))
                   for n in range(EX15_CLIENTS)]
        for thread in threads:
            thread.join(2 * lab.CLIENT_TIMEOUT)
        real = [f for f in failures if not isinstance(f, threading.BrokenBarrierError)]
        if real:
            raise real[0]
        _expect(len(heard) == EX15_CLIENTS, f"only {len(heard)} of {EX15_CLIENTS} clients "
                "heard all the messages of their room")
    for number, lines in heard.items():
        for sender in range(EX15_CLIENTS):
            said = [line for line in lines if line.startswith(b"<c%d> " % sender)]
            expected = ([] if sender == number or sender % 2 != number % 2 else
                        [b"<c%d> line %d from c%d\n" % (sender, line, sender)
                         for line in range(EX15_LINES)])
            _expect(said == expected, f"c{number} got from c{sender}: {said!r}, expected "
                    f"{expected!r}; {hint}")


def _flood(students: Students) -> tuple[int, bool, list[bytes] | None]:
    """alice floods a room where mallory never reads; bob reads each round.

    Returns (lines bob got, whether bob was told that mallory left, what
    mallory read once the flood was over up to the end of her connection,
    or None if it did not end).
    """
    hint = "a client that never reads must not hold up the others; see the hints for the outbox"
    with _chat(students, get_request=_small_send_buffers(EX15_SMALL_BUFFER),
               max_queued=EX15_MAX_QUEUED) as (
            server, clients), _talking("a room with a client that never reads", hint):
        address = server.server_address
        mallory = _joined(address, clients, b"mallory", b"room", rcvbuf=EX15_SMALL_BUFFER)
        bob = _joined(address, clients, b"bob", b"room")
        alice = _joined(address, clients, b"alice", b"room")
        got = 0
        for round_number in range(EX15_ROUNDS):
            first = round_number * EX15_PER_ROUND
            alice.sock.sendall(b"".join(
                b"%04d " % line + b"x" * (EX15_LINE_SIZE - 6) + b"\n"
                for line in range(first, first + EX15_PER_ROUND)))
            try:
                lines = bob.said(EX15_PER_ROUND)
            except TimeoutError:
                raise AssertionError(
                    f"while mallory read nothing, bob got {got} of alice's "
                    f"{EX15_ROUNDS * EX15_PER_ROUND} lines and then nothing for "
                    f"{lab.CLIENT_TIMEOUT:g} s: the room stalled; " + hint) from None
            expected = [b"<alice> %04d " % line + b"x" * (EX15_LINE_SIZE - 6) + b"\n"
                        for line in range(first, first + EX15_PER_ROUND)]
            _expect(lines == expected, f"bob got alice's lines wrong in round {round_number}"
                    f": {[line[:13] for line in lines]!r}")
            got += len(lines)
        try:
            rest = mallory.rest()  # ends if the server dropped her
        except TimeoutError:
            return got, False, None
        if b"* mallory left\n" in bob.heard:
            return got, True, rest
        try:
            bob.read_until(b"* mallory left")
        except TimeoutError:
            return got, False, rest
        return got, True, rest


def _ex15_nonreader_does_not_stall_the_room(students: Students) -> None:
    got, _, _ = _flood(students)
    total = EX15_ROUNDS * EX15_PER_ROUND
    _expect(got == total, f"bob got {got} of alice's {total} lines")


def _ex15_nonreader_is_dropped(students: Students) -> None:
    hint = (f"a client with {EX15_MAX_QUEUED} lines queued for it is dropped, and its room "
            "is told it left; see the hints for the outbox")
    try:
        _, told, rest = _flood(students)
    except AssertionError as error:
        raise AssertionError(f"the room stalled before mallory could be dropped: {error}") \
            from None
    total = EX15_ROUNDS * EX15_PER_ROUND
    _expect(rest is not None, f"mallory read nothing during a flood of {total} lines "
            f"(max_queued = {EX15_MAX_QUEUED}), and afterwards her connection stayed open: "
            f"she was never dropped; {hint}")
    said = sum(line.startswith(b"<alice>") for line in rest)
    _expect(said < total, f"mallory, who read nothing during the flood, got all {total} "
            f"lines afterwards: she was never dropped; {hint}")
    _expect(told, f"mallory was dropped, but the room was never told '* mallory left'; {hint}")


def _ex15_half_line_then_close(students: Students) -> None:
    hint = ("a last line without b'\\n' is not a message, and a reset is one more way "
            "to leave; see the hints for the handler")
    with _chat(students) as (server, clients), _talking("clients that leave mid-line", hint):
        address = server.server_address
        bob = _joined(address, clients, b"bob")
        carol = _joined(address, clients, b"carol")
        carol.sock.sendall(b"half a li")
        carol.sock.shutdown(socket.SHUT_WR)  # and nothing more
        bob.read_until(b"* carol left")
        dave = _joined(address, clients, b"dave")
        dave.sock.sendall(b"half")
        lab.close_with_reset(dave.sock)
        bob.read_until(b"* dave left")
        alice = _joined(address, clients, b"alice")
        alice.send(b"still there?")
        bob.read_until(b"<alice> still there?")
        broadcast = [line for line in bob.heard if line.startswith(b"<")]
        _expect(broadcast == [b"<alice> still there?\n"], f"bob got {broadcast!r}; {hint}")


def _ex15_every_way_out_leaves_the_room(students: Students) -> None:
    hint = ("whichever way a client leaves (/quit, end-of-file, a reset, dropped), it "
            "leaves its room and its threads end; see the hints for the handler")
    threads_before = set(threading.enumerate())
    with _talking("clients that leave in every way", hint):
        with _chat(students) as (server, clients):
            address = server.server_address
            stay = _joined(address, clients, b"stay")
            for number in range(8):
                client = _joined(address, clients, b"c%d" % number, b"room")
                way = number % 4
                if way == 0:
                    client.send(b"/quit")
                    client.rest()
                elif way == 1:
                    client.sock.shutdown(socket.SHUT_WR)
                    client.rest()
                elif way == 2:
                    client.sock.sendall(b"half")
                    lab.close_with_reset(client.sock)
                else:
                    pass  # still connected at the end
            stay.send(b"/join room")
            stay.read_until(b"* you are in room")
        members = {room: [client.name for client in members]
                   for room, members in server.rooms.items()}
        _expect(not any(members.values()), f"after server_close() the rooms still hold "
                f"{members}; {hint}")
    extra = sorted(thread.name for thread in set(threading.enumerate()) - threads_before
                   if thread.is_alive())
    _expect(not extra, f"threads still running after server_close(): {extra}; {hint}")
