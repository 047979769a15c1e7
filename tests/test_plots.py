"""The latency lab's figures (sockserver_lib.plots), checked by their parts, not their pixels.

The records are made up here, in the shape sockserver_lib.bench produces,
so these tests need no server and run in a fraction of a second each.
"""

import math
import struct

import matplotlib

matplotlib.use("Agg")  # never open a window

import pytest  # noqa: E402

from sockserver_lib import bench, plots  # noqa: E402
from sockserver_lib.bench import LabResults  # noqa: E402

SERVERS = ("sync", "threading", "forking")
WORKLOADS = ("none", "io")
LEVELS = (1, 4, 8)
WORK = {"none": 0.0, "io": 20.0}
#: The columns results.json held before the spread over repetitions and work_ms.
OLD_COLUMNS = ("server", "workload", "connection", "concurrency", "repeats", "requests",
               "p50_ms", "p90_ms", "p99_ms", "mean_ms", "rps", "errors")


def p50_of(server, workload, concurrency):
    """A made-up median that differs for every cell, so lines can be told apart."""
    return 1.0 + SERVERS.index(server) * 10 + WORKLOADS.index(workload) * 100 + concurrency


def summary_row(server, workload, concurrency, p50, rps, work_ms=0.0, spread=False):
    """A summary record as summarise() makes it.

    With *spread*, the lowest and highest over 3 repetitions are 10% below
    and 20% above the median; without, they are missing (NaN), as when a
    row comes from a results file saved before spreads were recorded.
    """
    row = {"server": server, "workload": workload, "connection": "per-request",
           "concurrency": concurrency, "work_ms": work_ms, "repeats": 3 if spread else 1,
           "requests": 4, "service_ms": work_ms, "special_p50_ms": math.nan, "errors": 0}
    for name, value in (("p50_ms", p50), ("p90_ms", 0.0), ("p99_ms", 0.0), ("mean_ms", 0.0),
                        ("rps", rps)):
        low, high = (value * 0.9, value * 1.2) if spread else (math.nan, math.nan)
        row.update({name: value, f"{name}_low": low, f"{name}_high": high})
    return row


def summary_records(spread=False):
    return [summary_row(s, w, c, p50_of(s, w, c), 1000.0 / p50_of(s, w, c), WORK[w], spread)
            for s in SERVERS for w in WORKLOADS for c in LEVELS]


def old_summary_records():
    """Rows as results.json held them before spreads and work_ms."""
    return [{key: row[key] for key in OLD_COLUMNS} for row in summary_records()]


#: The made-up cpu sweep: threading computes one request at a time with
#: 0.1 ms of overhead, forking two at a time (2 cores) but pays 3 ms a fork;
#: forking overtakes threading between the 2 and 5 ms levels (at 2.8 ms;
#: break_even() interpolates on log scales between the two).
SWEEP = (1.0, 2.0, 5.0, 10.0, 20.0)


def sweep_rps(server, work_ms):
    return 1000 / (work_ms + 0.1) if server == "threading" else 2000 / (work_ms + 3)


def sweep_records(servers=("threading", "forking"), levels=(2, 8), spread=True):
    """cpu rows at every level of SWEEP, for *servers* at each concurrency in *levels*."""
    return [summary_row(s, "cpu", c, 1000 * c / sweep_rps(s, w), sweep_rps(s, w), w, spread)
            for s in servers for c in levels for w in SWEEP]


