"""The exercise registry: every exercise, its names and the tests that grade it.

Each exercise is graded by contract checks (sockserver_lib.contract, built
here with _contract/_contracts/_given on the student's classes) and by
tests specific to it (grading/exNN.py).  add_tests() and load_extra_tests()
let an instructor add tests (the batch grader's ``--extra-tests``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import sockserver_lib

from .. import contract
from .ex01 import (
    _ex01_echo,
    _ex01_echo_in_pieces,
    _ex01_large_message,
    _ex01_listener,
    _ex01_silent_client,
    _ex01_stops,
    _ex01_udp_echo,
    _ex01_udp_stops,
)
from .ex03 import _ex03_allow_reuse_address, _ex03_bind_and_activate_false
from .ex04 import (
    _ex04_shout_conversation,
    _ex04_shout_lines,
    _ex04_shout_many_lines,
    _ex04_shout_quit,
    _ex04_timeout_setting,
)
from .ex05 import _ex05_max_packet_size
from .ex06 import (
    _ex06_datagram_client,
    _ex06_datagram_client_cleans_up,
    _ex06_keeps_other_servers_file,
)
from .ex07 import _ex07_service_actions, _ex07_shutdown_at_once
from .ex08 import _ex08_counts, _ex08_no_lost_updates
from .ex10 import (
    _ex10_allowed,
    _ex10_counts_refusals,
    _ex10_refused,
    _ex10_serves_after_refusal,
    _ex10_threading,
)
from .ex11 import (
    _ex11_closing,
    _ex11_echo,
    _ex11_handler_error,
    _ex11_large_reply,
    _ex11_line_handler_last_line,
    _ex11_line_handler_split_and_merged,
    _ex11_many_connections,
    _ex11_no_leaks,
    _ex11_silent_client,
    _ex11_split_across_sends,
)
from .ex14 import EX14_TESTS, SYMLINK_TESTS, symlinks_unavailable
from .ex15 import (
    _ex15_commands_checked,
    _ex15_every_way_out_leaves_the_room,
    _ex15_half_line_then_close,
    _ex15_join_moves_between_rooms,
    _ex15_many_clients_in_order,
    _ex15_messages_reach_the_room_only,
    _ex15_nonreader_does_not_stall_the_room,
    _ex15_nonreader_is_dropped,
    _ex15_quit_closes,
    _ex15_welcome_and_nick,
)
from .ex16 import EX16_NAMES, EX16_TESTS
from .helpers import _no_unix_sockets
from .model import Exercise, Students, Test


def _contract(check_name: str, kind_id: str, overrides: Callable[[Students], dict]) -> Test:
    """The contract check *check_name* on kind *kind_id*, with the student's classes."""
    transport, _, concurrency = kind_id.rpartition("-")
    kind = contract.Kind(transport, concurrency)

    def run(students: Students) -> None:
        impl = contract.implementation(**overrides(students))
        contract.CHECKS[check_name].run(impl, kind)

    return Test(f"{check_name}[{kind_id}]", run, unavailable=kind.unavailable_reason)


def _contracts(overrides: Callable[[Students], dict], *cases: str) -> tuple[Test, ...]:
    """Contract tests from "check_name[kind]" strings."""
    tests = []
    for case in cases:
        check_name, _, kind_id = case.rstrip("]").partition("[")
        tests.append(_contract(check_name, kind_id, overrides))
    return tuple(tests)


def _specific(*tests: tuple[str, Callable[[Students], None]],
              unavailable: Callable[[], str | None] = lambda: None) -> tuple[Test, ...]:
    return tuple(Test(name, run, unavailable=unavailable) for name, run in tests)


def _given(*names: str) -> Callable[[Students], dict]:
    """Overrides: the student's classes given under socketserver names."""
    return lambda students: {name: students[name] for name in names}


class _ServeThroughHandleRequest:
    """Make the library's serve_forever() serve each request with handle_request().

    The library's loop calls its private _handle_request_noblock() once the
    socket is readable; routing that through the student's handle_request()
    lets every contract check that serves in the background test the
    student's request loop (handle_request() then finds a request at once).
    """

    def _handle_request_noblock(self) -> None:
        if type(self).handle_request is sockserver_lib.BaseServer.handle_request:
            super()._handle_request_noblock()  # no handle_request() of the student's
        else:
            self.handle_request()


