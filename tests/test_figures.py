"""Figures drawn from traces: built from synthetic traces without error, and the
facts they mark (lost updates, forks, reaps, states, bases) found correctly."""

from __future__ import annotations

import socketserver

import pytest

from sockserver_lib import figures
from sockserver_lib.trace import Event

PARENT, CHILD = 100, 200


def event(time, hook, phase="call", pid=PARENT, thread="serve_forever-X", detail=""):
    return Event(time, hook, phase, pid, thread, detail)


def one_forked_request() -> list[Event]:
    return [
        event(0.0, "connect", "note", thread="MainThread"),
        event(0.1, "get_request"), event(0.2, "get_request", "return", detail="fd 6"),
        event(0.3, "process_request"), event(0.4, "close_request"),
        event(0.5, "close_request", "return"), event(0.6, "process_request", "return"),
        event(0.7, "finish_request", pid=CHILD, thread="MainThread"),
        event(0.8, "handle", pid=CHILD, thread="MainThread"),
        event(0.9, "handle", "return", pid=CHILD, thread="MainThread"),
        event(1.0, "finish_request", "return", pid=CHILD, thread="MainThread"),
        event(1.1, "close_request", pid=CHILD, thread="MainThread"),
        event(1.2, "close_request", "return", pid=CHILD, thread="MainThread"),
        event(1.3, "collect_children", detail=f"[{CHILD}]"),
        event(1.4, "collect_children", "return", detail="[]"),
    ]


def test_steps_nest_calls_and_pair_each_with_its_return():
    rows = figures.steps(one_forked_request())
    depths = [(step.event.hook, step.depth) for step in rows]
    assert depths[:4] == [("connect", 0), ("get_request", 0), ("process_request", 0),
                          ("close_request", 1)]
    assert ("handle", 1) in depths
    reap = next(step for step in rows if step.event.hook == "collect_children")
    assert reap.ended.detail == "[]"


def test_a_raise_is_a_step_of_its_own():
    rows = figures.steps([event(0, "handle"), event(1, "handle", "raise", detail="ValueError")])
    assert [(s.event.phase, s.depth) for s in rows] == [("call", 0), ("raise", 0)]


def test_fork_marks_name_the_fork_each_close_the_exit_and_the_reap():
    rows = figures.steps(one_forked_request())
    marks = {(s.event.hook, s.event.pid): figures.fork_marks(s, rows) for s in rows}
    assert marks[("process_request", PARENT)].startswith("fork()")
    assert marks[("close_request", PARENT)] == "parent closes its copy of the connection"
    assert marks[("close_request", CHILD)] == (
        "child closes the connection; then the child ends: os._exit()")
    assert marks[("collect_children", PARENT)] == f"reaps child {CHILD}"
    assert marks[("get_request", PARENT)] is None


def test_a_collect_children_that_reaps_nothing_is_not_marked():
    rows = figures.steps([event(0, "collect_children", detail="[7]"),
                          event(1, "collect_children", "return", detail="[7]")])
    assert figures.fork_marks(rows[0], rows) is None


def test_lanes_are_named_client_loop_and_child():
    names = figures.lane_names(one_forked_request())
    assert list(names.values()) == ["client", "server loop", f"child {CHILD}"]


def test_a_server_in_its_own_scripts_main_thread_is_not_the_client():
    server = [event(0.1, "get_request", pid=300, thread="MainThread"),
              event(0.2, "handle", pid=301, thread="MainThread")]
    # the server starts (and records) before the notebook writes its first note
    names = figures.lane_names([*server, event(0.3, "connect", "note", thread="MainThread")])
    assert names[f"pid {PARENT} MainThread"] == "client"
    assert names["pid 300 MainThread"] != "client"


def test_the_fork_marks_find_the_parent_after_a_clients_note():
    notebook = event(0.0, "connect", "note", pid=999, thread="MainThread")  # the client
    rows = figures.steps([notebook, *one_forked_request()[1:]])
    closes = [figures.fork_marks(s, rows) for s in rows if s.event.hook == "close_request"]
    assert closes[0] == "parent closes its copy of the connection"


def race(*steps) -> list[Event]:
    """Notes of threads A and B: ("A", "read", 0) ..."""
    return [event(n * 0.001, what, "note", thread=who, detail=str(value))
            for n, (who, what, value) in enumerate(steps)]