def request_record(server, workload, concurrency, number, worker, error=None, special=False,
                   work_ms=None):
    """Request *number*: sent at number ms, then 1 ms per phase, received 0.5 ms later."""
    sent = float(number)
    times = {"sent": sent, "accepted": sent + 1, "started": sent + 2, "finished": sent + 3,
             "received": sent + 3.5}
    if error:
        times.update(accepted=None, started=None, finished=None)
    return {"server": server, "workload": workload, "connection": "per-request",
            "concurrency": concurrency, "repetition": 0, "client": number % concurrency,
            "work_ms": WORK.get(workload, 0.0) if work_ms is None else work_ms,
            "special": special, "worker": None if error else worker, "error": error, **times,
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


def labelled_lines(ax):
    """The lines a reader finds in the legend (error bar caps and the like are not)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def line_labelled(ax, label, prefix=False):
    """The one line on *ax* with *label* (or a label starting with it, if *prefix*)."""
    (line,) = [line for line in ax.get_lines() if line.get_label() == label
               or (prefix and line.get_label().startswith(label))]
    return line


def error_bars(ax):
    """{server: [(x, lowest, highest)...]} of the error bars on *ax*, by the servers' colours."""
    colours = {matplotlib.colors.to_hex(plots.server_style(s)["color"]): s for s in SERVERS}
    found = {}
    for container in ax.containers:
        (bars,) = container.lines[2]
        colour = matplotlib.colors.to_hex(bars.get_colors()[0])
        found[colours[colour]] = [(x, low, high) for (x, low), (_, high) in bars.get_segments()]
    return found


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


def test_the_spread_over_repetitions_is_drawn_as_error_bars_with_a_caption():
    figure = plots.plot_latency_vs_concurrency(summary_records(spread=True))
    for ax, workload in zip(visible_axes(figure), WORKLOADS, strict=True):
        assert [line.get_label() for line in labelled_lines(ax)] == list(SERVERS)
        bars = error_bars(ax)
        assert set(bars) == set(SERVERS)
        for server in SERVERS:
            medians = [p50_of(server, workload, c) for c in LEVELS]
            assert [x for x, _, _ in bars[server]] == list(LEVELS)
            assert [low for _, low, _ in bars[server]] == pytest.approx([m * 0.9 for m in medians])
            assert [high for _, _, high in bars[server]] == pytest.approx(
                [m * 1.2 for m in medians])
    caption = figure.get_supxlabel()
    assert "3 repetitions" in caption and "lowest to the highest" in caption


def test_without_a_spread_the_lines_are_plain_even_from_old_results():
    for records in (summary_records(), old_summary_records()):
        figure = plots.plot_latency_vs_concurrency(records)
        for ax in visible_axes(figure):
            assert not ax.containers  # no error bars
            assert [line.get_label() for line in ax.get_lines()] == list(SERVERS)
        assert figure.get_supxlabel() == ""


def test_a_cpu_sweep_gets_a_panel_per_level_of_work():
    figure = plots.plot_latency_vs_concurrency(summary_records() + sweep_records(levels=(1, 4, 8)))
    titles = [ax.get_title() for ax in visible_axes(figure)]
    assert titles == [plots.WORKLOAD_TITLES["none"], plots.WORKLOAD_TITLES["io"],
                      *(f"CPU-bound handler ({work:g} ms)" for work in SWEEP)]
    five_ms = visible_axes(figure)[titles.index("CPU-bound handler (5 ms)")]
    threading = line_labelled(five_ms, "threading")
    assert list(threading.get_xdata()) == list(LEVELS)
    assert list(threading.get_ydata()) == pytest.approx(
        [1000 * c / sweep_rps("threading", 5.0) for c in LEVELS])


def test_the_new_workloads_say_whose_latency_is_shown():
    records = [summary_row(s, w, c, 1.0, 1000.0) for s in SERVERS
               for w in ("slow-sender", "slow-reader", "mixed") for c in (2, 4)]
    latency = [ax.get_title() for ax in visible_axes(plots.plot_latency_vs_concurrency(records))]
    assert latency == [
        f"{plots.WORKLOAD_TITLES[w]}\n({plots.WHOSE_LATENCY[w]})"
        for w in ("slow-sender", "slow-reader", "mixed")]
    assert "fast clients' latency" in latency[0] and "waiters' latency" in latency[2]
    throughput = plots.plot_latency_vs_concurrency(records, metric="rps")
    # throughput counts every client's requests: no "whose"
    assert [ax.get_title() for ax in visible_axes(throughput)] == [
        plots.WORKLOAD_TITLES[w] for w in ("slow-sender", "slow-reader", "mixed")]


# --- break-even ---------------------------------------------------------------------------


def test_break_even_draws_throughput_against_work_with_the_crossing_it_computed():
    # No spread: each level is judged by the noise floor alone, so forking's lead at 5 ms is
    # clear and the crossing between 2 and 5 ms is interpolated (with overlapping ranges
    # break_even() would only give the range).
    summary = summary_records() + sweep_records(spread=False)
    figure = plots.plot_break_even(summary)
    rps_ax, ratio_ax = visible_axes(figure)
    found = bench.break_even(summary, "threading", "forking", 8)
    assert 2 < found.work_ms < 5
    for ax in (rps_ax, ratio_ax):
        assert ax.get_xscale() == "log"
        crossing = line_labelled(ax, "forking overtakes threading" if ax is rps_ax
                                 else "_forking overtakes threading", prefix=True)
        assert list(crossing.get_xdata()) == [found.work_ms, found.work_ms]
        assert crossing.get_linestyle() == "--"
    assert line_labelled(rps_ax, "forking overtakes", prefix=True).get_label() == (
        f"forking overtakes threading at ~{found.work_ms:.1f} ms")
    for server in ("threading", "forking"):
        line = line_labelled(rps_ax, server)
        assert list(line.get_xdata()) == list(SWEEP)
        assert list(line.get_ydata()) == pytest.approx([sweep_rps(server, w) for w in SWEEP])
    ratio = line_labelled(ratio_ax, "forking")
    assert list(ratio.get_ydata()) == pytest.approx([r for _, r, _ in found.levels])
    assert "8 concurrent clients" in figure.get_suptitle()  # the highest measured
    assert f"forking overtakes threading at ~{found.work_ms:.1f} ms" in legend_texts(figure)


def test_break_even_at_a_chosen_concurrency_with_the_model():
    summary = sweep_records(levels=(2, 8))
    figure = plots.plot_break_even(summary, concurrency=2, model_ms=3.5)
    rps_ax, _ = visible_axes(figure)
    model = line_labelled(rps_ax, "model", prefix=True)
    assert list(model.get_xdata()) == [3.5, 3.5] and model.get_linestyle() == ":"
    assert "2 concurrent clients" in figure.get_suptitle()
    one_core = plots.plot_break_even(summary, model_ms=math.inf)
    assert "model: never (one core)" in legend_texts(one_core)
    no_work = plots.plot_break_even(summary, model_ms=0.0)
    assert "model: at no work at all" in legend_texts(no_work)


def test_break_even_without_a_crossing_draws_no_vertical_line():
    summary = sweep_records()
    for row in summary:
        if row["server"] == "forking":  # forking never catches up
            row["rps"] = row["rps_low"] = row["rps_high"] = 1.0
    (rps_ax, ratio_ax) = visible_axes(plots.plot_break_even(summary))
    assert not [line for line in rps_ax.get_lines() if "overtakes" in line.get_label()]


def test_break_even_says_when_there_are_no_cpu_rows():
    with pytest.raises(ValueError, match="no cpu rows for threading, forking"):
        plots.plot_break_even(summary_records())
    with pytest.raises(ValueError, match="no cpu rows for threading at 4 clients"):
        plots.plot_break_even(sweep_records(), concurrency=4)
    with pytest.raises(ValueError, match="no cpu rows for sync"):
        plots.plot_break_even(sweep_records(), servers=("sync", "forking"))


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


def test_the_cdf_of_a_workload_with_special_clients_shows_the_ordinary_ones():
    records = [request_record(s, "slow-sender", 4, n, "100:MainThread", special=n % 4 == 0)
               for s in SERVERS for n in range(8)]
    for record in records:
        if record["special"]:
            record["latency_ms"] = 500.0  # the slow client's own wait: not drawn
    (ax,) = visible_axes(plots.plot_latency_cdf(records))
    assert ax.get_title().endswith("(fast clients' latency)")
    for line in ax.get_lines():
        assert list(line.get_xdata()) == [3.5] * 6


def test_the_cdf_leaves_out_the_slow_client_of_old_results_and_says_so():
    records = [request_record("sync", "slow-client", 2, n, "100:MainThread") for n in range(4)]
    for record in records:
        del record["special"], record["work_ms"]
        record["slow"] = record["client"] == 0
    (ax,) = visible_axes(plots.plot_latency_cdf(records))
    assert ax.get_title() == "one slow client among fast ones\n(ordinary clients' latency)"
    assert len(ax.get_lines()[0].get_xdata()) == 2


def test_the_cdf_of_a_cpu_sweep_has_a_panel_per_level():
    records = [request_record(s, "cpu", 4, n, "100:MainThread", work_ms=w)
               for s in SERVERS for w in (1.0, 5.0) for n in range(4)]
    figure = plots.plot_latency_cdf(records)
    assert [ax.get_title() for ax in visible_axes(figure)] == [
        "CPU-bound handler (1 ms)", "CPU-bound handler (5 ms)"]
    for ax in visible_axes(figure):
        assert all(len(line.get_xdata()) == 4 for line in ax.get_lines())


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


def special_requests(workload, count=4, field="special"):
    """*count* requests of the sync server; client 0 (requests 0 and 2) is special."""
    records = [request_record("sync", workload, 2, n, "100:MainThread") for n in range(count)]
    for record in records:
        del record["special"]
        if field:
            record[field] = record["client"] == 0
    return records


def hatched_rows(ax):
    return sorted({round(bar.get_y() + bar.get_height() / 2) for bar in ax.patches
                   if bar.get_hatch()})


@pytest.mark.parametrize(("workload", "role", "legend"), [
    ("slow-sender", "slow client", "the slow client's requests"),
    ("slow-reader", "slow client", "the slow client's requests"),
    ("mixed", "computing", "the computing clients' requests"),
])
def test_the_special_clients_rows_are_hatched_labelled_and_in_the_legend(workload, role, legend):
    figure = plots.plot_timeline(special_requests(workload), workload=workload, concurrency=2)
    (ax,) = visible_axes(figure)
    assert hatched_rows(ax) == [0, 2]
    assert {bar.get_hatch() for bar in ax.patches if bar.get_hatch()} == {"////"}
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"MainThread ({role})", "MainThread", f"MainThread ({role})", "MainThread"]
    assert [t.get_fontweight() for t in ax.get_yticklabels()][:2] == ["bold", "normal"]
    assert legend_texts(figure)[-1] == legend
    assert len(ax.patches) == 4 * len(plots.PHASES)


