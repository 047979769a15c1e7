"""The latency lab (sockserver_lib.bench): tiny runs that check behaviour, never speed.

The one timing claim tested is qualitative and holds on any machine: with a
handler that waits 20 ms and 8 clients at once, a synchronous server makes
them queue (median about 8 x 20 ms) while a threading server overlaps them
(median about 20 ms); the test asks only for a factor of 4.
"""

import csv
import json
import math
import multiprocessing
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sockserver_lib import TCPServer, ThreadingTCPServer, bench
from sockserver_lib.bench import Measurement, Settings, _cli, _server, _stats, run_measurement

HAS_FORK = hasattr(os, "fork")
REQUIRED_COLUMNS = {"server", "workload", "concurrency", "p50_ms", "p90_ms", "p99_ms", "rps",
                    "errors"}
#: A run small enough for a test: few requests, short waits, no warm-up.
TINY = Settings(
    concurrency=(1, 2), requests=4, rounds=1, repeats=2, warmup=False,
    io_ms=5.0, cpu_ms=1.0, slow_pieces=3, slow_pause_ms=2.0, timeout=10.0,
)


def run_tiny(**changes):
    messages = []
    results = bench.run_lab(replace(TINY, **changes), progress=messages.append)
    return results, messages


@pytest.fixture(scope="module")
def tiny_run():
    """Every registered server kind, every workload, concurrency 1 and 2, twice."""
    return run_tiny()


# --- what the lab measures ---------------------------------------------------------------


def test_the_registry_holds_the_stdlib_server_kinds():
    assert bench.SERVER_KINDS["sync"] is TCPServer
    assert bench.SERVER_KINDS["threading"] is ThreadingTCPServer
    assert ("forking" in bench.SERVER_KINDS) == HAS_FORK


@pytest.mark.timeout(60)
def test_a_kind_added_to_the_registry_is_measured(monkeypatch):
    monkeypatch.setitem(bench.SERVER_KINDS, "threads-again", ThreadingTCPServer)
    results, _ = run_tiny(servers=("threads-again",), workloads=("none",), concurrency=(2,),
                          repeats=1)
    assert [row["server"] for row in results.summary] == ["threads-again"]
    assert results.summary[0]["errors"] == 0


def test_servers_under_test_listen_with_a_deep_backlog_but_keep_a_deeper_one():
    class DeepBacklogServer(TCPServer):
        request_queue_size = 1000

    assert _server.timed_server_class(TCPServer).request_queue_size == 128
    assert _server.timed_server_class(DeepBacklogServer).request_queue_size == 1000
    assert TCPServer.request_queue_size == 5  # the class itself is left alone


def test_settings_refuse_unknown_names_and_say_the_choices():
    with pytest.raises(ValueError, match="unknown server kind 'nope'; choose from sync"):
        replace(TINY, servers=("nope",)).validate()
    with pytest.raises(ValueError, match="unknown workload 'disk'.*slow-reader"):
        replace(TINY, workloads=("disk",)).validate()
    with pytest.raises(ValueError, match="concurrency"):
        replace(TINY, concurrency=(0,)).validate()
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        replace(TINY, repeats=0).validate()


def test_quick_mode_follows_the_environment_and_shrinks_the_run(monkeypatch):
    monkeypatch.setenv(bench.QUICK_ENV, "1")
    assert bench.quick_mode()
    quick = bench.default_settings()
    monkeypatch.setenv(bench.QUICK_ENV, "0")
    assert not bench.quick_mode()
    full = bench.default_settings()
    assert len(quick.concurrency) < len(full.concurrency)
    assert quick.requests < full.requests
    assert bench.default_settings(quick=True, repeats=1).repeats == 1


def test_sizes_grow_from_quick_to_learner_to_full(monkeypatch):
    quick, learner, full = (bench.default_settings(size=s) for s in ("quick", "learner", "full"))
    assert quick.repeats <= learner.repeats <= full.repeats
    assert quick.rounds <= learner.rounds <= full.rounds
    assert len(learner.concurrency) <= len(full.concurrency)
    monkeypatch.setenv(bench.QUICK_ENV, "1")
    assert bench.notebook_size() == "quick" and bench.notebook_size(full=True) == "full"
    monkeypatch.setenv(bench.QUICK_ENV, "0")
    assert bench.notebook_size() == "learner"
    with pytest.raises(ValueError, match="unknown size 'huge'; choose from quick"):
        bench.default_settings(size="huge")


