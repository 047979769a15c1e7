"""The latency lab's figures: the only module of the kit that imports matplotlib.

Each function takes the tidy records of sockserver_lib.bench (a
LabResults' ``summary`` or ``requests``, or the same lists read back from
results.json) and returns a matplotlib Figure, without pyplot, so nothing
is drawn on a screen unless you show it (a notebook shows a Figure that
ends a cell).  Colours come from the Okabe-Ito palette, which readers with
any kind of colour blindness can tell apart; lines also differ by marker.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .bench import SERVER_KINDS, WORKLOADS

#: Okabe & Ito's colour-blind-safe palette.
OKABE_ITO = {
    "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
    "reddish purple": "#CC79A7", "black": "#000000",
}
#: Colours of server kinds, in order (yellow is left out: too pale on white).
SERVER_COLOURS = tuple(OKABE_ITO[name] for name in (
    "vermillion", "blue", "bluish green", "reddish purple", "orange", "sky blue", "black"))
SERVER_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: The phases of a request on a timeline: (from, to, what it means, colour).
PHASES = (
    ("sent", "accepted", "waiting to be accepted", "#BBBBBB"),
    ("accepted", "started", "accepted, handler not yet running", OKABE_ITO["orange"]),
    ("started", "finished", "handler running", OKABE_ITO["blue"]),
)
WORKLOAD_TITLES = {
    "none": "no work (pure overhead)",
    "io": "I/O-bound handler (waits)",
    "cpu": "CPU-bound handler (computes)",
    "slow-client": "one slow client among fast ones",
}
METRIC_LABELS = {
    "p50_ms": "median latency (ms)",
    "p90_ms": "90th percentile latency (ms)",
    "p99_ms": "99th percentile latency (ms)",
    "mean_ms": "mean latency (ms)",
    "rps": "throughput (requests/s)",
}
#: Dots per inch of saved figures: sharp enough, small files.
DPI = 90
#: A timeline labels each row with its worker only up to this many rows.
MAX_LABELLED_ROWS = 40


def server_order(names) -> list:
    """*names* without repeats: registered kinds in registry order, then the rest."""
    names = list(dict.fromkeys(names))
    known = [kind for kind in SERVER_KINDS if kind in names]
    return known + [name for name in names if name not in known]


#: Server names met that are not in SERVER_KINDS, in the order first met.
_UNREGISTERED_SEEN: list = []


def server_style(server: str) -> dict:
    """Colour and marker of *server*, the same in every figure.

    Registered kinds take the palette in registry order; other names take
    the next free colours, in the order they are first drawn.
    """
    if server not in SERVER_KINDS and server not in _UNREGISTERED_SEEN:
        _UNREGISTERED_SEEN.append(server)
    index = server_order([*SERVER_KINDS, *_UNREGISTERED_SEEN]).index(server)
    return {
        "color": SERVER_COLOURS[index % len(SERVER_COLOURS)],
        "marker": SERVER_MARKERS[index % len(SERVER_MARKERS)],
    }


def _workload_order(names) -> list:
    names = list(dict.fromkeys(names))
    return [w for w in WORKLOADS if w in names] + [w for w in names if w not in WORKLOADS]


def _panels(count: int, width: float = 4.2, height: float = 3.0, columns: int = 2):
    """A constrained-layout Figure with *count* panels in a grid; returns (figure, axes)."""
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(width * columns, height * rows + 0.6), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in axes[count:]:
        extra.set_visible(False)
    return figure, list(axes[:count])


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _legend(figure: Figure, servers: list) -> None:
    handles = [Line2D([], [], linewidth=2, **server_style(s)) for s in servers]
    figure.legend(handles, servers, title="server", loc="outside right upper")


def plot_latency_vs_concurrency(summary: list, metric: str = "p50_ms") -> Figure:
    """One panel per workload: *metric* against concurrent clients, a line per server."""
    workloads = _workload_order(r["workload"] for r in summary)
    servers = server_order(r["server"] for r in summary)
    label = METRIC_LABELS.get(metric, metric)
    figure, axes = _panels(len(workloads))
    for ax, workload in zip(axes, workloads, strict=True):
        for server in servers:
            rows = sorted(
                (r for r in summary if (r["server"], r["workload"]) == (server, workload)),
                key=lambda r: r["concurrency"],
            )
            ax.plot([r["concurrency"] for r in rows], [_number(r[metric]) for r in rows],
                    linewidth=2, label=server, **server_style(server))
        levels = sorted({r["concurrency"] for r in summary})
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.set_ylim(bottom=0)
        ax.set_title(WORKLOAD_TITLES.get(workload, workload))
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    better = "higher" if metric == "rps" else "lower"
    figure.suptitle(f"{label[0].upper()}{label[1:]} as clients are added ({better} is better)")
    _legend(figure, servers)
    return figure


def default_concurrency(requests: list) -> int:
    """The concurrency a one-level figure shows by default: the highest measured."""
    return max(r["concurrency"] for r in requests)


def plot_latency_cdf(requests: list, concurrency: int | None = None) -> Figure:
    """One panel per workload: the distribution (CDF) of latencies at one concurrency.

    A point (x, y) on a server's line: a fraction y of the successful
    requests were answered within x ms.  Further left is faster; a line
    that rises late and steeply means everyone waited about as long.
    """
    concurrency = default_concurrency(requests) if concurrency is None else concurrency
    chosen = [r for r in requests if r["concurrency"] == concurrency and r["error"] is None]
    if not chosen:
        raise ValueError(f"no successful requests at concurrency {concurrency}")
    workloads = _workload_order(r["workload"] for r in chosen)
    servers = server_order(r["server"] for r in chosen)
    figure, axes = _panels(len(workloads))
    for ax, workload in zip(axes, workloads, strict=True):
        for server in servers:
            latencies = sorted(r["latency_ms"] for r in chosen
                               if (r["server"], r["workload"]) == (server, workload))
            fractions = [(index + 1) / len(latencies) for index in range(len(latencies))]
            ax.step(latencies, fractions, where="post", linewidth=2, label=server,
                    color=server_style(server)["color"])
        ax.set_title(WORKLOAD_TITLES.get(workload, workload))
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of requests")
        ax.set_xlim(left=0)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    figure.suptitle(f"How latency is distributed with {concurrency} concurrent clients")
    _legend(figure, servers)
    return figure


def worker_labels(requests: list) -> list:
    """A short name for the worker of each request: its thread, or its process.

    When all requests ran in one process, the thread name tells workers
    apart ("Thread-7"); otherwise the process does ("pid 4242").
    """
    workers = [r["worker"] for r in requests]
    pids = {w.split(":", 1)[0] for w in workers if w}
    labels = []
    for worker in workers:
        if not worker:
            labels.append("(failed)")
            continue
        pid, thread = worker.split(":", 1)
        if len(pids) == 1:
            labels.append(thread)
        else:
            labels.append(f"pid {pid}" if thread == "MainThread" else f"pid {pid} {thread}")
    return labels


def plot_timeline(
    requests: list, workload: str = "io", concurrency: int | None = None, repetition: int = 0
) -> Figure:
    """One panel per server: a Gantt chart of one measurement's requests.

    Each row is a request, in the order the clients sent them, labelled
    with the worker (thread or process) that handled it.  Its bar shows
    when it waited to be accepted, when it was accepted but its handler
    had not started yet (starting a thread or forking a process), and when
    the handler ran.  Time is in ms since the measurement started.
    """
    concurrency = default_concurrency(requests) if concurrency is None else concurrency
    chosen = [r for r in requests if (r["workload"], r["concurrency"], r["repetition"])
              == (workload, concurrency, repetition)]
    if not chosen:
        raise ValueError(f"no requests for workload {workload!r} at concurrency {concurrency}")
    servers = server_order(r["server"] for r in chosen)
    most_rows = max(sum(r["server"] == s for r in chosen) for s in servers)
    figure, axes = _panels(len(servers), width=7.5, height=max(1.6, 0.085 * most_rows + 0.8),
                           columns=1)
    for ax in axes[1:]:
        ax.sharex(axes[0])
    for ax, server in zip(axes, servers, strict=True):
        rows = sorted((r for r in chosen if r["server"] == server), key=lambda r: r["sent"])
        _draw_timeline(ax, rows)
        workers = len({r["worker"] for r in rows if r["worker"]})
        ax.set_title(f"{server}: {len(rows)} requests handled by "
                     f"{workers} worker{'s' if workers != 1 else ''}", loc="left")
    axes[0].set_xlim(left=0)
    axes[-1].set_xlabel("time since the measurement started (ms)")
    figure.suptitle(f"Timeline of {WORKLOAD_TITLES.get(workload, workload)} requests, "
                    f"{concurrency} concurrent clients")
    handles = [Line2D([], [], color=colour, linewidth=6) for *_, colour in PHASES]
    figure.legend(handles, [label for _, _, label, _ in PHASES], loc="outside lower center",
                  ncols=len(PHASES))
    return figure


def _draw_timeline(ax: Any, rows: list) -> None:
    positions = list(range(len(rows)))
    for start, end, label, colour in PHASES:
        timed = [(y, r) for y, r in enumerate(rows) if r[start] is not None
                 and r[end] is not None]
        ax.barh([y for y, _ in timed], [r[end] - r[start] for _, r in timed],
                left=[r[start] for _, r in timed], height=0.8, color=colour, label=label)
    failed = [(y, r) for y, r in enumerate(rows) if r["error"] is not None]
    if failed:
        ax.plot([r["received"] for _, r in failed], [y for y, _ in failed], "x",
                color=OKABE_ITO["vermillion"], label="failed")
    if len(rows) <= MAX_LABELLED_ROWS:
        ax.set_yticks(positions, worker_labels(rows), fontsize=6)
        ax.set_ylabel("worker of each request")
    else:
        ax.set_yticks([])
        ax.set_ylabel("requests, in order sent")
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first request at the top
    ax.grid(axis="x", alpha=0.3)


#: The files save_figures() writes, and what draws each.
FIGURES = {
    "latency_vs_concurrency": lambda results: plot_latency_vs_concurrency(results.summary),
    "throughput_vs_concurrency": lambda results: plot_latency_vs_concurrency(
        results.summary, metric="rps"),
    "latency_cdf": lambda results: plot_latency_cdf(results.requests),
    "timeline": lambda results: plot_timeline(
        results.requests, workload=_timeline_workload(results.requests)),
}


def _timeline_workload(requests: list) -> str:
    """The workload that shows queueing best: io if it was measured."""
    measured = _workload_order(r["workload"] for r in requests)
    return "io" if "io" in measured else measured[0]


def save_figures(results: Any, out_dir: str | Path, dpi: int = DPI) -> dict:
    """Draw every figure in FIGURES from *results* (a LabResults); save each as PNG.

    Returns ``{name: path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, draw in FIGURES.items():
        path = out / f"{name}.png"
        draw(results).savefig(path, dpi=dpi)
        paths[name] = path
    return paths