def _request_loop(students: Students) -> dict:
    mixin = students["RequestLoopMixIn"]
    return {
        name: type(name, (_ServeThroughHandleRequest, mixin, getattr(sockserver_lib, name)), {})
        for name in ("TCPServer", "UDPServer")
    }


def _serve_forever(students: Students) -> dict:
    mixin = students["ServeForeverMixIn"]
    return {name: type(name, (mixin, getattr(sockserver_lib, name)), {})
            for name in ("TCPServer", "UDPServer")}


def _registry() -> dict[str, Exercise]:
    exercises = [
        Exercise(
            "ex01", "ex01_echo_by_hand.ipynb", "Build an echo server that survives its clients",
            {"open_listener": "open_listener", "serve_echo": "serve_echo",
             "serve_udp_echo": "serve_udp_echo"},
            _specific(
                ("listener", _ex01_listener),
                ("echo", _ex01_echo),
                ("echo_in_pieces", _ex01_echo_in_pieces),
                ("large_message", _ex01_large_message),
                ("silent_client", _ex01_silent_client),
                ("stops", _ex01_stops),
                ("udp_echo", _ex01_udp_echo),
                ("udp_stops", _ex01_udp_stops),
            ),
        ),
        Exercise(
            "ex02", "ex02_request_loop.ipynb", "Build handle_request() and its hooks",
            {"RequestLoopMixIn": "RequestLoopMixIn"},
            _contracts(
                _request_loop,
                *(f"{check}[{kind}]" for check in (
                    "handle_request_serves_one_request", "handle_request_times_out",
                    "verify_request_false_denies_client", "handler_exception_goes_to_handle_error",
                    "system_exit_in_handler_propagates", "handler_hooks_run_in_order",
                ) for kind in ("tcp-sync", "udp-sync")),
            ),
        ),
        Exercise(
            "ex03", "ex03_tcp_server.ipynb", "Build TCPServer on the request loop",
            {"TCPServer": "MyTCPServer"},
            _contracts(
                _given("TCPServer"),
                "echo_round_trip[tcp-sync]", "echo_round_trip[tcp-threading]",
                "echo_round_trip[tcp-forking]", "handle_request_serves_one_request[tcp-sync]",
                "verify_request_false_denies_client[tcp-sync]",
                "server_close_releases_address[tcp-sync]",
                "no_leaks_after_many_requests[tcp-sync]",
                "no_leaks_after_many_requests[tcp-threading]",
                "silent_client_blocks_sync_server[tcp-sync]",
                "silent_client_does_not_block_concurrent_server[tcp-threading]",
            ) + _specific(
                ("bind_and_activate_false", _ex03_bind_and_activate_false),
                ("allow_reuse_address", _ex03_allow_reuse_address),
            ),
        ),
        Exercise(
            "ex04", "ex04_line_protocol.ipynb",
            "Build StreamRequestHandler and a line protocol on it",
            {"BaseRequestHandler": "MyBaseRequestHandler",
             "StreamRequestHandler": "MyStreamRequestHandler", "ShoutHandler": "ShoutHandler"},
            _contracts(
                _given("BaseRequestHandler", "StreamRequestHandler"),
                "echo_round_trip[tcp-sync]", "echo_round_trip[unix-stream-sync]",
                "handler_hooks_run_in_order[tcp-sync]",
                "handler_exception_goes_to_handle_error[tcp-sync]",
                "readline_vs_single_recv[tcp-sync]",
                "silent_client_does_not_block_concurrent_server[tcp-threading]",
                "no_leaks_after_many_requests[tcp-threading]",
            ) + _specific(
                ("stream_handler_timeout", _ex04_timeout_setting),
                ("shout_lines", _ex04_shout_lines),
                ("shout_conversation", _ex04_shout_conversation),
                ("shout_quit", _ex04_shout_quit),
                ("shout_many_lines", _ex04_shout_many_lines),
            ),
        ),
        Exercise(
            "ex05", "ex05_udp_server.ipynb", "Build UDPServer and DatagramRequestHandler",
            {"UDPServer": "MyUDPServer", "DatagramRequestHandler": "MyDatagramRequestHandler"},
            _contracts(
                _given("UDPServer", "DatagramRequestHandler"),
                "echo_round_trip[udp-sync]", "echo_round_trip[udp-threading]",
                "echo_round_trip[udp-forking]", "handle_request_serves_one_request[udp-sync]",
                "verify_request_false_denies_client[udp-sync]",
                "handler_exception_goes_to_handle_error[udp-sync]",
                "server_close_releases_address[udp-sync]",
                "no_leaks_after_many_requests[udp-sync]",
            ) + _specific(("max_packet_size", _ex05_max_packet_size)),
        ),
        Exercise(
            "ex06", "ex06_unix_server.ipynb", "Make Unix servers clean up their socket file",
            {"UnixStreamServer": "MyUnixStreamServer",
             "UnixDatagramServer": "MyUnixDatagramServer",
             "unix_datagram_request": "unix_datagram_request"},
            _contracts(
                _given("UnixStreamServer", "UnixDatagramServer"),
                "echo_round_trip[unix-stream-sync]", "echo_round_trip[unix-dgram-sync]",
                "server_close_releases_address[unix-stream-sync]",
                "server_close_releases_address[unix-dgram-sync]",
                "server_close_releases_address[unix-stream-threading]",
            ) + _specific(
                ("keeps_other_servers_file", _ex06_keeps_other_servers_file),
                ("datagram_client", _ex06_datagram_client),
                ("datagram_client_cleans_up", _ex06_datagram_client_cleans_up),
                unavailable=_no_unix_sockets,
            ),
        ),
        Exercise(
            "ex07", "ex07_serve_forever.ipynb",
            "Build serve_forever() and a shutdown() that stops it at once",
            {"ServeForeverMixIn": "ServeForeverMixIn"},
            _contracts(
                _serve_forever,
                "shutdown_stops_serve_forever[tcp-sync]", "shutdown_stops_serve_forever[udp-sync]",
                "shutdown_stops_serve_forever[tcp-threading]",
                "echo_round_trip[tcp-sync]", "echo_round_trip[udp-sync]",
                "handler_exception_goes_to_handle_error[tcp-sync]",
                "no_leaks_after_many_requests[tcp-threading]",
            ) + _specific(
                ("service_actions_every_turn", _ex07_service_actions),
                ("shutdown_at_once", _ex07_shutdown_at_once),
            ),
        ),
        Exercise(
            "ex08", "ex08_threads.ipynb", "Build ThreadingMixIn and count requests without a race",
            {"ThreadingMixIn": "MyThreadingMixIn", "CountingHandler": "CountingHandler"},
            _contracts(
                _given("ThreadingMixIn"),
                "echo_round_trip[tcp-threading]", "echo_round_trip[udp-threading]",
                "silent_client_does_not_block_concurrent_server[tcp-threading]",
                "handler_exception_goes_to_handle_error[tcp-threading]",
                "no_leaks_after_many_requests[tcp-threading]",
                "server_close_waits_for_request_threads[tcp-threading]",
                "server_close_waits_for_request_threads[udp-threading]",
            ) + _specific(
                ("counts_every_request", _ex08_counts),
                ("no_lost_updates", _ex08_no_lost_updates),
            ),
        ),
        Exercise(
            "ex09", "ex09_processes.ipynb", "Build ForkingMixIn and reap its children",
            {"ForkingMixIn": "MyForkingMixIn"},
            _contracts(
                _given("ForkingMixIn"),
                "echo_round_trip[tcp-forking]", "echo_round_trip[udp-forking]",
                "silent_client_does_not_block_concurrent_server[tcp-forking]",
                "handler_exception_goes_to_handle_error[tcp-forking]",
                "server_close_releases_address[tcp-forking]",
                "forking_server_reaps_children[tcp-forking]",
                "forking_server_reaps_children[udp-forking]",
                "no_leaks_after_many_requests[tcp-forking]",
                "no_leaks_after_many_requests[udp-forking]",
            ),
        ),
        Exercise(
            "ex10", "ex10_access_control.ipynb", "Let only some clients in with verify_request",
            {"AllowListServer": "AllowListServer"},
            _specific(
                ("allowed_client_served", _ex10_allowed),
                ("other_client_refused", _ex10_refused),
                ("refusals_counted", _ex10_counts_refusals),
                ("serves_after_refusal", _ex10_serves_after_refusal),
                ("threading_server", _ex10_threading),
            ),
        ),
        Exercise(
            "ex11", "ex11_select_server.ipynb",
            "Build an event loop that serves every client from one thread",
            {"SelectorMixIn": "MySelectorMixIn", "LineHandler": "MyLineHandler"},
            _specific(
                ("line_handler_split_and_merged", _ex11_line_handler_split_and_merged),
                ("line_handler_last_line", _ex11_line_handler_last_line),
                ("echo_round_trip", _ex11_echo),
                ("lines_split_across_sends", _ex11_split_across_sends),
                ("silent_client_does_not_block", _ex11_silent_client),
                ("many_connections_one_thread", _ex11_many_connections),
                ("large_reply_sent_in_pieces", _ex11_large_reply),
                ("handler_error_drops_only_its_client", _ex11_handler_error),
                ("server_close_closes_every_connection", _ex11_closing),
                ("no_leaks_after_rude_clients", _ex11_no_leaks),
            ),
        ),
        Exercise(
            "ex14", "ex14_http_server.ipynb",
            "Build an HTTP/1.0 file server that keeps its files in",
            {"FileHandler": "FileHandler"},
            _specific(*EX14_TESTS)
            + _specific(*SYMLINK_TESTS, unavailable=symlinks_unavailable),
        ),
        Exercise(
            "ex15", "ex15_chat_server.ipynb",
            "Build a chat server that a client who never reads cannot stall",
            {"ChatServer": "ChatServer", "ChatHandler": "ChatHandler"},
            _specific(
                ("welcome_and_nick", _ex15_welcome_and_nick),
                ("join_moves_between_rooms", _ex15_join_moves_between_rooms),
                ("messages_reach_the_room_only", _ex15_messages_reach_the_room_only),
                ("commands_checked", _ex15_commands_checked),
                ("quit_closes", _ex15_quit_closes),
                ("many_clients_in_order", _ex15_many_clients_in_order),
                ("nonreader_does_not_stall_the_room", _ex15_nonreader_does_not_stall_the_room),
                ("nonreader_is_dropped", _ex15_nonreader_is_dropped),
                ("half_line_then_close", _ex15_half_line_then_close),
                ("every_way_out_leaves_the_room", _ex15_every_way_out_leaves_the_room),
            ),
        ),
        Exercise(
            "ex16", "ex16_debugging_labs.ipynb", "Fix ten broken servers",
            EX16_NAMES, EX16_TESTS,
        ),
    ]
    return {exercise.id: exercise for exercise in exercises}


