"""The latency lab's verdicts and sanity checks, fed synthetic results both ways.

Every sentence a notebook prints about a measurement comes from these
functions; each test gives numbers that should lead to one wording and
numbers that should lead to the other.
"""

import math

import pytest

from sockserver_lib import bench
from sockserver_lib.bench import _verdicts


def row(server="sync", workload="io", concurrency=8, work_ms=20.0, spread=0.0, repeats=3,
        **values):
    """A summary row; *spread* (relative) sets each statistic's low and high around it."""
    record = {"server": server, "workload": workload, "connection": "per-request",
              "concurrency": concurrency, "work_ms": work_ms, "repeats": repeats,
              "requests": repeats * concurrency * 4, "service_ms": 20.0,
              "special_p50_ms": math.nan, "errors": 0,
              "p50_ms": 20.0, "p90_ms": 22.0, "p99_ms": 24.0, "mean_ms": 21.0, "rps": 100.0}
    record.update(values)
    for name in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "rps"):
        record[f"{name}_low"] = record[name] * (1 - spread)
        record[f"{name}_high"] = record[name] * (1 + spread)
    return record


# --- compare -----------------------------------------------------------------------------


@pytest.mark.parametrize("first, second", [("sync", "threading"), ("threading", "sync")])
def test_a_clear_latency_difference_names_the_faster_server_either_way_round(first, second):
    p50 = {"sync": 160.0, "threading": 21.0}
    result = bench.compare(first, row(p50_ms=p50[first]), second, row(p50_ms=p50[second]))
    assert result.clear and result.better == "threading"
    assert result.ratio == pytest.approx(p50[first] / p50[second])
    assert result.sentence == ("sync's median latency was 7.6x threading's (160 vs 21.0 ms): "
                               "threading answered sooner.")


def test_higher_throughput_is_better():
    result = bench.compare("forking", row(rps=300.0), "threading", row(rps=100.0), "rps")
    assert result.better == "forking"
    assert "forking served 3.0x as many requests per second as threading" in result.sentence
    result = bench.compare("forking", row(rps=100.0), "threading", row(rps=300.0), "rps")
    assert result.better == "threading"
    assert "threading served 3.0x as many requests per second as forking (300 vs 100 req/s)" \
        in result.sentence


def test_a_difference_within_the_noise_floor_is_no_clear_difference():
    result = bench.compare("a", row(p50_ms=20.0), "b", row(p50_ms=23.0), noise=0.20)
    assert not result.clear and result.better is None
    assert result.sentence == ("No clear difference between a and b in median latency: "
                               "20.0 vs 23.0 ms, within the noise floor (±20%).")
    assert bench.compare("a", row(p50_ms=20.0), "b", row(p50_ms=23.0), noise=0.10).clear
    # a floor below the minimum is raised to it: 5% is never "clear"
    assert not bench.compare("a", row(p50_ms=20.0), "b", row(p50_ms=21.0), noise=0.01).clear


def test_overlapping_ranges_are_no_clear_difference_even_beyond_the_floor():
    wide = bench.compare("a", row(p50_ms=20.0, spread=0.4), "b", row(p50_ms=30.0, spread=0.4))
    assert not wide.clear and "their ranges over repetitions overlap" in wide.sentence
    narrow = bench.compare("a", row(p50_ms=20.0, spread=0.05), "b", row(p50_ms=30.0,
                                                                        spread=0.05))
    assert narrow.clear


def test_a_missing_value_cannot_be_compared():
    result = bench.compare("a", row(p50_ms=math.nan), "b", row())
    assert not result.clear and "cannot be compared" in result.sentence


# --- noise floor --------------------------------------------------------------------------


def test_the_noise_floor_is_the_largest_a_a_difference_of_each_workload():
    first = [row(p50_ms=100.0, rps=50.0), row(workload="none", p50_ms=1.0, rps=1000.0)]
    again = [row(p50_ms=103.0, rps=52.0), row(workload="none", p50_ms=1.5, rps=990.0)]
    noise = bench.noise_floor(first, again)
    assert noise.observed == pytest.approx({"io": 0.04, "none": 0.5})
    assert noise.for_workload("none") == pytest.approx(0.5)
    assert noise.for_workload("io") == _verdicts.MINIMUM_NOISE  # 4% measured, 10% used
    assert noise.for_workload("mixed") == pytest.approx(0.5)  # not measured: the largest
    assert noise.sentence.startswith(
        "Measured twice, the same sync server differed by up to 4% on io (throughput at 8 "
        "clients), 50% on none (median latency at 8 clients).")


def test_a_a_compares_each_server_only_with_itself():
    first = [row("sync", p50_ms=160.0), row("threading", p50_ms=21.0)]
    again = [row("sync", p50_ms=161.0)]
    assert bench.noise_floor(first, again).observed["io"] == pytest.approx(1 / 160)


def test_a_a_needs_a_cell_in_common():
    with pytest.raises(ValueError, match="no cell in common"):
        bench.noise_floor([row(workload="io")], [row(workload="cpu")])


