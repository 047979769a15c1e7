"""Pictures drawn from what your own run did (kit-only): traces and classes.

Each function takes the events of a ``sockserver_lib.trace.Trace`` (or
classes) and returns a matplotlib Figure, without pyplot, like plots.py.  In
a notebook, run ``%matplotlib inline`` once first: a Figure that ends a cell
is then shown as a picture (without it, only as ``<Figure size ...>``).

- plot_sequence(events)   one request through the hooks, a lane per thread or process,
                          steps in the order they happened (a sequence diagram)
- plot_fork(events)       the same for a forking server, with the fork, each side's
                          close of the connection, the child's exit and the reap marked
- plot_race(events)       the "read"/"write" notes of threads on one time axis, the
                          lost updates marked (lost_updates() finds them)
- plot_states(events)     rows over time coloured by state, from "state" notes
                          ("conn 3: reading"): the event loop's table, a filling backlog
- plot_class_diagram(classes)  the inheritance drawn from the classes themselves

Colours are Okabe & Ito's (colour-blind safe); labels stay legible with 30 rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch

from .plots import OKABE_ITO
from .trace import Event

#: Colours of lanes and states, in order of first appearance.
PALETTE = tuple(OKABE_ITO[name] for name in (
    "blue", "vermillion", "bluish green", "reddish purple", "orange", "sky blue", "black"))
#: Height of one step of a sequence diagram, in inches.
STEP_INCHES = 0.28
#: Width of a step's box, in lanes (a lane is 1 wide).
BOX_WIDTH = 0.82
#: The most steps a sequence diagram draws (the rest are summarized in the title).
MOST_STEPS = 60


# --- Lanes --------------------------------------------------------------------

def lane_names(events: Iterable[Event], client_thread: str | None = "MainThread",
               client_pid: int | None = None) -> dict[str, str]:
    """{event.where: a short label}, in order of first appearance.

    The client is the lane of *client_thread* in *client_pid* (default: the
    process of the first note written in that thread), when there are several lanes;
    a lane in another process is named by its pid ("child 4242"), a thread by
    its name."""
    events = list(events)
    pids = [event.pid for event in events]
    if client_pid is None:  # the client is who writes notes (a server in a script's
        # main thread has a MainThread too)
        client_pid = next((e.pid for e in events
                           if e.thread == client_thread and e.phase == "note"), None)
    first_pid = pids[0] if pids else None
    names: dict[str, str] = {}
    several_lanes = len({event.where for event in events}) > 1
    for event in events:
        if event.where in names:
            continue
        if several_lanes and event.pid == client_pid and event.thread == client_thread:
            names[event.where] = "client"
        elif len(set(pids)) > 1 and event.pid != first_pid and event.pid != client_pid:
            names[event.where] = f"child {event.pid}"
        else:
            names[event.where] = _short_thread(event.thread)
    return names


def _short_thread(name: str) -> str:
    if name.startswith("serve_forever"):
        return "server loop"
    return name.replace(" (process_request_thread)", "").replace("MainThread", "main thread")


# --- Sequence diagrams ----------------------------------------------------------

@dataclasses.dataclass
class Step:
    """One row of a sequence diagram: *event* drawn at *depth* in its lane; for a call,
    *ended* is the event that ended it (its return or raise), if it was recorded."""

    event: Event
    depth: int
    ended: Event | None = None


def steps(events: Iterable[Event], skip: Sequence[str] = ("service_actions",)) -> list[Step]:
    """The calls and notes in order, each with how deeply it is nested in its lane
    (returns close a level; *skip* leaves out hooks that would crowd the picture)."""
    open_calls: dict[str, list[Step]] = {}
    found = []
    for event in events:
        if event.hook in skip:
            continue
        calls = open_calls.setdefault(event.where, [])
        if event.phase == "call":
            found.append(Step(event, len(calls)))
            calls.append(found[-1])
        elif event.phase in ("return", "raise"):
            call = calls.pop() if calls else None
            if call is not None:
                call.ended = event
            if event.phase == "raise":
                found.append(Step(event, len(calls)))
        else:
            found.append(Step(event, len(calls)))
    return found


def plot_sequence(events: Sequence[Event], title: str = "One request through the hooks",
                  lanes: dict[str, str] | None = None,
                  mark: Callable[[Step, list[Step]], str | None] | None = None,
                  skip: Sequence[str] = ("service_actions", "serve_forever")) -> Figure:
    """A sequence diagram: a column per lane, a row per call or note, in order.

    A box names the hook (and its short arguments); nesting is indented;
    an arrow shows where the work moves to another lane.  *mark(step, all
    steps)* may return a remark to write beside a step."""
    rows = steps(events, skip)
    shown = rows[:MOST_STEPS]
    lanes = lanes or lane_names(events)
    order = list(dict.fromkeys(lanes[step.event.where] for step in shown)) or ["(no events)"]
    column = {name: index for index, name in enumerate(order)}
    figure = Figure(figsize=(2.6 + 3.2 * len(order), 1.4 + STEP_INCHES * max(1, len(shown))),
                    layout="constrained")
    axes = figure.add_subplot()
    _lane_headers(axes, order, len(shown))
    previous = None
    for row, step in enumerate(shown):
        lane = lanes[step.event.where]
        x = column[lane] + 0.06 * step.depth
        _step_box(axes, x, row, step, PALETTE[column[lane] % len(PALETTE)])
        if previous is not None and previous[0] != column[lane]:  # the work moves lanes
            rightwards = column[lane] > previous[0]
            axes.annotate("", xy=(x - 0.02 if rightwards else x + BOX_WIDTH + 0.02, row),
                          xytext=(previous[1] + BOX_WIDTH if rightwards else previous[1], row - 1),
                          arrowprops={"arrowstyle": "->", "color": "0.35", "lw": 1})
        remark = mark(step, rows) if mark else None
        if remark:
            axes.text(len(order) - 0.05, row, remark, va="center", ha="left", fontsize=8,
                      color=OKABE_ITO["vermillion"], fontweight="bold")
        axes.text(-0.12, row, f"{step.event.time * 1000:.2f} ms", ha="right", va="center",
                  fontsize=7, color="0.4")
        previous = (column[lane], x)
    more = len(rows) - len(shown)
    axes.set_title(title + (f" (first {len(shown)} of {len(rows)} steps)" if more else ""))
    axes.set_xlim(-0.6, len(order) + (1.2 if mark else 0.1))
    axes.set_ylim(len(shown) - 0.4, -1.4)
    axes.axis("off")
    return figure


def _lane_headers(axes, order: list[str], rows: int) -> None:
    for index, name in enumerate(order):
        colour = PALETTE[index % len(PALETTE)]
        axes.text(index + 0.35, -1.0, name, ha="center", va="center", fontsize=10,
                  fontweight="bold", color=colour)
        axes.plot([index + 0.35, index + 0.35], [-0.7, rows - 0.5], color=colour, lw=0.8,
                  alpha=0.35, zorder=0)


def _step_box(axes, x: float, row: int, step: Step, colour: str) -> None:
    event = step.event
    label = event.hook + ("()" if event.phase == "call" else "")
    if event.phase == "raise":
        label = f"{event.hook} raises {event.detail}"
    elif event.detail:
        label += f"  {event.detail}"
    note = event.phase == "note"
    shape = {"boxstyle": "round,pad=0.0,rounding_size=0.08"}
    axes.add_patch(FancyBboxPatch((x, row - 0.32), BOX_WIDTH, 0.64, facecolor="white",
                                  edgecolor="none", zorder=1, **shape))  # hides the lane line
    axes.add_patch(FancyBboxPatch((x, row - 0.32), BOX_WIDTH, 0.64, zorder=2, **shape,
                                  facecolor="white" if note else colour,
                                  edgecolor=colour, alpha=1 if note else 0.18, lw=1))
    axes.text(x + 0.03, row, label if len(label) <= 36 else label[:33] + "...", va="center",
              fontsize=8, color=OKABE_ITO["vermillion"] if event.phase == "raise" else "black",
              fontstyle="italic" if note else "normal")


def fork_marks(step: Step, rows: list[Step]) -> str | None:
    """The remarks of a fork diagram: the fork, each side's close, the child's exit, the reap."""
    event = step.event
    parent = next((row.event.pid for row in rows if row.event.phase != "note"), None)
    remarks = []
    if event.hook == "process_request" and event.pid == parent:
        remarks.append("fork(): the child starts as a copy of the parent")
    if event.hook == "close_request":
        remarks.append("parent closes its copy of the connection" if event.pid == parent
                       else "child closes the connection")
    if event.pid != parent and step is _last_of(rows, event.pid):
        remarks.append("then the child ends: os._exit()")
    if event.hook == "collect_children" and step.ended is not None:
        reaped = sorted(set(_pids(event.detail)) - set(_pids(step.ended.detail)))
        if reaped:
            remarks.append(f"reaps child {', '.join(map(str, reaped))}")
    return "; ".join(remarks) or None


def _pids(detail: str) -> list[int]:
    """The pids in a collect_children detail, "[4242, 4243]"."""
    return [int(word) for word in detail.strip("[]").replace(",", " ").split() if word.isdigit()]


def _last_of(rows: list[Step], pid: int) -> Step | None:
    mine = [step for step in rows if step.event.pid == pid]
    return mine[-1] if mine else None


def plot_fork(events: Sequence[Event], title: str = "A forking server: parent and child"
              ) -> Figure:
    """plot_sequence() of a forking run, the fork, closes, exit and reap marked."""
    return plot_sequence(events, title, mark=fork_marks)


# --- The race -------------------------------------------------------------------

def lost_updates(events: Iterable[Event]) -> list[Event]:
    """The "write" notes whose value was overwritten by a write based on an older read.

    A thread's write is lost when another thread read before it was written
    and wrote after it: that later write never saw it."""
    notes = [e for e in events if e.phase == "note" and e.hook in ("read", "write")]
    lost = []
    for index, write in enumerate(notes):
        if write.hook != "write":
            continue
        for later in notes[index + 1:]:
            if later.hook == "write" and later.where != write.where:
                read = _read_before(notes, later)
                if read is not None and notes.index(read) < index:
                    lost.append(write)
                    break
    return lost


def _read_before(notes: list[Event], write: Event) -> Event | None:
    reads = [e for e in notes[: notes.index(write)] if e.hook == "read" and e.where == write.where]
    return reads[-1] if reads else None


def plot_race(events: Sequence[Event], title: str = "Two threads, one counter") -> Figure:
    """Each thread's reads and writes of a shared value on one time axis; lost ones marked."""
    notes = [e for e in events if e.phase == "note" and e.hook in ("read", "write")]
    lost = lost_updates(notes)
    lanes = list(dict.fromkeys(e.where for e in notes)) or ["(no reads or writes)"]
    figure = Figure(figsize=(9, 1.2 + 0.55 * len(lanes)), layout="constrained")
    axes = figure.add_subplot()
    start = notes[0].time if notes else 0.0
    for event in notes:
        row = lanes.index(event.where)
        x = (event.time - start) * 1000
        is_lost = event in lost
        axes.plot(x, row, "X" if is_lost else ("o" if event.hook == "read" else "s"),
                  color=OKABE_ITO["vermillion"] if is_lost else PALETTE[row % len(PALETTE)],
                  markersize=10 if is_lost else 7)
        above = event.hook == "read"  # reads above, writes below: a quick read-write
        # pair does not print one label over the other
        axes.annotate(f"{event.hook} {event.detail}" + (" (lost)" if is_lost else ""),
                      (x, row), textcoords="offset points", xytext=(0, 9 if above else -11),
                      ha="center", va="bottom" if above else "top", fontsize=8, rotation=30)
    axes.set_yticks(range(len(lanes)), [_short_thread(lane.split(" ", 2)[-1]) for lane in lanes])
    axes.set_ylim(len(lanes) - 0.2, -0.8)
    axes.set_xlabel("time since the first read (ms)")
    axes.set_title(f"{title}: {len(lost)} lost update{'s' if len(lost) != 1 else ''}")
    axes.legend(handles=[
        axes.plot([], [], "o", color="0.4")[0], axes.plot([], [], "s", color="0.4")[0],
        axes.plot([], [], "X", color=OKABE_ITO["vermillion"])[0]],
        labels=["read", "write", "write lost (overwritten)"], fontsize=8,
        loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the plot: it hides no row
    axes.grid(axis="x", alpha=0.3)
    return figure


# --- States over time -------------------------------------------------------------

def state_intervals(events: Iterable[Event]) -> list[tuple[str, str, float, float]]:
    """(row, state, from, to) from "state" notes "row: state"; a state lasts until the
    row's next note, the last one until the last event."""
    events = list(events)
    end = events[-1].time if events else 0.0
    notes = [e for e in events if e.phase == "note" and e.hook == "state" and ": " in e.detail]
    intervals, open_ = [], {}
    for event in notes:
        row, state = event.detail.split(": ", 1)
        if row in open_:
            intervals.append((row, *open_[row], event.time))
        open_[row] = (state, event.time)
    intervals += [(row, state, since, end) for row, (state, since) in open_.items()]
    return intervals


def state_rows(intervals: list[tuple[str, str, float, float]]) -> list[str]:
    """The rows of *intervals*, in the order of their first state's start."""
    return list(dict.fromkeys(row for row, *_ in sorted(intervals, key=lambda i: i[2])))


def plot_states(events: Sequence[Event], title: str = "States over time",
                colours: dict[str, str] | None = None) -> Figure:
    """A row per thing (connection, client), coloured by its state over time."""
    intervals = state_intervals(events)
    rows = state_rows(intervals) or ["(no state notes)"]
    states = list(dict.fromkeys(state for _, state, *_ in intervals))
    colours = {**{s: PALETTE[i % len(PALETTE)] for i, s in enumerate(states)}, **(colours or {})}
    figure = Figure(figsize=(9, 1.3 + 0.26 * len(rows)), layout="constrained")
    axes = figure.add_subplot()
    start = min((since for *_, since, _ in intervals), default=0.0)
    end = max((until for *_, until in intervals), default=start)
    least = max((end - start) * 1000 / 80, 0.05)  # a state that lasted no time still shows
    for row, state, since, until in intervals:
        axes.barh(rows.index(row), max((until - since) * 1000, least), left=(since - start) * 1000,
                  color=colours[state], height=0.7)
    axes.set_yticks(range(len(rows)), rows, fontsize=8 if len(rows) <= 20 else 6)
    axes.invert_yaxis()
    axes.set_xlabel("time (ms)")
    axes.set_title(title)
    axes.legend(handles=[Patch(color=colours[s], label=s) for s in states], fontsize=8,
                loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.grid(axis="x", alpha=0.3)
    return figure


# --- Classes ------------------------------------------------------------------------

def class_layers(classes: Sequence[type]) -> list[list[type]]:
    """*classes* in layers: a class sits one layer below the lowest of its bases
    among *classes* (found by introspection, in the given order within a layer)."""
    level: dict[type, int] = {}

    def depth(cls: type) -> int:
        if cls not in level:
            level[cls] = 1 + max((depth(base) for base in cls.__bases__ if base in classes),
                                 default=-1)
        return level[cls]

    layers: list[list[type]] = []
    for cls in classes:
        index = depth(cls)
        layers.extend([] for _ in range(index + 1 - len(layers)))
        layers[index].append(cls)
    return layers


def class_positions(layers: list[list[type]], sweeps: int = 4) -> dict[type, tuple[float, int]]:
    """{class: (x, layer)}: each layer spread over the widest one's width, and ordered, a
    few times over, by where its classes' bases are (so arrows cross as little as they can)."""
    width = max(len(layer) for layer in layers)
    where: dict[type, tuple[float, int]] = {}

    def place(row: int, layer: list[type]) -> None:
        for index, cls in enumerate(layer):
            where[cls] = ((index + 0.5) * width / len(layer), row)

    for row, layer in enumerate(layers):
        place(row, layer)
    for _ in range(sweeps):
        for row, layer in enumerate(layers[1:], start=1):
            def under_bases(cls: type) -> float:
                xs = [where[base][0] for base in cls.__bases__ if base in where]
                return sum(xs) / len(xs) if xs else where[cls][0]
            layer.sort(key=under_bases)
            place(row, layer)
    return where


def plot_class_diagram(classes: Sequence[type], title: str = "socketserver's classes",
                       mixins: Sequence[type] = ()) -> Figure:
    """Boxes for *classes*, an arrow from each to each of its bases among them
    (read from ``__bases__``); *mixins* are drawn in another colour."""
    layers = class_layers(classes)
    width = max(len(layer) for layer in layers)
    figure = Figure(figsize=(max(6.0, 2.5 * width), 0.9 + 1.0 * len(layers)), layout="constrained")
    axes = figure.add_subplot()
    where = class_positions(layers)
    for cls, (x, y) in where.items():
        for base in cls.__bases__:
            if base in where:
                bx, by = where[base]
                bend = 0.25 if y - by > 1 else 0.0  # an arrow that skips a layer goes round it
                axes.annotate("", xy=(bx, by + 0.22), xytext=(x, y - 0.22),
                              arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1,
                                          "connectionstyle": f"arc3,rad={bend}"})
    for cls, (x, y) in where.items():
        colour = OKABE_ITO["orange"] if cls in mixins else OKABE_ITO["sky blue"]
        axes.text(x, y, cls.__name__, ha="center", va="center", fontsize=9,
                  bbox={"boxstyle": "round,pad=0.4", "facecolor": colour, "alpha": 0.35,
                        "edgecolor": colour})
    axes.set_xlim(-0.2, width + 0.2)
    axes.set_ylim(len(layers) - 0.5, -0.6)
    axes.axis("off")
    axes.set_title(title + ("  (orange: mix-ins; arrows point to the base class)" if mixins
                            else "  (arrows point to the base class)"), fontsize=10)
    return figure
