"""The latency lab's figures: the only module of the kit that imports matplotlib.

Each function takes the tidy records of sockserver_lib.bench (a
LabResults' ``summary`` or ``requests``, or the same lists read back from
results.json) and returns a matplotlib Figure, without pyplot, so nothing
is drawn on a screen unless you show it (a notebook shows a Figure that
ends a cell).  Colours come from the Okabe-Ito palette, which readers with
any kind of colour blindness can tell apart; lines also differ by marker.

Records saved by older versions of the lab are drawn too: summary rows
without the spread over repetitions (``p50_ms_low``...) as plain lines,
rows without ``work_ms`` as one level of work, requests with ``slow``
instead of ``special`` as special.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .bench import SERVER_KINDS, WORKLOADS, break_even
from .bench._stats import is_number
from .bench._verdicts import MINIMUM_NOISE

#: Okabe & Ito's colour-blind-safe palette.
OKABE_ITO = {
    "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
    "reddish purple": "#CC79A7", "black": "#000000",
}
#: Colours of server kinds, in order (yellow comes last: it is pale on white).
SERVER_COLOURS = tuple(OKABE_ITO[name] for name in (
    "vermillion", "blue", "bluish green", "reddish purple", "orange", "sky blue", "black",
    "yellow"))
SERVER_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: The phases of a request on a timeline: (from, to, what it means, colour).
PHASES = (
    ("sent", "accepted", "waiting to be accepted", "#BBBBBB"),
    ("accepted", "started", "accepted, handler not yet running", OKABE_ITO["orange"]),
    ("started", "finished", "handler running", OKABE_ITO["blue"]),
)
#: The title of a workload's panels.
WORKLOAD_TITLES = {
    "none": "no work (pure overhead)",
    "io": "I/O-bound handler (waits)",
    "cpu": "CPU-bound handler (computes)",
    "slow-sender": "one client slow to send, among fast ones",
    "slow-reader": "one client slow to read a large reply",
    "mixed": "waiting clients beside computing ones",
    "slow-client": "one slow client among fast ones",  # results saved before "slow-sender"
}
#: The title of a workload's panel for one level of work: "CPU-bound handler (5 ms)".
WORK_TITLES = {"none": "no work", "io": "I/O-bound handler", "cpu": "CPU-bound handler"}
#: Whose latency the latency figures show, for the workloads where it is not everybody's.
WHOSE_LATENCY = {
    "slow-sender": "fast clients' latency",
    "slow-reader": "fast clients' latency",
    "mixed": "the waiters' latency",
}
#: How a timeline names the rows of special clients, and their legend entry.
SPECIAL_ROLES = {
    "slow-sender": ("slow client", "the slow client's requests"),
    "slow-reader": ("slow client", "the slow client's requests"),
    "slow-client": ("slow client", "the slow client's requests"),
    "mixed": ("computing", "the computing clients' requests"),
}
DEFAULT_ROLE = ("special", "the special clients' requests")
#: How a special client's bars differ on a timeline: outlined and hatched.
SPECIAL_BAR = {"hatch": "////", "edgecolor": OKABE_ITO["black"], "linewidth": 0.8}
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
#: A caption under a figure is wrapped at this many characters a line.
CAPTION_WIDTH = 110


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


def is_special(request: dict) -> bool:
    """True for a special client's request (the slow one, or a computing one).

    Reads ``special``, or ``slow`` in results saved before it; a record
    with neither is an ordinary client's.
    """
    return bool(request.get("special", request.get("slow", False)))


def panel_keys(records: list) -> list:
    """The panels of a figure, as (workload, work_ms) pairs in WORKLOADS order.

    A workload measured at one level of work gets one panel,
    ``(workload, None)``; one measured at several (a cpu sweep) gets a
    panel per level, smallest first.
    """
    levels: dict = {}
    for record in records:
        levels.setdefault(record["workload"], set()).add(record.get("work_ms"))
    keys = []
    for workload in _workload_order(levels):
        found = sorted(level for level in levels[workload] if is_number(level))
        if len(found) < 2:
            keys.append((workload, None))
        else:
            keys.extend((workload, level) for level in found)
    return keys


def _in_panel(records: list, workload: str, work_ms: float | None) -> list:
    """The records of the panel (workload, work_ms); None means every level."""
    return [r for r in records if r["workload"] == workload
            and (work_ms is None or r.get("work_ms") == work_ms)]


def panel_title(workload: str, work_ms: float | None = None, whose: bool = False) -> str:
    """The title of a panel of *workload*.

    With *work_ms* (one level of a sweep) the title names the work:
    "CPU-bound handler (5 ms)".  With *whose*, a second line says whose
    latency the panel shows when it is not everybody's: "(the waiters'
    latency)" for the workloads with special clients.
    """
    if work_ms is None:
        title = WORKLOAD_TITLES.get(workload, workload)
    else:
        title = f"{WORK_TITLES.get(workload, workload)} ({work_ms:g} ms)"
    if whose and workload in WHOSE_LATENCY:
        title += f"\n({WHOSE_LATENCY[workload]})"
    return title


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


def _ms(value: float) -> str:
    """A time in ms with sensible digits: 0.15, 4.6, 22, 170."""
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _caption(figure: Figure, text: str) -> None:
    """*text* under the panels, in small print, wrapped to fit."""
    figure.supxlabel(textwrap.fill(text, CAPTION_WIDTH), fontsize="small")


def _legend(figure: Figure, servers: list) -> None:
    handles = [Line2D([], [], linewidth=2, **server_style(s)) for s in servers]
    figure.legend(handles, servers, title="server", loc="outside right upper")


# --- the spread over repetitions ---------------------------------------------------------


def spread(row: dict, metric: str) -> tuple | None:
    """(lowest, median, highest) of *metric* over the row's repetitions; None if not recorded."""
    values = (row.get(f"{metric}_low"), row.get(metric), row.get(f"{metric}_high"))
    return values if all(is_number(v) for v in values) else None