def test_an_interleaved_read_and_write_loses_the_first_write():
    events = race(("A", "read", 0), ("B", "read", 0), ("A", "write", 1), ("B", "write", 1))
    assert [(e.thread, e.detail) for e in figures.lost_updates(events)] == [("A", "1")]


def test_reads_and_writes_one_after_the_other_lose_nothing():
    events = race(("A", "read", 0), ("A", "write", 1), ("B", "read", 1), ("B", "write", 2))
    assert figures.lost_updates(events) == []


def test_three_threads_reading_the_same_value_lose_two_writes():
    events = race(("A", "read", 0), ("B", "read", 0), ("C", "read", 0),
                  ("A", "write", 1), ("B", "write", 1), ("C", "write", 1))
    assert len(figures.lost_updates(events)) == 2


def test_state_intervals_last_until_the_next_state_or_the_end():
    events = [event(0, "state", "note", detail="conn 1: waiting"),
              event(1, "state", "note", detail="conn 2: waiting"),
              event(2, "state", "note", detail="conn 1: reading"),
              event(5, "state", "note", detail="conn 2: closed")]
    assert figures.state_intervals(events) == [
        ("conn 1", "waiting", 0, 2), ("conn 2", "waiting", 1, 5),
        ("conn 1", "reading", 2, 5), ("conn 2", "closed", 5, 5)]


def test_state_rows_come_in_the_order_they_first_appear():
    events = [event(0, "state", "note", detail="conn 1: waiting"),
              event(1, "state", "note", detail="conn 2: waiting"),
              event(2, "state", "note", detail="conn 2: reading"),
              event(9, "state", "note", detail="conn 1: closed")]
    # conn 2's first state ends first, but conn 1 came first
    assert figures.state_rows(figures.state_intervals(events)) == ["conn 1", "conn 2"]


def test_class_layers_put_each_class_below_its_bases():
    classes = [socketserver.BaseServer, socketserver.TCPServer, socketserver.UDPServer,
               socketserver.UnixStreamServer, socketserver.UnixDatagramServer,
               socketserver.ThreadingMixIn, socketserver.ThreadingUDPServer]
    layers = [[cls.__name__ for cls in layer] for layer in figures.class_layers(classes)]
    assert layers == [["BaseServer", "ThreadingMixIn"], ["TCPServer"],
                      ["UDPServer", "UnixStreamServer"], ["UnixDatagramServer",
                                                          "ThreadingUDPServer"]]


def test_class_positions_put_a_class_under_its_bases():
    classes = [socketserver.BaseServer, socketserver.ThreadingMixIn, socketserver.TCPServer,
               socketserver.ThreadingTCPServer, socketserver.UDPServer]
    where = figures.class_positions(figures.class_layers(classes))
    assert where[socketserver.TCPServer][1] == where[socketserver.BaseServer][1] + 1
    # ThreadingTCPServer sits between its two bases, not at an end of its layer
    lo, hi = sorted((where[socketserver.TCPServer][0], where[socketserver.ThreadingMixIn][0]))
    assert lo <= where[socketserver.ThreadingTCPServer][0] <= hi + 1


@pytest.mark.parametrize("draw", [
    lambda: figures.plot_sequence(one_forked_request()),
    lambda: figures.plot_fork(one_forked_request()),
    lambda: figures.plot_sequence([]),
    lambda: figures.plot_race(race(("A", "read", 0), ("B", "read", 0), ("A", "write", 1),
                                   ("B", "write", 1))),
    lambda: figures.plot_race([]),
    lambda: figures.plot_states([event(n, "state", "note", detail=f"conn {n}: waiting")
                                 for n in range(30)]),
    lambda: figures.plot_states([]),
    lambda: figures.plot_class_diagram([socketserver.BaseServer, socketserver.TCPServer],
                                       mixins=[]),
])
def test_every_figure_draws(draw, tmp_path):
    figure = draw()
    figure.savefig(tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_a_long_sequence_says_how_much_it_left_out():
    many = [event(n, "tick", "note") for n in range(figures.MOST_STEPS + 5)]
    title = figures.plot_sequence(many).axes[0].get_title()
    assert title.endswith(f"(first {figures.MOST_STEPS} of {figures.MOST_STEPS + 5} steps)")


def test_the_race_title_counts_the_lost_updates():
    events = race(("A", "read", 0), ("B", "read", 0), ("A", "write", 1), ("B", "write", 1))
    assert figures.plot_race(events).axes[0].get_title().endswith(": 1 lost update")