# --- sanity checks -----------------------------------------------------------------------


def test_littles_law_passes_near_the_number_of_clients():
    check = bench.littles_law(row(rps=360.0, mean_ms=21.0))  # 7.6 of 8 in flight
    assert check.passed and "7.6 requests in flight, close to the 8 clients." in check.sentence
    check = bench.littles_law(row(rps=300.0, mean_ms=21.0))  # 6.3 of 8: the drain
    assert check.passed and "somewhat under the 8 clients, as expected" in check.sentence


def test_littles_law_fails_on_a_run_with_few_requests_in_flight_and_says_why():
    check = bench.littles_law(row(rps=150.0, mean_ms=21.0, requests=3 * 8 * 2))  # 3.1 of 8
    assert not check.passed
    assert "only 39% of the 8 clients" in check.sentence
    assert "each made only 2 requests" in check.sentence


def test_littles_law_calls_more_requests_than_clients_impossible():
    check = bench.littles_law(row(rps=1000.0, mean_ms=21.0))  # 21 of 8
    assert not check.passed and "impossible" in check.sentence


def test_the_sync_queue_model_fits_n_handler_times():
    check = bench.sync_queue_model(row(p50_ms=165.0, p99_ms=175.0, service_ms=20.5))
    assert check.passed and "8 x 20.5 ms = 164 ms" in check.sentence


def test_a_tail_beyond_the_queue_ceiling_is_flagged_but_the_median_kept():
    check = bench.sync_queue_model(row(p50_ms=167.0, p99_ms=257.0, service_ms=20.2))
    assert not check.passed
    assert "p99 is above its ceiling" in check.sentence and "trust the median" in check.sentence


def test_a_median_off_the_queue_model_is_flagged():
    check = bench.sync_queue_model(row(p50_ms=60.0, p99_ms=70.0, service_ms=20.0))
    assert not check.passed and "does not fit the queueing model" in check.sentence


def test_a_speedup_beyond_the_cores_is_impossible():
    assert bench.within_cores(1.8, 2, "prefork over sync").passed
    check = bench.within_cores(3.1, 2, "prefork over sync")
    assert not check.passed
    assert "3.1x with only 2 usable core(s)" in check.sentence
    assert "cannot say how much the extra cores gave" in check.sentence
    above = bench.within_cores(2.15, 2, "x", noise=0.10)
    assert above.passed and "above the 2x that 2 core(s) allow, but within this run's noise" \
        in above.sentence
    assert not bench.within_cores(2.3, 2, "x", noise=0.10).passed
    assert not bench.within_cores(math.nan, 2, "x").passed


# --- fork cost and break-even -----------------------------------------------------------


def test_forking_extra_latency_is_counted_in_forks():
    text = bench.fork_explains(row(p50_ms=40.0), row(p50_ms=22.0), fork_ms=2.0)
    assert "18.0 ms above threading's: about 9 fork start-up(s) of 2.00 ms" in text
    text = bench.fork_explains(row(p50_ms=22.5), row(p50_ms=22.0), fork_ms=2.0)
    assert "not clearly different" in text and "did not measurably hold" in text
    text = bench.fork_explains(row(p50_ms=15.0), row(p50_ms=22.0), fork_ms=2.0)
    assert "7.00 ms below threading's" in text
    text = bench.fork_explains(row(p50_ms=26.0), row(p50_ms=22.0), fork_ms=10.0)
    assert "less than half a fork (10.0 ms): not the forks" in text


def sweep(threading_rps, forking_rps, levels=(0.2, 1.0, 5.0, 20.0, 50.0), spread=0.02):
    pairs = {"threading": zip(levels, threading_rps, strict=True),
             "forking": zip(levels, forking_rps, strict=True)}
    return [row(server, "cpu", 4, work, spread, rps=rps) for server, levels_and_rps in pairs.items()
            for work, rps in levels_and_rps]


def test_break_even_is_interpolated_where_forking_overtakes_threading():
    summary = sweep([2000, 700, 180, 48, 19], [400, 300, 180 * 0.8, 48 * 1.6, 19 * 1.8])
    found = bench.break_even(summary, "threading", "forking", 4)
    assert 5.0 < found.work_ms < 20.0
    # on log scales: ratio 0.8 at 5 ms, 1.6 at 20 ms -> crosses at 5 * 4 ** (log 1.25 / log 2)
    assert found.work_ms == pytest.approx(5.0 * 4 ** (math.log(1.25) / math.log(2)))
    assert found.sentence.startswith("With 4 clients, forking overtook threading at about")
    assert [clear for *_, clear in found.levels] == [True, True, True, True, True]


def test_break_even_says_when_forking_never_overtakes():
    found = bench.break_even(sweep([2000, 700, 180, 48, 19], [400, 300, 100, 40, 18]),
                             "threading", "forking", 4)
    assert found.work_ms is None and not found.below_range
    assert "never clearly overtook" in found.sentence