def spread_caption(rows: list, metric: str) -> str | None:
    """The caption of a figure whose *rows* show *metric*'s spread; None if none has one."""
    repeats = sorted({r.get("repeats") for r in rows
                      if spread(r, metric) and is_number(r.get("repeats"))})
    if not repeats:
        return None
    count = f"{repeats[0]}" if len(repeats) == 1 else f"{repeats[0]} to {repeats[-1]}"
    plural = "s" if repeats[-1] != 1 else ""
    return (f"Lines join the medians over {count} repetition{plural}; "
            "bars span the lowest to the highest repetition.")


def _draw_line_with_spread(ax: Any, xs: list, rows: list, metric: str, server: str) -> None:
    """*server*'s line of *metric* over *xs*, with error bars from the rows' spread where known."""
    style = server_style(server)
    ax.plot(xs, [_number(r[metric]) for r in rows], linewidth=2, label=server, **style)
    known = [(x, found) for x, r in zip(xs, rows, strict=True)
             if (found := spread(r, metric))]
    if not known:
        return
    middles = [middle for _, (_, middle, _) in known]
    below = [max(0.0, middle - low) for _, (low, middle, _) in known]
    above = [max(0.0, high - middle) for _, (_, middle, high) in known]
    ax.errorbar([x for x, _ in known], middles, yerr=[below, above], fmt="none",
                ecolor=style["color"], elinewidth=1.3, capsize=3, alpha=0.85)


# --- latency against concurrency ---------------------------------------------------------


def plot_latency_vs_concurrency(summary: list, metric: str = "p50_ms") -> Figure:
    """*metric* against concurrent clients: a panel per workload, a line per server.

    A workload measured at several levels of work (a cpu sweep) gets a
    panel per level, titled with the work ("CPU-bound handler (5 ms)").
    Lines join the medians over repetitions; where a row has
    ``<metric>_low`` and ``<metric>_high``, an error bar spans them and a
    caption under the panels says so.  Rows without them (older results)
    are drawn as plain lines.  In the workloads with special clients the
    latency is the ordinary clients' (the panel title says whose);
    throughput counts every request.
    """
    panels = panel_keys(summary)
    servers = server_order(r["server"] for r in summary)
    label = METRIC_LABELS.get(metric, metric)
    levels = sorted({r["concurrency"] for r in summary})
    figure, axes = _panels(len(panels))
    for ax, (workload, work) in zip(axes, panels, strict=True):
        cell = _in_panel(summary, workload, work)
        for server in servers:
            rows = sorted((r for r in cell if r["server"] == server),
                          key=lambda r: r["concurrency"])
            _draw_line_with_spread(ax, [r["concurrency"] for r in rows], rows, metric, server)
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.set_xticks([], minor=True)
        ax.set_ylim(bottom=0)
        ax.set_title(panel_title(workload, work, whose=metric != "rps"))
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    better = "higher" if metric == "rps" else "lower"
    figure.suptitle(f"{label[0].upper()}{label[1:]} as clients are added ({better} is better)")
    caption = spread_caption(summary, metric)
    if caption:
        _caption(figure, caption)
    _legend(figure, servers)
    return figure