def test_the_plan_warms_up_then_repeats_each_case_interleaved():
    settings = replace(TINY, warmup=True, workloads=("io", "slow-sender", "slow-reader", "mixed"))
    plan = bench.make_plan(settings, {TINY.cpu_ms: 1000})
    io_at_2 = [m for m in plan if (m.workload, m.concurrency) == ("io", 2)]
    assert [m.warmup for m in io_at_2] == [True, False, False]
    assert [m.repetition for m in io_at_2[1:]] == [0, 1]
    assert io_at_2[1].requests == TINY.requests_per_measurement(2)
    assert io_at_2[1].request_line == b"io 5\n" and io_at_2[1].work_ms == 5.0
    reported = [m for m in plan if not m.warmup]
    first_of_second_round = [m.repetition for m in reported].index(1)
    assert {m.repetition for m in reported[:first_of_second_round]} == {0}  # every case once
    sender = [m for m in plan if m.workload == "slow-sender"]
    assert all(m.special_clients == 1 and m.pieces == 3 and m.special_behaviour == "slow-send"
               for m in sender)
    reader = [m for m in plan if m.workload == "slow-reader"]
    assert all(m.special_line == b"big %d\n" % (TINY.large_reply_kib * 1024) for m in reader)
    mixed = [m for m in plan if m.workload == "mixed"]
    assert all(m.special_clients == m.concurrency // 2 and m.special_line == b"cpu 1000\n"
               for m in mixed)


def test_workloads_with_a_special_client_start_at_two_clients():
    plan = bench.make_plan(replace(TINY, workloads=("slow-sender", "mixed", "none")), {1.0: 10})
    assert {(m.workload, m.concurrency) for m in plan} == {
        ("slow-sender", 2), ("mixed", 2), ("none", 1), ("none", 2)}


def test_a_cpu_sweep_measures_every_level_with_its_own_calibration():
    settings = replace(TINY, workloads=("cpu",), cpu_sweep_ms=(0.5, 4.0))
    iterations = {0.5: 100, 1.0: 200, 4.0: 800}
    plan = bench.make_plan(settings, iterations)
    assert {(m.work_ms, m.request_line) for m in plan} == {(0.5, b"cpu 100\n"),
                                                          (4.0, b"cpu 800\n")}


def test_requests_per_measurement_is_at_least_requests_and_rounds_per_client():
    settings = replace(TINY, requests=10, rounds=3)
    assert settings.requests_per_measurement(2) == 10
    assert settings.requests_per_measurement(8) == 24


def test_cpu_calibration_grows_with_the_time_asked_for():
    assert bench.calibrate_cpu(4.0) > bench.calibrate_cpu(1.0) >= 1


# --- statistics --------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks_like_numpy():
    assert bench.percentile([10, 20], 0.5) == 15.0
    assert bench.percentile([30, 10, 20], 0.5) == 20.0
    assert bench.percentile(range(1, 101), 0.99) == pytest.approx(99.01)
    assert bench.percentile([7], 0.9) == 7
    assert bench.percentile([], 0.5) != bench.percentile([], 0.5)  # NaN


def _request(sent, received, error=None, special=False, started=None, finished=None):
    return {"sent": sent, "received": received, "error": error, "special": special,
            "started": sent if started is None else started,
            "finished": received if finished is None else finished}


def test_measurement_stats_leave_failed_requests_out_of_latency():
    result = {
        "elapsed_ms": 500.0,
        "requests": [_request(0, 10), _request(0, 20), _request(5, 35), _request(0, 99, "boom")],
    }
    stats = _stats.measurement_stats(result)
    assert stats["p50_ms"] == 20.0
    assert stats["errors"] == 1
    assert stats["requests"] == 4
    assert stats["rps"] == 6.0  # 3 successes in half a second


