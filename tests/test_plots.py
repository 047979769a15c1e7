"""The latency lab's figures (sockserver_lib.plots), checked by their parts, not their pixels.

The records are made up here, in the shape sockserver_lib.bench produces,
so these tests need no server and run in a fraction of a second each.
"""

import math
import struct

import matplotlib

matplotlib.use("Agg")  # never open a window

import pytest  # noqa: E402

from sockserver_lib import plots  # noqa: E402
from sockserver_lib.bench import LabResults  # noqa: E402

SERVERS = ("sync", "threading", "forking")
WORKLOADS = ("none", "io")
LEVELS = (1, 4, 8)


def p50_of(server, workload, concurrency):
    """A made-up median that differs for every cell, so lines can be told apart."""
    return 1.0 + SERVERS.index(server) * 10 + WORKLOADS.index(workload) * 100 + concurrency


def summary_records():
    return [
        {"server": s, "workload": w, "connection": "per-request", "concurrency": c,
         "repeats": 1, "requests": 4, "p50_ms": p50_of(s, w, c), "p90_ms": 0.0, "p99_ms": 0.0,
         "mean_ms": 0.0, "rps": 1000.0 / p50_of(s, w, c), "errors": 0}
        for s in SERVERS for w in WORKLOADS for c in LEVELS
    ]


def request_record(server, workload, concurrency, number, worker, error=None):
    """Request *number*: sent at number ms, then 1 ms per phase, received 0.5 ms later."""
    sent = float(number)
    times = {"sent": sent, "accepted": sent + 1, "started": sent + 2, "finished": sent + 3,
             "received": sent + 3.5}
    if error:
        times.update(accepted=None, started=None, finished=None)
    return {"server": server, "workload": workload, "connection": "per-request",
            "concurrency": concurrency, "repetition": 0, "client": number % concurrency,
            "slow": False, "worker": None if error else worker, "error": error, **times,
            "latency_ms": times["received"] - sent}


def request_records():
    workers = {
        "sync": lambda n: "100:MainThread",
        "threading": lambda n: f"200:Thread-{n + 1}",
        "forking": lambda n: f"{300 + n}:MainThread",
    }
    return [
        request_record(s, w, c, n, workers[s](n))
        for s in SERVERS for w in WORKLOADS for c in LEVELS for n in range(4)
    ]


def visible_axes(figure):
    return [ax for ax in figure.axes if ax.get_visible()]


def legend_texts(figure):
    (legend,) = figure.legends
    return [text.get_text() for text in legend.get_texts()]


# --- latency against concurrency ---------------------------------------------------------


def test_latency_vs_concurrency_has_a_panel_per_workload_and_a_line_per_server():
    figure = plots.plot_latency_vs_concurrency(summary_records())
    axes = visible_axes(figure)
    assert [ax.get_title() for ax in axes] == [plots.WORKLOAD_TITLES[w] for w in WORKLOADS]
    for ax, workload in zip(axes, WORKLOADS, strict=True):
        assert [line.get_label() for line in ax.get_lines()] == list(SERVERS)
        for line, server in zip(ax.get_lines(), SERVERS, strict=True):
            assert list(line.get_xdata()) == list(LEVELS)
            assert list(line.get_ydata()) == [p50_of(server, workload, c) for c in LEVELS]
        assert ax.get_xlabel() == "concurrent clients"
        assert ax.get_ylabel() == "median latency (ms)"
    assert legend_texts(figure) == list(SERVERS)
    assert "lower is better" in figure.get_suptitle()


def test_throughput_is_the_same_figure_with_another_metric():
    figure = plots.plot_latency_vs_concurrency(summary_records(), metric="rps")
    ax = visible_axes(figure)[0]
    assert ax.get_ylabel() == "throughput (requests/s)"
    assert ax.get_lines()[0].get_ydata()[0] == pytest.approx(1000.0 / p50_of("sync", "none", 1))
    assert "higher is better" in figure.get_suptitle()


def test_a_missing_value_is_drawn_as_a_gap_not_an_error():
    records = summary_records()
    records[0]["p50_ms"] = None  # what results.json holds when every request failed
    figure = plots.plot_latency_vs_concurrency(records)
    assert math.isnan(visible_axes(figure)[0].get_lines()[0].get_ydata()[0])


def test_each_server_keeps_its_colour_and_marker_in_every_figure():
    alone = plots.plot_latency_vs_concurrency(
        [r for r in summary_records() if r["server"] == "forking"])
    together = plots.plot_latency_vs_concurrency(summary_records())
    (forking_alone,) = visible_axes(alone)[0].get_lines()
    forking_together = visible_axes(together)[0].get_lines()[2]
    assert forking_alone.get_color() == forking_together.get_color()
    assert forking_alone.get_marker() == forking_together.get_marker()


def test_the_palette_is_okabe_ito_and_tells_servers_apart():
    styles = [plots.server_style(s) for s in [*SERVERS, "threadpool", "someone-elses"]]
    colours = [style["color"] for style in styles]
    assert set(colours) <= set(plots.OKABE_ITO.values())
    assert len(set(colours)) == len(colours)
    assert len({style["marker"] for style in styles}) == len(styles)