# --- break-even: throughput against the work per request -----------------------------------


def _cpu_rows(summary: list, server: str, concurrency: int | None = None) -> list:
    """*server*'s cpu rows (at *concurrency*, if given) that can go on a log axis, by work."""
    rows = [r for r in summary if r["server"] == server and r["workload"] == "cpu"
            and (concurrency is None or r["concurrency"] == concurrency)
            and is_number(r.get("work_ms")) and r["work_ms"] > 0
            and is_number(r.get("rps")) and r["rps"] > 0]
    return sorted(rows, key=lambda r: r["work_ms"])


def _break_even_concurrency(summary: list, servers: tuple, concurrency: int | None) -> int:
    """*concurrency*, or the highest at which every server has cpu rows; ValueError if none."""
    found = {server: {r["concurrency"] for r in _cpu_rows(summary, server)} for server in servers}
    missing = [server for server, levels in found.items() if not levels]
    if missing:
        raise ValueError(
            f"no cpu rows for {', '.join(missing)}: a break-even needs the cpu workload of "
            f"{', '.join(servers)}, at several levels of work (Settings.cpu_sweep_ms)")
    if concurrency is not None:
        for server, levels in found.items():
            if concurrency not in levels:
                raise ValueError(f"no cpu rows for {server} at {concurrency} clients; it was "
                                 f"measured at {', '.join(map(str, sorted(levels)))} clients")
        return concurrency
    common = set.intersection(*found.values())
    if not common:
        raise ValueError(f"{', '.join(servers)} have cpu rows, but at no concurrency in common")
    return max(common)


def _draw_ratio(ax: Any, server: str, levels: tuple) -> bool:
    """*server*'s ratio to the baseline at each level (break_even()'s levels).

    A hollow marker is a level where the difference was within the noise;
    returns True if there was one.
    """
    points = [(work, ratio, clear) for work, ratio, clear in levels
              if work > 0 and is_number(ratio)]
    style = server_style(server)
    ax.plot([w for w, _, _ in points], [r for _, r, _ in points], linewidth=2, label=server,
            **style)
    unclear = [(w, r) for w, r, clear in points if not clear]
    if unclear:
        ax.plot([w for w, _ in unclear], [r for _, r in unclear], linestyle="none",
                marker=style["marker"], markerfacecolor="white", markeredgecolor=style["color"],
                label="_within noise")
    return bool(unclear)


def _mark_work(axes: list, work_ms: float, label: str, **line: Any) -> None:
    """A vertical line at *work_ms* on every panel; *label* on the first only (the legend)."""
    for index, ax in enumerate(axes):
        ax.axvline(work_ms, linewidth=1.5, label=label if index == 0 else "_" + label, **line)


def _break_even_caption(summary_rows: list, unclear: bool, crossed: bool) -> str:
    parts = [spread_caption(summary_rows, "rps") or "Lines join the medians over repetitions."]
    if crossed:
        parts.append("Dashed: where the throughputs cross (interpolated).")
    if unclear:
        parts.append("Hollow markers: a difference within the run's noise.")
    return " ".join(parts)