def test_latency_is_the_ordinary_clients_and_the_special_ones_are_apart():
    result = {
        "elapsed_ms": 1000.0,
        "requests": [_request(0, 10, started=2, finished=6), _request(0, 12, started=2,
                     finished=8), _request(0, 500, special=True)],
    }
    stats = _stats.measurement_stats(result)
    assert stats["p50_ms"] == 11.0 and stats["p99_ms"] < 500
    assert stats["special_p50_ms"] == 500.0
    assert stats["service_ms"] == 5.0  # the ordinary requests' handler times: 4 and 6 ms
    assert stats["rps"] == 3.0  # throughput counts everyone


def test_summary_quotes_the_median_over_repetitions_and_totals_errors():
    cell = {"server": "sync", "workload": "io", "connection": "per-request", "concurrency": 4,
            "work_ms": 20.0}
    reps = [
        {**cell, "repetition": r, "requests": 8, "p50_ms": p50, "p90_ms": p50, "p99_ms": p50,
         "mean_ms": p50, "rps": 100.0 * p50, "service_ms": 1.0, "special_p50_ms": math.nan,
         "errors": errors}
        for r, (p50, errors) in enumerate([(1.0, 0), (5.0, 2), (3.0, 1)])
    ]
    (row,) = bench.summarise(reps)
    assert (row["p50_ms"], row["rps"], row["errors"], row["requests"], row["repeats"]) == (
        3.0, 300.0, 3, 24, 3)
    assert (row["p50_ms_low"], row["p50_ms_high"]) == (1.0, 5.0)
    assert (row["rps_low"], row["rps_high"]) == (100.0, 500.0)
    assert math.isnan(row["special_p50_ms"])
    assert list(row) == list(bench.SUMMARY_COLUMNS)


# --- a tiny run of every kind and workload -----------------------------------------------


@pytest.mark.timeout(90)
def test_a_tiny_run_has_one_row_per_server_workload_and_concurrency(tiny_run):
    results, _ = tiny_run
    cells = [(r["server"], r["workload"], r["concurrency"]) for r in results.summary]
    expected = [(s, w, c) for s in bench.SERVER_KINDS for w in bench.WORKLOADS for c in (1, 2)
                if c >= 2 or w not in bench.SPECIAL_WORKLOADS]
    assert cells == expected
    for row in results.summary:
        assert REQUIRED_COLUMNS <= set(row)
        assert row["errors"] == 0, row
        assert row["repeats"] == 2 and row["requests"] == 2 * 4
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["p50_ms_low"] <= row["p50_ms"] <= row["p50_ms_high"]
        assert row["rps_low"] <= row["rps"] <= row["rps_high"]
        assert row["service_ms"] >= 0
        assert row["rps"] > 0


def test_every_request_is_timed_on_one_clock_shared_by_client_and_server(tiny_run):
    results, _ = tiny_run
    assert len(results.requests) == len(results.summary) * 2 * 4
    for request in results.requests:
        times = [request[t] for t in ("sent", "accepted", "started", "finished", "received")]
        assert times == sorted(times), request


def test_the_timeline_names_the_worker_of_each_request(tiny_run):
    results, _ = tiny_run
    sync_workers = {r["worker"] for r in results.requests_of(server="sync")}
    assert len(sync_workers) == 1 and sync_workers.pop().endswith(":MainThread")
    kinds = ["threading", "forking"] if HAS_FORK else ["threading"]
    for kind in kinds:
        for repetition in (0, 1):
            requests = results.requests_of(server=kind, workload="none", concurrency=2,
                                           repetition=repetition)
            workers = {r["worker"] for r in requests}
            assert len(workers) == len(requests) == 4, kind  # a new worker per connection
            pids = {w.split(":")[0] for w in workers}
            assert len(pids) == (1 if kind == "threading" else 4)