# --- the distribution at one concurrency -------------------------------------------------


def test_the_cdf_has_a_step_line_per_server_rising_to_one():
    figure = plots.plot_latency_cdf(request_records(), concurrency=4)
    axes = visible_axes(figure)
    assert len(axes) == len(WORKLOADS)
    for ax in axes:
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == list(SERVERS)
        for line in lines:
            assert list(line.get_xdata()) == [3.5] * 4  # every made-up request took 3.5 ms
            assert list(line.get_ydata()) == [0.25, 0.5, 0.75, 1.0]
        assert ax.get_xlabel() == "latency (ms)"
        assert ax.get_ylabel() == "fraction of requests"
    assert "4 concurrent clients" in figure.get_suptitle()
    assert legend_texts(figure) == list(SERVERS)


def test_the_cdf_shows_the_highest_concurrency_by_default_and_skips_failures():
    records = request_records()
    records.append(request_record("sync", "io", 8, 9, None, error="ConnectionResetError: x"))
    figure = plots.plot_latency_cdf(records)
    assert "8 concurrent clients" in figure.get_suptitle()
    sync_io = visible_axes(figure)[1].get_lines()[0]
    assert len(sync_io.get_xdata()) == 4


def test_the_cdf_says_when_there_is_nothing_to_draw():
    with pytest.raises(ValueError, match="concurrency 3"):
        plots.plot_latency_cdf(request_records(), concurrency=3)


# --- the timeline -------------------------------------------------------------------------


def test_the_timeline_has_a_panel_per_server_and_a_bar_per_phase_of_each_request():
    figure = plots.plot_timeline(request_records(), workload="io", concurrency=4)
    axes = visible_axes(figure)
    assert len(axes) == len(SERVERS)
    for ax in axes:
        bars = ax.patches
        assert len(bars) == 4 * len(plots.PHASES)
        assert {bar.get_width() for bar in bars} == {1.0}  # each made-up phase lasts 1 ms
        assert sorted({bar.get_x() for bar in bars}) == [0, 1, 2, 3, 4, 5]
    assert [ax.get_title(loc="left") for ax in axes] == [
        "sync: 4 requests handled by 1 worker",
        "threading: 4 requests handled by 4 workers",
        "forking: 4 requests handled by 4 workers",
    ]
    assert axes[-1].get_xlabel() == "time since the measurement started (ms)"
    assert legend_texts(figure) == [label for _, _, label, _ in plots.PHASES]


def test_timeline_rows_are_labelled_with_their_worker():
    figure = plots.plot_timeline(request_records(), workload="none", concurrency=1)
    sync, threading, forking = visible_axes(figure)
    assert [t.get_text() for t in sync.get_yticklabels()] == ["MainThread"] * 4
    assert [t.get_text() for t in threading.get_yticklabels()] == [
        "Thread-1", "Thread-2", "Thread-3", "Thread-4"]
    assert [t.get_text() for t in forking.get_yticklabels()] == [
        "pid 300", "pid 301", "pid 302", "pid 303"]


def test_a_failed_request_is_marked_on_the_timeline():
    records = [request_record("sync", "io", 2, n, "100:MainThread") for n in range(2)]
    records.append(request_record("sync", "io", 2, 2, None, error="TimeoutError: timed out"))
    (ax,) = visible_axes(plots.plot_timeline(records, workload="io", concurrency=2))
    assert len(ax.patches) == 2 * len(plots.PHASES)  # the failed one has no server phases
    (cross,) = ax.get_lines()
    assert cross.get_label() == "failed" and list(cross.get_xdata()) == [5.5]


def test_worker_labels_use_threads_in_one_process_and_pids_across_processes():
    one_process = [{"worker": "7:MainThread"}, {"worker": "7:Thread-2"}, {"worker": None}]
    assert plots.worker_labels(one_process) == ["MainThread", "Thread-2", "(failed)"]
    processes = [{"worker": "7:MainThread"}, {"worker": "8:Thread-1"}]
    assert plots.worker_labels(processes) == ["pid 7", "pid 8 Thread-1"]


def test_the_timeline_says_when_there_is_nothing_to_draw():
    with pytest.raises(ValueError, match="'cpu'"):
        plots.plot_timeline(request_records(), workload="cpu", concurrency=4)


# --- saving --------------------------------------------------------------------------------


def png_size(path):
    """(width, height) in pixels, from the PNG header."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_save_figures_writes_every_figure_as_a_modest_png(tmp_path):
    results = LabResults(machine={}, settings={}, summary=summary_records(), measurements=[],
                         requests=request_records())
    paths = plots.save_figures(results, tmp_path / "figures")
    assert set(paths) == set(plots.FIGURES)
    for path in paths.values():
        assert path.read_bytes().startswith(b"\x89PNG")
        width, height = png_size(path)
        assert 300 < width <= 1200 and 200 < height <= 1600