def plot_break_even(summary: list, servers: tuple = ("threading", "forking"),
                    concurrency: int | None = None, model_ms: float | None = None,
                    noise: float = MINIMUM_NOISE) -> Figure:
    """Throughput against the work per request (the cpu rows): where one server overtakes another.

    Left: requests per second against the ms of computing each request
    asks for (``work_ms``, log scale), a line per server in *servers*, at
    one *concurrency* (default: the highest at which every one of them has
    cpu rows); error bars span the lowest to the highest repetition.  A
    dashed vertical line marks, for each server after the first, the work
    at which it overtakes the first: bench.break_even(summary, servers[0],
    other, concurrency).work_ms, when they cross in the range measured.
    With *model_ms* (from bench.break_even_model()), a dotted line marks
    the model's prediction (none if infinite: one core).

    Right: each other server's throughput divided by the first's, the
    ratios break_even() judged; above the line at 1 the other server
    serves more.  A hollow marker is a difference within the noise (*noise*,
    relative: pass the run's noise floor, as to bench.break_even()).

    Levels of 0 ms cannot go on a log axis and are left out.  ValueError if
    a server has no cpu rows, or none at *concurrency*.
    """
    servers = tuple(servers)
    if len(servers) < 2:
        raise ValueError("name at least two servers: the first is the one the others are "
                         "compared with")
    concurrency = _break_even_concurrency(summary, servers, concurrency)
    base = servers[0]
    figure, axes = _panels(2, width=5.4, height=3.4)  # wide: the legend takes a column
    rps_ax, ratio_ax = axes
    drawn = []
    for server in servers:
        rows = _cpu_rows(summary, server, concurrency)
        drawn.extend(rows)
        _draw_line_with_spread(rps_ax, [r["work_ms"] for r in rows], rows, "rps", server)
    unclear, crossed = _draw_comparisons(axes, summary, servers, concurrency, noise)
    _draw_model(axes, model_ms)
    ratio_ax.axhline(1, color=OKABE_ITO["black"], linewidth=1, zorder=1)
    _style_break_even_axes(rps_ax, ratio_ax, drawn, base)
    rps_ax.set_title("throughput (higher is better)")
    ratio_ax.set_title(f"throughput relative to {base}'s")
    figure.suptitle(f"Throughput as each request computes more, {concurrency} concurrent clients",
                    x=0.02, ha="left")  # left: clear of the legend
    _caption(figure, _break_even_caption(drawn, unclear, crossed))
    handles, labels = rps_ax.get_legend_handles_labels()
    if unclear:
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="white",
                              markeredgecolor="#555555"))
        labels.append("within the noise")
    figure.legend(handles, labels, loc="outside right upper")
    return figure


def _draw_comparisons(axes: list, summary: list, servers: tuple, concurrency: int,
                      noise: float) -> tuple:
    """Each other server's ratio to the first, and a dashed line where it overtakes it.

    Returns (any difference within the noise, any crossing drawn).
    """
    base = servers[0]
    unclear, crossed = False, False
    for other in servers[1:]:
        found = break_even(summary, base, other, concurrency, noise)
        unclear |= _draw_ratio(axes[1], other, found.levels)
        if found.work_ms is not None:
            crossed = True
            _mark_work(axes, found.work_ms,
                       f"{other} overtakes {base} at ~{_ms(found.work_ms)} ms",
                       color=server_style(other)["color"], linestyle="--")
    return unclear, crossed


def _draw_model(axes: list, model_ms: float | None) -> None:
    """A dotted line at the model's break-even; only a legend entry if it is 0 or infinite."""
    if model_ms is None:
        return
    if math.isfinite(model_ms) and model_ms > 0:
        _mark_work(axes, model_ms, f"model: ~{_ms(model_ms)} ms", color=OKABE_ITO["black"],
                   linestyle=":")
    else:  # a log axis has no place for 0 or infinity: a legend entry says it
        label = "model: never (one core)" if math.isinf(model_ms) else "model: at no work at all"
        axes[0].plot([], [], color=OKABE_ITO["black"], linestyle=":", label=label)


def _style_break_even_axes(rps_ax: Any, ratio_ax: Any, rows: list, base: str) -> None:
    levels = sorted({r["work_ms"] for r in rows})
    for ax in (rps_ax, ratio_ax):
        ax.set_xscale("log")
        ax.set_xticks(levels, [f"{level:g}" for level in levels])
        ax.set_xticks([], minor=True)
        ax.set_xlabel("computing per request (ms, log scale)")
        ax.grid(alpha=0.3)
    rps_ax.set_ylim(bottom=0)
    rps_ax.set_ylabel(METRIC_LABELS["rps"])
    ratio_ax.set_ylabel(f"req/s divided by {base}'s\n(above 1: more than {base})")


# --- the distribution at one concurrency -------------------------------------------------


def default_concurrency(requests: list) -> int:
    """The concurrency a one-level figure shows by default: the highest measured."""
    return max(r["concurrency"] for r in requests)