#: Every exercise by id, in order.
EXERCISES: dict[str, Exercise] = _registry()


def add_tests(exercise: str, tests: Iterable[Test]) -> None:
    """Add *tests* to *exercise*, graded like its own (the grader's ``--extra-tests``).

    ValueError, saying what to change, for an unknown exercise or a test
    name the exercise already has.
    """
    if exercise not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}; the exercises are "
                         f"{', '.join(EXERCISES)}")
    spec = EXERCISES[exercise]
    added = tuple(tests)
    names = [test.name for test in (*spec.tests, *added)]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{exercise} would have two tests named {', '.join(twice)}: "
                         "rename the extra test")
    EXERCISES[exercise] = dataclasses.replace(spec, tests=(*spec.tests, *added))


def load_extra_tests(folder: str) -> str:
    """Import every ``*.py`` in *folder* and add its EXTRA_TESTS to the exercises.

    Returns what was added ("ex10: 1 test"); raises ValueError saying what
    is wrong with a module.
    """
    modules = sorted(Path(folder).glob("*.py"))
    if not modules:
        raise ValueError("no *.py module in that folder")
    added: dict = {}
    for path in modules:
        spec = importlib.util.spec_from_file_location(f"sockserver_extra_tests.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # the tests' classes must be found again by name
        spec.loader.exec_module(module)
        extra = getattr(module, "EXTRA_TESTS", None)
        if not isinstance(extra, dict):
            raise ValueError(f"{path.name} defines no EXTRA_TESTS = {{exercise: [Test, ...]}}")
        for exercise, tests in extra.items():
            add_tests(exercise, tests)
            added[exercise] = added.get(exercise, 0) + len(tests)
    return ", ".join(f"{exercise}: {count} test(s)" for exercise, count in added.items())