def test_the_io_handler_waits_and_the_slow_clients_trickle(tiny_run):
    results, _ = tiny_run
    for request in results.requests_of(workload="io"):
        assert request["finished"] - request["started"] >= TINY.io_ms
    sender = results.requests_of(workload="slow-sender", concurrency=2)
    assert {r["client"] for r in sender if r["special"]} == {0}
    for request in sender:
        if request["special"]:  # 3 pieces, 2 pauses of 2 ms between them
            assert request["latency_ms"] >= 2 * TINY.slow_pause_ms
    reader = [r for r in results.requests_of(workload="slow-reader") if r["special"]]
    chunks = TINY.large_reply_kib * 1024 // bench._load.SLOW_READ_CHUNK
    assert reader and all(r["latency_ms"] >= chunks * TINY.slow_pause_ms for r in reader)


@pytest.mark.timeout(60)
def test_a_sync_server_is_deaf_while_it_sends_to_a_slow_reader():
    results, _ = run_tiny(servers=("sync",), workloads=("slow-reader",), concurrency=(3,),
                          requests=6, repeats=1)
    requests = results.requests
    slow = [r for r in requests if r["special"]]
    fast = [r for r in requests if not r["special"]]
    # The handler was busy sending for most of the slow client's read ...
    assert all(r["finished"] - r["started"] >= (r["latency_ms"] / 2) for r in slow)
    # ... and some fast client waited for it: accepted only after a slow reply was sent.
    assert any(any(s["started"] < f["accepted"] and s["finished"] <= f["started"] for s in slow)
               and f["latency_ms"] > 4 * TINY.slow_pause_ms for f in fast)


def test_progress_reports_each_measurement(tiny_run):
    results, messages = tiny_run
    counted = [m for m in messages if m.startswith("[")]
    assert len(counted) == len(results.measurements) == len(results.summary) * 2
    assert counted[-1].startswith(f"[{len(counted)}/{len(counted)}]")


def test_no_process_is_left_running_after_a_run(tiny_run):
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(60)
def test_persistent_clients_keep_one_worker_for_all_their_requests():
    results, _ = run_tiny(servers=("threading",), workloads=("none",), concurrency=(2,),
                          requests=6, repeats=1, connection="persistent")
    by_client = {}
    for request in results.requests:
        by_client.setdefault(request["client"], set()).add(request["worker"])
    assert len(by_client) == 2
    assert all(len(workers) == 1 for workers in by_client.values())
    assert results.summary[0]["connection"] == "persistent"


@pytest.mark.timeout(90)
def test_with_an_io_bound_handler_sync_queues_and_threading_overlaps():
    settings = Settings(servers=("sync", "threading"), workloads=("io",), concurrency=(8,),
                        requests=16, rounds=2, repeats=1, warmup=False, io_ms=20.0)
    results = bench.run_lab(settings)
    sync = results.row("sync", "io", 8)["p50_ms"]
    threading = results.row("threading", "io", 8)["p50_ms"]
    assert sync >= 4 * threading, (sync, threading)


# --- failures are bounded and reported ----------------------------------------------------


def _closed_port_address():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()  # nothing listens there once closed


@pytest.mark.timeout(30)
def test_failed_requests_are_counted_not_raised():
    measurement = Measurement(workload="none", concurrency=2, repetition=0, requests=4,
                              request_line=b"none 0\n", timeout=2.0)
    result = run_measurement(_closed_port_address(), measurement)
    assert len(result["requests"]) == 4
    assert all(r["error"] and "Refused" in r["error"] for r in result["requests"])
    assert _stats.measurement_stats(result)["errors"] == 4


@pytest.mark.timeout(30)
def test_the_server_process_is_stopped_and_closed_even_when_the_block_fails():
    with pytest.raises(RuntimeError, match="on purpose"):
        with bench.running_server(bench.SERVER_KINDS["sync"]) as server:
            process = server.process
            assert process.is_alive()
            assert server.address[0] == "127.0.0.1"
            raise RuntimeError("on purpose")
    assert not process.is_alive()
    assert process.exitcode == 0  # it closed its server and returned, not killed


def test_row_says_what_was_measured_when_a_cell_is_missing(tiny_run):
    results, _ = tiny_run
    with pytest.raises(KeyError, match="measured"):
        results.row("sync", "io", 64)


# --- files and the command line ----------------------------------------------------------