def plot_latency_cdf(requests: list, concurrency: int | None = None) -> Figure:
    """One panel per workload: the distribution (CDF) of latencies at one concurrency.

    A point (x, y) on a server's line: a fraction y of the successful
    requests were answered within x ms.  Further left is faster; a line
    that rises late and steeply means everyone waited about as long.  In
    the workloads with special clients it is the ordinary clients'
    requests (the panel title says whose); a workload measured at several
    levels of work gets a panel per level.
    """
    concurrency = default_concurrency(requests) if concurrency is None else concurrency
    done = [r for r in requests if r["concurrency"] == concurrency and r["error"] is None]
    chosen = [r for r in done if not is_special(r)]
    if not chosen:
        raise ValueError(f"no successful requests at concurrency {concurrency}")
    with_special = {r["workload"] for r in done if is_special(r)}
    panels = panel_keys(chosen)
    servers = server_order(r["server"] for r in chosen)
    figure, axes = _panels(len(panels))
    for ax, (workload, work) in zip(axes, panels, strict=True):
        cell = _in_panel(chosen, workload, work)
        for server in servers:
            latencies = sorted(r["latency_ms"] for r in cell if r["server"] == server)
            fractions = [(index + 1) / len(latencies) for index in range(len(latencies))]
            ax.step(latencies, fractions, where="post", linewidth=2, label=server,
                    color=server_style(server)["color"])
        title = panel_title(workload, work, whose=True)
        if workload in with_special and workload not in WHOSE_LATENCY:  # e.g. old "slow-client"
            title += "\n(ordinary clients' latency)"
        ax.set_title(title)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of requests")
        ax.set_xlim(left=0)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    figure.suptitle(f"How latency is distributed with {concurrency} concurrent clients")
    _legend(figure, servers)
    return figure


# --- the timeline -------------------------------------------------------------------------


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


def _one_level(requests: list, work_ms: float | None) -> tuple:
    """The requests of one level of work, and that level (None if only one was measured).

    Without *work_ms*, the highest level measured; ValueError if *work_ms*
    was not measured.
    """
    levels = sorted({r.get("work_ms") for r in requests if is_number(r.get("work_ms"))})
    if work_ms is None:
        if len(levels) < 2:
            return requests, None
        work_ms = levels[-1]
    chosen = [r for r in requests if r.get("work_ms") == work_ms]
    if not chosen:
        raise ValueError(f"no requests with work_ms {work_ms:g}; measured: "
                         f"{', '.join(f'{level:g}' for level in levels) or 'none'}")
    return chosen, work_ms


def plot_timeline(requests: list, workload: str = "io", concurrency: int | None = None,
                  repetition: int = 0, work_ms: float | None = None) -> Figure:
    """One panel per server: a Gantt chart of one measurement's requests.

    Each row is a request, in the order the clients sent them, labelled
    with the worker (thread or process) that handled it.  Its bar shows
    when it waited to be accepted, when it was accepted but its handler
    had not started yet (starting a thread or forking a process), and when
    the handler ran.  Time is in ms since the measurement started.

    A special client's requests (``special``, or ``slow`` in older
    results) are hatched and outlined, their rows labelled "(slow client)"
    or "(computing)", with a legend entry.  *work_ms* picks one level of a
    cpu sweep (default: the highest measured).
    """
    concurrency = default_concurrency(requests) if concurrency is None else concurrency
    chosen = [r for r in requests if (r["workload"], r["concurrency"], r["repetition"])
              == (workload, concurrency, repetition)]
    if not chosen:
        raise ValueError(f"no requests for workload {workload!r} at concurrency {concurrency}")
    chosen, work = _one_level(chosen, work_ms)
    role, legend_label = SPECIAL_ROLES.get(workload, DEFAULT_ROLE)
    servers = server_order(r["server"] for r in chosen)
    most_rows = max(sum(r["server"] == s for r in chosen) for s in servers)
    figure, axes = _panels(len(servers), width=7.5, height=max(1.6, 0.085 * most_rows + 0.8),
                           columns=1)
    for ax in axes[1:]:
        ax.sharex(axes[0])
    for ax, server in zip(axes, servers, strict=True):
        rows = sorted((r for r in chosen if r["server"] == server), key=lambda r: r["sent"])
        _draw_timeline(ax, rows, role)
        workers = len({r["worker"] for r in rows if r["worker"]})
        ax.set_title(f"{server}: {len(rows)} requests handled by "
                     f"{workers} worker{'s' if workers != 1 else ''}", loc="left")
    axes[0].set_xlim(left=0)
    axes[-1].set_xlabel("time since the measurement started (ms)")
    figure.suptitle(f"Timeline: {panel_title(workload, work)}, {concurrency} concurrent clients")
    handles: list = [Line2D([], [], color=colour, linewidth=6) for *_, colour in PHASES]
    labels = [label for _, _, label, _ in PHASES]
    if any(is_special(r) for r in chosen):
        handles.append(Patch(facecolor="white", **SPECIAL_BAR))
        labels.append(legend_label)
    figure.legend(handles, labels, loc="outside lower center",
                  ncols=len(labels) if len(labels) <= 3 else 2)  # four in a row do not fit
    return figure