def test_a_crossing_next_to_noise_is_given_as_a_range():
    # at 5 ms forking is ahead within the noise, at 20 ms clearly: the crossing is in 1..20 ms
    found = bench.break_even(sweep([2000, 700, 180, 48, 19], [400, 300, 185, 80, 30]),
                             "threading", "forking", 4)
    assert found.work_ms is None
    assert "somewhere between 1.00 and 20.0 ms" in found.sentence


def test_a_lead_that_starts_within_the_noise_gives_only_an_upper_bound():
    # forking slightly ahead at 0.2 and 1 ms (within the noise), clearly from 5 ms on
    found = bench.break_even(sweep([2000, 700, 180, 48, 19], [2040, 714, 250, 80, 30]),
                             "threading", "forking", 4)
    assert found.work_ms is None and found.between == (None, 5.0)
    assert "somewhere below 5.00 ms, perhaps below 0.20" in found.sentence
    assert "which agrees" in bench.versus_model(found, 1.0)
    assert "does not agree" in bench.versus_model(found, 9.0)


def test_a_crossing_from_zero_work_is_interpolated_linearly():
    found = bench.break_even(sweep([100, 50], [50, 100], levels=(0.0, 2.0)),
                             "threading", "forking", 4)
    assert found.work_ms == pytest.approx(1.0)


def test_a_sweep_that_goes_back_and_forth_has_no_single_break_even():
    found = bench.break_even(sweep([100, 100, 100], [150, 50, 50], levels=(1.0, 5.0, 20.0)),
                             "threading", "forking", 4)
    assert found.work_ms is None and "only at 1.00 ms" in found.sentence


def test_break_even_says_when_forking_wins_everywhere():
    found = bench.break_even(sweep([100, 90, 80, 40, 15], [150, 140, 130, 70, 28]),
                             "threading", "forking", 4)
    assert found.work_ms is None and found.below_range
    assert "break-even is below 0.20 ms" in found.sentence


def test_break_even_needs_both_servers():
    with pytest.raises(ValueError, match="no cpu rows of both"):
        bench.break_even(sweep([1], [1], levels=(1.0,))[:1], "threading", "forking", 4)


def test_the_break_even_model_grows_with_the_fork_cost_and_needs_two_cores():
    assert bench.break_even_model(fork_ms=2.0, thread_ms=0.1, cores=2) == pytest.approx(1.8)
    assert bench.break_even_model(4.0, 0.1, 2) > bench.break_even_model(2.0, 0.1, 2)
    assert bench.break_even_model(2.0, 0.1, 1) == math.inf
    assert bench.break_even_model(0.1, 0.1, 2) == 0.0


def found_at(work_ms, below_range=False, between=None):
    return bench.BreakEven("threading", "forking", work_ms, below_range,
                           ((0.2, 2.0, True),), "", between)


def test_a_measured_break_even_is_held_against_the_model_both_ways():
    assert "the model holds" in bench.versus_model(found_at(3.0), 2.0)
    assert "later. Perhaps" in bench.versus_model(found_at(9.0), 2.0)
    assert "earlier. Perhaps" in bench.versus_model(found_at(0.5), 2.0)
    assert "no clear crossing to compare" in bench.versus_model(found_at(None), 2.0)
    assert "between 1.00 and 20.0 ms, which agrees" in bench.versus_model(
        found_at(None, between=(1.0, 20.0)), 2.0)
    assert "does not agree" in bench.versus_model(found_at(None, between=(5.0, 20.0)), 1.0)
    assert "below the lowest level measured (0.20 ms)" in bench.versus_model(found_at(3.0),
                                                                              0.05)
    assert "below 0.20 ms, which agrees" in bench.versus_model(found_at(None, True), 0.3)
    assert "below 0.20 ms, earlier" in bench.versus_model(found_at(None, True), 2.0)
    assert "treat it as noise" in bench.versus_model(found_at(5.0), math.inf)
    assert "and this run agrees" in bench.versus_model(found_at(None), math.inf)


def test_checks_say_when_there_is_no_value_to_check():
    for check in (bench.littles_law(row(rps=math.nan)),
                  bench.sync_queue_model(row(service_ms=math.nan))):
        assert not check.passed and "nothing to check" in check.sentence


def test_littles_law_refuses_workloads_whose_latency_is_not_everybodys():
    with pytest.raises(ValueError, match="only the ordinary clients"):
        bench.littles_law(row(workload="mixed"))


def test_a_handler_time_comparison_is_worded_as_time_not_as_an_answer():
    result = bench.compare("alone", row(service_ms=5.2), "busy", row(service_ms=3.1),
                           "service_ms")
    assert result.sentence == "alone's handler time was 1.7x busy's (5.20 vs 3.10 ms)."
    result = bench.compare("1 client", row(service_ms=3.5), "8 clients", row(service_ms=4.6),
                           "service_ms")
    assert result.sentence == "8 clients' handler time was 1.3x 1 client's (4.60 vs 3.50 ms)."