def test_results_round_trip_through_csv_and_json(tiny_run, tmp_path):
    results, _ = tiny_run
    files = bench.save_results(results, tmp_path / "out")
    with open(files["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    assert REQUIRED_COLUMNS <= set(rows[0])
    assert len(rows) == len(results.summary)
    assert all(len(row["p50_ms"].split(".")[-1]) <= 3 for row in rows)  # rounded
    assert {row["special_p50_ms"] for row in rows if row["workload"] == "none"} == {""}
    again = bench.load_results(tmp_path / "out")
    as_saved = bench._report._nan_to_none  # NaN (no value) is saved as null, read back as NaN
    assert as_saved(again.summary) == json.loads(json.dumps(as_saved(results.summary)))
    assert any(math.isnan(row["special_p50_ms"]) for row in again.summary)
    assert len(again.requests) == len(results.requests)
    assert again.machine["cpu_count"] == os.cpu_count()
    bench.save_results(results, tmp_path / "small", requests=False)
    small = bench.load_results(tmp_path / "small" / "results.json")
    assert small.requests == [] and len(small.summary) == len(results.summary)


def test_the_table_has_a_header_and_a_line_per_row(tiny_run):
    results, _ = tiny_run
    lines = bench.format_table(results.summary).splitlines()
    assert lines[0].split() == ["server", "workload", "concurrency", "work_ms", "p50_ms",
                                "p50_ms_range", "p99_ms", "rps", "rps_range", "errors"]
    low, high = lines[1].split()[5].split("..")
    assert float(low) <= float(lines[1].split()[4]) <= float(high)
    assert len(lines) == 1 + len(results.summary)


def _run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "sockserver_lib.bench", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )


@pytest.mark.timeout(60)
def test_help_explains_every_option(tmp_path):
    done = _run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0
    for action in _cli.build_parser()._actions:
        for option in action.option_strings:
            assert option in done.stdout
        assert action.help
    assert "results.csv" in done.stdout and bench.QUICK_ENV in done.stdout


def test_bad_options_are_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["--servers", "nope"])
    assert exit_info.value.code == 2
    assert "unknown server kind 'nope'; choose from sync" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_the_command_writes_csv_json_and_figures(tmp_path):
    out = tmp_path / "results"
    done = _run_cli("--out", str(out), "--quick", "--servers", "sync,threading",
                    "--workloads", "none,io", "--concurrency", "1,2", "--requests", "2",
                    "--rounds", "1", "--repeats", "1", "--io-ms", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with open(out / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert REQUIRED_COLUMNS <= set(rows[0]) and len(rows) == 2 * 2 * 2
    data = json.loads((out / "results.json").read_text())
    assert set(data) == {"machine", "settings", "summary", "measurements", "requests"}
    assert len(data["requests"]) == 2 * 2 * 2 * 2
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["latency_cdf.png", "latency_vs_concurrency.png",
                    "throughput_vs_concurrency.png", "timeline.png"]
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in pngs)
    assert "[8/8]" in done.stderr and "done: 8 measurements" in done.stderr  # progress
    assert done.stdout.splitlines()[0].split()[:3] == ["server", "workload", "concurrency"]


@pytest.mark.timeout(120)
def test_the_command_keeps_every_request_unless_told_summary_only(tmp_path):
    common = ("--quick", "--servers", "sync", "--workloads", "none", "--concurrency", "1",
              "--repeats", "1", "--no-plots")
    kept = _run_cli("--out", str(tmp_path / "kept"), *common, cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    everything = json.loads((tmp_path / "kept" / "results.json").read_text())
    assert len(everything["requests"]) == everything["summary"][0]["requests"] > 0
    small = _run_cli("--out", str(tmp_path / "small"), "--summary-only", *common, cwd=tmp_path)
    assert small.returncode == 0, small.stderr
    summary_only = json.loads((tmp_path / "small" / "results.json").read_text())
    assert summary_only["requests"] == [] and len(summary_only["summary"]) == 1


def test_quick_and_size_cannot_both_be_given(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["--quick", "--size", "full"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_bench_imports_only_the_standard_library():
    code = ("import sys, sockserver_lib.bench; "
            "print(sorted(m for m in ('matplotlib', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parent)
    assert done.stdout.strip() == "[]", done.stderr