def _draw_timeline(ax: Any, rows: list, role: str) -> None:
    """The bars of *rows*, one row each; special clients' hatched and labelled *role*."""
    special = [is_special(r) for r in rows]
    for start, end, label, colour in PHASES:
        for marked in (False, True):
            timed = [(y, r) for y, r in enumerate(rows) if special[y] is marked
                     and r[start] is not None and r[end] is not None]
            if timed:
                ax.barh([y for y, _ in timed], [r[end] - r[start] for _, r in timed],
                        left=[r[start] for _, r in timed], height=0.8, color=colour,
                        label=label, **(SPECIAL_BAR if marked else {}))
    failed = [(y, r) for y, r in enumerate(rows) if r["error"] is not None]
    if failed:
        ax.plot([r["received"] for _, r in failed], [y for y, _ in failed], "x",
                color=OKABE_ITO["vermillion"], label="failed")
    _label_rows(ax, rows, special, role)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first request at the top
    ax.grid(axis="x", alpha=0.3)


def _label_rows(ax: Any, rows: list, special: list, role: str) -> None:
    """Each row's worker, up to MAX_LABELLED_ROWS rows; beyond, only the special rows' *role*."""
    if len(rows) <= MAX_LABELLED_ROWS:
        shown = list(range(len(rows)))
        names = [f"{name} ({role})" if marked else name
                 for name, marked in zip(worker_labels(rows), special, strict=True)]
        ax.set_ylabel("worker of each request")
    else:
        shown = [y for y, marked in enumerate(special) if marked]
        names = [f"({role})"] * len(shown)
        ax.set_ylabel("requests, in order sent")
    ax.set_yticks(shown, names, fontsize=6)
    for y, text in zip(shown, ax.get_yticklabels(), strict=True):
        if special[y]:
            text.set_fontweight("bold")


# --- saving --------------------------------------------------------------------------------


def break_even_servers(summary: list) -> tuple | None:
    """The servers break_even.png compares, or None if the results cannot show a break-even.

    A server counts if its cpu rows hold 2 or more levels of work (a
    sweep).  Threading and forking, if both do; else every server that
    does, in registry order; None if fewer than two do.
    """
    swept = [server for server in server_order(r["server"] for r in summary)
             if len({r["work_ms"] for r in _cpu_rows(summary, server)}) >= 2]
    if {"threading", "forking"} <= set(swept):
        return ("threading", "forking")
    return tuple(swept) if len(swept) >= 2 else None


#: The files save_figures() writes, and what draws each.
FIGURES = {
    "latency_vs_concurrency": lambda results: plot_latency_vs_concurrency(results.summary),
    "throughput_vs_concurrency": lambda results: plot_latency_vs_concurrency(
        results.summary, metric="rps"),
    "latency_cdf": lambda results: plot_latency_cdf(results.requests),
    "timeline": lambda results: plot_timeline(
        results.requests, workload=_timeline_workload(results.requests)),
}
#: The files save_figures() writes only when the results can show them:
#: name -> (whether they can, what draws it).
SWEEP_FIGURES = {
    "break_even": (
        lambda results: break_even_servers(results.summary) is not None,
        lambda results: plot_break_even(results.summary,
                                        servers=break_even_servers(results.summary)),
    ),
}


def _timeline_workload(requests: list) -> str:
    """The workload that shows queueing best: io if it was measured."""
    measured = _workload_order(r["workload"] for r in requests)
    return "io" if "io" in measured else measured[0]


def save_figures(results: Any, out_dir: str | Path, dpi: int = DPI) -> dict:
    """Draw every figure in FIGURES from *results* (a LabResults); save each as PNG.

    Also those in SWEEP_FIGURES the results can show: break_even.png when
    the cpu workload was measured at 2 or more levels of work for 2 or
    more servers.  Returns ``{name: path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = dict(FIGURES)
    chosen.update({name: draw for name, (can, draw) in SWEEP_FIGURES.items() if can(results)})
    paths = {}
    for name, draw in chosen.items():
        path = out / f"{name}.png"
        draw(results).savefig(path, dpi=dpi)
        paths[name] = path
    return paths