def test_the_old_slow_field_marks_the_slow_client_and_no_field_marks_nobody():
    old = plots.plot_timeline(special_requests("slow-client", field="slow"),
                              workload="slow-client", concurrency=2)
    (ax,) = visible_axes(old)
    assert hatched_rows(ax) == [0, 2]
    assert ax.get_yticklabels()[0].get_text() == "MainThread (slow client)"
    neither = plots.plot_timeline(special_requests("slow-sender", field=None),
                                  workload="slow-sender", concurrency=2)
    (ax,) = visible_axes(neither)
    assert hatched_rows(ax) == []
    assert legend_texts(neither) == [label for _, _, label, _ in plots.PHASES]


def test_a_long_timeline_labels_only_the_special_rows():
    count = plots.MAX_LABELLED_ROWS + 10
    (ax,) = visible_axes(plots.plot_timeline(special_requests("slow-sender", count),
                                             workload="slow-sender", concurrency=2))
    assert list(ax.get_yticks()) == list(range(0, count, 2))
    assert {t.get_text() for t in ax.get_yticklabels()} == {"(slow client)"}
    assert ax.get_ylabel() == "requests, in order sent"


def test_the_timeline_of_a_cpu_sweep_shows_one_level():
    records = [request_record("sync", "cpu", 2, n, "100:MainThread", work_ms=w)
               for w in (1.0, 5.0) for n in range(3)]
    highest = plots.plot_timeline(records, workload="cpu", concurrency=2)
    assert "CPU-bound handler (5 ms)" in highest.get_suptitle()
    assert len(visible_axes(highest)[0].patches) == 3 * len(plots.PHASES)
    chosen = plots.plot_timeline(records, workload="cpu", concurrency=2, work_ms=1.0)
    assert "CPU-bound handler (1 ms)" in chosen.get_suptitle()
    with pytest.raises(ValueError, match="measured: 1, 5"):
        plots.plot_timeline(records, workload="cpu", concurrency=2, work_ms=2.0)


# --- saving --------------------------------------------------------------------------------


def png_size(path):
    """(width, height) in pixels, from the PNG header."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_save_figures_writes_every_figure_as_a_modest_png(tmp_path):
    results = LabResults(machine={}, settings={}, summary=summary_records(), measurements=[],
                         requests=request_records())
    paths = plots.save_figures(results, tmp_path / "figures")
    assert set(paths) == set(plots.FIGURES)  # no cpu sweep: no break_even.png
    assert not (tmp_path / "figures" / "break_even.png").exists()
    for path in paths.values():
        assert path.read_bytes().startswith(b"\x89PNG")
        width, height = png_size(path)
        assert 300 < width <= 1200 and 200 < height <= 1600


def test_save_figures_adds_the_break_even_for_a_sweep(tmp_path):
    # without a sweep there is none: test_save_figures_writes_every_figure_as_a_modest_png
    swept = LabResults(machine={}, settings={}, summary=summary_records() + sweep_records(),
                       measurements=[], requests=request_records())
    paths = plots.save_figures(swept, tmp_path / "swept")
    assert set(paths) == {*plots.FIGURES, "break_even"}
    assert paths["break_even"] == tmp_path / "swept" / "break_even.png"
    width, height = png_size(paths["break_even"])
    assert 300 < width <= 1200 and 200 < height <= 1600


def test_break_even_servers_prefers_threading_and_forking():
    assert plots.break_even_servers(summary_records()) is None
    assert plots.break_even_servers(sweep_records(servers=("forking",))) is None
    one_level = [r for r in sweep_records() if r["work_ms"] == 5.0]
    assert plots.break_even_servers(one_level) is None
    both = sweep_records(servers=("sync", "threading", "forking"))
    assert plots.break_even_servers(both) == ("threading", "forking")
    others = sweep_records(servers=("forking", "sync"))
    assert plots.break_even_servers(others) == ("sync", "forking")
