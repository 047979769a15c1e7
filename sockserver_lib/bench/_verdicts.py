"""What the numbers say: every sentence about a measurement, computed from the measurement.

The notebooks never hard-code "faster" or "5x": they call these functions,
which read the summary records (bench.summarise()) and choose the words.
A difference counts only when it is larger than the run's own noise and the
two ranges over repetitions do not overlap; otherwise the sentence says "no
clear difference".  The sanity checks hold a run against the models the lab
teaches (Little's law, the queueing of a synchronous server, the number of
cores); a failed check says why the run cannot support a conclusion.

Every function is pure: give it records, get numbers and a sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._lab import SPECIAL_WORKLOADS
from ._stats import CELL_KEYS, is_number

#: The smallest noise floor used, even when an A/A run agreed more closely:
#: two runs that agree once by luck do not prove a 1% precision.
MINIMUM_NOISE = 0.10
#: Little's law: with N clients in a closed loop, throughput x mean latency
#: is at most N; below this fraction of N the run was too short or starved.
LITTLE_LOWEST_FRACTION = 0.7
#: ... and from this fraction on it is "close to" N.
LITTLE_CLOSE_FRACTION = 0.9
#: A synchronous server's median under N clients is about N handler times;
#: this is how far off (either way) it may be and still fit the model.
QUEUE_MODEL_TOLERANCE = 0.25

UNITS = {"p50_ms": "ms", "p90_ms": "ms", "p99_ms": "ms", "mean_ms": "ms", "rps": "req/s",
         "service_ms": "ms"}
WHAT = {"p50_ms": "median latency", "p90_ms": "90th percentile", "p99_ms": "99th percentile",
        "mean_ms": "mean latency", "rps": "throughput", "service_ms": "handler time"}
#: The metrics that are a client's wait: lower means it was answered sooner.
LATENCIES = ("p50_ms", "p90_ms", "p99_ms", "mean_ms")


def show(value: float) -> str:
    """A measured value with sensible digits: 0.153, 4.61, 22.4, 167."""
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def times(ratio: float) -> str:
    """A ratio as a reader says it: 1.3x, 7.5x, 25x."""
    return f"{ratio:.0f}x" if ratio >= 20 else f"{ratio:.1f}x"


def possessive(name: str) -> str:
    """"sync's", "8 clients'"."""
    return name + ("'" if name.endswith("s") else "'s")


def relative_difference(a: float, b: float) -> float:
    """How far apart two positive values are, relative to the smaller (0.25 = 25%)."""
    return abs(a - b) / min(a, b)


# --- noise -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """The noise floors of a run, from an A/A comparison (the same server measured twice).

    *observed* maps each workload to the largest relative difference found
    (0.12 = 12%) and *where* to the statistic and concurrency it was in.
    for_workload() gives the floor to use when comparing that workload.
    """

    observed: dict
    where: dict
    sentence: str

    def for_workload(self, workload: str) -> float:
        """The floor for *workload*: what A/A found there (the largest found, if it was
        not measured twice), and at least MINIMUM_NOISE."""
        found = self.observed.get(workload, max(self.observed.values()))
        return max(found, MINIMUM_NOISE)


def noise_floor(first: list, again: list, metrics: tuple = ("p50_ms", "rps")) -> Noise:
    """The noise floors from an A/A comparison: the same server measured twice.

    *first* and *again* are summary records; every cell (the same server,
    workload, concurrency...) in both is compared on each of *metrics*, and
    the largest relative difference is kept per
    workload (a 20 ms wait repeats far better than a 0.2 ms round trip).
    The floors come from the server(s) measured twice and are used for all:
    an estimate of the machine's noise, not of each server's.  ValueError
    if no cell is in both.
    """
    keyed = {_cell(r): r for r in first}
    observed: dict = {}
    where: dict = {}
    for row in again:
        twin = keyed.get(_cell(row))
        if twin is None:
            continue
        for metric in metrics:
            a, b = twin[metric], row[metric]
            if not (is_number(a) and is_number(b)) or min(a, b) <= 0:
                continue
            difference = relative_difference(a, b)
            if difference >= observed.get(row["workload"], -1):
                observed[row["workload"]] = difference
                work = f", {show(row['work_ms'])} ms of work" if row["workload"] == "cpu" else ""
                where[row["workload"]] = f"{WHAT[metric]} at {row['concurrency']} clients{work}"
    if not observed:
        raise ValueError("the two runs have no cell in common: measure the same cases twice")
    servers = " and ".join(dict.fromkeys(row["server"] for row in again))
    parts = ", ".join(f"{observed[w]:.0%} on {w} ({where[w]})" for w in observed)
    sentence = (f"Measured twice, the same {servers} server differed by up to {parts}. "
                "A difference between two servers counts only if it is larger than the "
                f"noise of its workload (and at least {MINIMUM_NOISE:.0%}: one lucky "
                "agreement proves little).")
    return Noise(observed=observed, where=where, sentence=sentence)


def _cell(row: dict) -> tuple:
    return tuple(row[key] for key in CELL_KEYS)


# --- comparisons -------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """*a* against *b* on *metric*: the ratio a/b, and whether the difference is clear.

    *better* names the one that did better (lower latency, higher
    throughput) when the difference is clear, else None.
    """

    a: str
    b: str
    metric: str
    ratio: float
    clear: bool
    better: str | None
    sentence: str


def ranges_overlap(row_a: dict, row_b: dict, metric: str) -> bool:
    """True if the two rows' ranges over repetitions of *metric* overlap."""
    low_a, high_a = row_a.get(f"{metric}_low"), row_a.get(f"{metric}_high")
    low_b, high_b = row_b.get(f"{metric}_low"), row_b.get(f"{metric}_high")
    if not all(is_number(v) for v in (low_a, high_a, low_b, high_b)):
        return False  # no spread recorded: judge by the noise floor alone
    return low_a <= high_b and low_b <= high_a


def compare(a: str, row_a: dict, b: str, row_b: dict, metric: str = "p50_ms",
            noise: float = MINIMUM_NOISE) -> Comparison:
    """Compare two summary rows on *metric*, with a sentence whose words the numbers choose.

    The difference is clear when the ratio is beyond the noise floor
    (*noise*, relative, and at least MINIMUM_NOISE) and the ranges over
    repetitions do not overlap.
    """
    noise = max(noise, MINIMUM_NOISE)
    value_a, value_b = row_a[metric], row_b[metric]
    unit = UNITS.get(metric, "")
    if not (is_number(value_a) and is_number(value_b)) or min(value_a, value_b) <= 0:
        return Comparison(a, b, metric, math.nan, False, None,
                          f"{a} and {b} cannot be compared on {WHAT.get(metric, metric)}: "
                          "a value is missing (did every request fail?).")
    ratio = value_a / value_b
    beyond_noise = relative_difference(value_a, value_b) > noise
    overlap = ranges_overlap(row_a, row_b, metric)
    values = f"{show(value_a)} vs {show(value_b)} {unit}"
    if not beyond_noise or overlap:
        why = (f"within the noise floor (±{noise:.0%})" if not beyond_noise
               else "their ranges over repetitions overlap")
        return Comparison(a, b, metric, ratio, False, None,
                          f"No clear difference between {a} and {b} in "
                          f"{WHAT.get(metric, metric)}: {values}, {why}.")
    (higher, high), (lower, low) = sorted([(a, value_a), (b, value_b)], key=lambda p: -p[1])
    factor = high / low
    values = f"{show(high)} vs {show(low)} {unit}"  # in the order the sentence names them
    if metric == "rps":
        better = higher
        sentence = (f"{higher} served {times(factor)} as many requests per second as {lower} "
                    f"({values}).")
    else:
        better = lower
        sentence = (f"{possessive(higher)} {WHAT.get(metric, metric)} was {times(factor)} "
                    f"{possessive(lower)} ({values})"
                    + (f": {lower} answered sooner." if metric in LATENCIES else "."))
    return Comparison(a, b, metric, ratio, True, better, sentence)


# --- sanity checks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A run held against a model: did it pass, and what that means for the reader."""

    name: str
    passed: bool
    sentence: str


def _missing(name: str, row: dict, *columns: str) -> Check | None:
    """A failed Check if one of *row*'s *columns* has no value (every request failed)."""
    absent = [column for column in columns if not is_number(row.get(column))]
    if not absent:
        return None
    return Check(name, False, f"{row['server']}, {row['workload']}: no value for "
                              f"{', '.join(absent)} (did every request fail?): nothing to check.")


def littles_law(row: dict) -> Check:
    """Little's law on a closed-loop row: throughput x mean latency should be close to N.

    Each of N clients is always either waiting for a reply or about to send
    the next request, so about N requests are in flight: rps x mean latency
    (in seconds) ~ N, a little under it because the queue drains at the end
    of a run.  Much less means the clients spent their time elsewhere: a
    run too short, or a load generator starved of CPU.  Only for workloads
    without special clients (their latency is not everybody's): ValueError.
    """
    if row["workload"] in SPECIAL_WORKLOADS:
        raise ValueError(f"Little's law needs every client's latency; {row['workload']!r} "
                         "reports only the ordinary clients'")
    missing = _missing("Little's law", row, "rps", "mean_ms")
    if missing:
        return missing
    clients = row["concurrency"]
    in_flight = row["rps"] * row["mean_ms"] / 1000
    product = (f"{show(row['rps'])} req/s x {show(row['mean_ms'])} ms = {in_flight:.1f} "
               f"requests in flight")
    if in_flight > clients * 1.05:
        return Check("Little's law", False,
                     f"{row['server']}, {row['workload']}: {product}, more than the {clients} "
                     "clients there were. That is impossible in a closed loop: the clocks or "
                     "the run are wrong; do not use this row.")
    if in_flight >= clients * LITTLE_CLOSE_FRACTION:
        return Check("Little's law", True,
                     f"{row['server']}, {row['workload']}: {product}, close to the {clients} "
                     "clients.")
    if in_flight >= clients * LITTLE_LOWEST_FRACTION:
        return Check("Little's law", True,
                     f"{row['server']}, {row['workload']}: {product}, somewhat under the "
                     f"{clients} clients, as expected: the queue drains at the end of a run, "
                     "which weighs more the fewer requests each client makes.")
    per_client = row["requests"] / max(row["repeats"], 1) / clients
    return Check("Little's law", False,
                 f"{row['server']}, {row['workload']}: {product}, only "
                 f"{in_flight / clients:.0%} of the {clients} clients. The clients spent the "
                 f"rest outside a request: each made only {per_client:.0f} requests, so the "
                 "end of the run, when the queue drains, weighs a lot; or the load generator "
                 "was short of CPU. Measure longer (more rounds) before comparing this case.")


def sync_queue_model(row: dict) -> Check:
    """A synchronous server under N clients: each request waits for the N - 1 others.

    Its median should be about N handler times (the row's ``service_ms``),
    and no request can wait longer than N of them, so p99 stays under that
    ceiling too (within QUEUE_MODEL_TOLERANCE).
    """
    missing = _missing(f"{row['server']} queue", row, "service_ms", "p50_ms", "p99_ms")
    if missing:
        return missing
    clients, service = row["concurrency"], row["service_ms"]
    model = clients * service
    low, high = model * (1 - QUEUE_MODEL_TOLERANCE), model * (1 + QUEUE_MODEL_TOLERANCE)
    name = f"{row['server']} queue ({row['workload']}, {clients} clients)"
    shown = (f"model: {clients} x {show(service)} ms = {show(model)} ms; median "
             f"{show(row['p50_ms'])} ms, p99 {show(row['p99_ms'])} ms")
    if not low <= row["p50_ms"] <= high:
        return Check(name, False,
                     f"The median does not fit the queueing model ({shown}): the server did "
                     "not take one request at a time for its whole handler time, or the "
                     "machine added delays. Do not draw conclusions from this case.")
    if row["p99_ms"] > high:
        return Check(name, False,
                     f"The median fits the queueing model, but p99 is above its ceiling "
                     f"({shown}): some requests waited longer than {clients} handler times, "
                     "which queueing alone cannot explain. Something outside the server "
                     "(another program, the load generator) delayed them: trust the median "
                     "here, not the tail.")
    return Check(name, True, f"The queueing model fits ({shown}).")


def within_cores(speedup: float, cores: int, what: str, noise: float = MINIMUM_NOISE) -> Check:
    """Computing on *cores* cores cannot be more than *cores* times faster than on one.

    A larger *speedup* (beyond the noise) means the baseline was slowed by
    something else, and the comparison proves nothing.
    """
    if not is_number(speedup):
        return Check("speedup within the cores", False, f"{what}: no value to check.")
    limit = cores * (1 + max(noise, MINIMUM_NOISE))
    if speedup <= cores:
        return Check("speedup within the cores", True,
                     f"{what}: {times(speedup)} with {cores} usable core(s), within the "
                     f"{cores}x that {cores} core(s) allow.")
    if speedup <= limit:
        return Check("speedup within the cores", True,
                     f"{what}: {times(speedup)} with {cores} usable core(s), above the "
                     f"{cores}x that {cores} core(s) allow, but within this run's noise.")
    return Check("speedup within the cores", False,
                 f"{what}: {times(speedup)} with only {cores} usable core(s). Computing on "
                 f"{cores} core(s) cannot be more than {cores}x faster than on one, so the "
                 "baseline was slowed by something else (noise): this run cannot say how "
                 "much the extra cores gave.")


# --- fork cost and break-even -----------------------------------------------------------


def fork_explains(forking_row: dict, threading_row: dict, fork_ms: float,
                  noise: float = MINIMUM_NOISE) -> str:
    """Explain forking's median latency against threading's in forks' worth.

    Its server loop forks one child at a time, so a request that arrives
    with others waits for their forks.  A difference within the noise is
    said to be one; *fork_ms* is the measured cost of one fork.
    """
    clients = forking_row["concurrency"]
    verdict = compare("forking", forking_row, "threading", threading_row, "p50_ms", noise)
    if not verdict.clear:
        return (f"With {clients} clients, forking's and threading's medians were not clearly "
                "different: their forks did not measurably hold requests up.")
    extra = forking_row["p50_ms"] - threading_row["p50_ms"]
    if extra < 0:
        return (f"With {clients} clients, forking's median was {show(-extra)} ms below "
                "threading's: its forks cost less than starting threads cost threading here.")
    if fork_ms <= 0 or extra < fork_ms / 2:
        return (f"With {clients} clients, forking's median was {show(extra)} ms above "
                f"threading's, less than half a fork ({show(fork_ms)} ms): not the forks.")
    return (f"With {clients} clients, forking's median was {show(extra)} ms above threading's: "
            f"about {extra / fork_ms:.0f} fork start-up(s) of {show(fork_ms)} ms. The server's "
            "loop forks one child at a time, so a request that arrives with others waits for "
            "their forks.")


@dataclass(frozen=True)
class BreakEven:
    """Where *b* starts to beat *a* as the work per request grows.

    *work_ms* is the work per request at which their throughputs cross,
    interpolated on log scales, when *b* clearly did better just above it
    (None otherwise); *between* is (low, high) when the crossing can only be
    placed in that range (low None: somewhere below high); *below_range* is
    True when *b* clearly did better at every level measured.  *levels* are
    (work_ms, ratio b/a, clear) per level.
    """

    a: str
    b: str
    work_ms: float | None
    below_range: bool
    levels: tuple
    sentence: str
    between: tuple | None = None


def break_even(summary: list, a: str, b: str, concurrency: int,
               noise: float = MINIMUM_NOISE) -> BreakEven:
    """Find the work per request (cpu workload) above which *b*'s throughput beats *a*'s.

    Reads the cpu rows of both servers at *concurrency*, one per work level.
    A crossing is claimed only where *b* is clearly better (bench.compare)
    at the level after it; a crossing between levels within the noise is
    said to be somewhere in that range.
    """
    rows_a = _cpu_rows(summary, a, concurrency)
    rows_b = _cpu_rows(summary, b, concurrency)
    shared = sorted(set(rows_a) & set(rows_b))
    if not shared:
        raise ValueError(f"no cpu rows of both {a} and {b} at {concurrency} clients")
    levels = tuple(
        (work, rows_b[work]["rps"] / rows_a[work]["rps"],
         compare(b, rows_b[work], a, rows_a[work], "rps", noise).clear)
        for work in shared
    )
    b_wins = [ratio > 1 and clear for _, ratio, clear in levels]
    lead = f"With {concurrency} clients, {b}"
    span = f"from {show(shared[0])} to {show(shared[-1])} ms of computing per request"
    crossing, between = _crossing(levels)
    if all(b_wins):
        sentence = (f"{lead} did clearly better than {a} at every level measured, {span}: "
                    f"the break-even is below {show(shared[0])} ms.")
    elif crossing is not None:
        sentence = (f"{lead} overtook {a} at about {show(crossing)} ms of computing per "
                    f"request (measured {span}).")
    elif between is not None and between[0] is None:
        sentence = (f"{lead} was clearly ahead of {a} from {show(between[1])} ms of computing "
                    f"per request on; below that the two were within the noise, so the "
                    f"break-even is somewhere below {show(between[1])} ms, perhaps below "
                    f"{show(shared[0])}.")
    elif between is not None:
        sentence = (f"{lead} overtook {a} somewhere between {show(between[0])} and "
                    f"{show(between[1])} ms of computing per request; closer than that, this "
                    "run's noise cannot say.")
    elif any(b_wins):
        won = [show(w) for (w, *_), wins in zip(levels, b_wins, strict=True) if wins]
        sentence = (f"{lead} did clearly better than {a} only at {', '.join(won)} ms, {span}: "
                    "no single break-even in this run.")
    else:
        sentence = (f"{lead} never clearly overtook {a} {span}: here its extra cost per "
                    "request was not paid back.")
    return BreakEven(a, b, crossing, all(b_wins), levels, sentence, between)


def _cpu_rows(summary: list, server: str, concurrency: int) -> dict:
    return {r["work_ms"]: r for r in summary
            if (r["server"], r["workload"], r["concurrency"]) == (server, "cpu", concurrency)
            and is_number(r["rps"]) and r["rps"] > 0}


def _crossing(levels: tuple) -> tuple:
    """(crossing, None) or (None, (low, high)) or (None, None) for the first rise above 1.

    The first level where b clearly wins, after levels where it did not:
    the crossing is interpolated if the level before shows a does at least
    as well (ratio <= 1); if the levels in between are within the noise,
    only the range is known (its low end None if b was never behind).
    """
    for index, (work, ratio, clear) in enumerate(levels):
        if not (ratio > 1 and clear) or index == 0:
            continue
        below_work, below_ratio, _ = levels[index - 1]
        if below_ratio <= 1:
            return _interpolate(below_work, below_ratio, work, ratio), None
        start = next((w for w, r, _ in reversed(levels[:index]) if r <= 1), None)
        return None, (start, work)
    return None, None


def _interpolate(work_1: float, ratio_1: float, work_2: float, ratio_2: float) -> float:
    """Where ratio reaches 1 between two levels: on log scales (linearly from 0 work)."""
    y1, y2 = math.log(ratio_1), math.log(ratio_2)
    if work_1 <= 0:
        return work_2 * (0 - y1) / (y2 - y1)
    x1, x2 = math.log(work_1), math.log(work_2)
    return math.exp(x1 + (x2 - x1) * (0 - y1) / (y2 - y1))


def break_even_model(fork_ms: float, thread_ms: float, cores: int) -> float:
    """The work per request (ms) at which forking's throughput should catch threading's.

    Threads compute one at a time (the GIL): 1 / (w + thread_ms) requests
    per ms.  Processes compute on *cores* cores but pay a fork each:
    cores / (w + fork_ms).  They are equal at
    w = (fork_ms - cores x thread_ms) / (cores - 1); infinite on one core.
    """
    if cores <= 1:
        return math.inf
    return max(0.0, (fork_ms - cores * thread_ms) / (cores - 1))


#: A measured break-even within this factor of the model's counts as agreeing:
#: the model ignores the load generator's share of the cores and the GIL's hand-offs.
MODEL_AGREEMENT_FACTOR = 2.0


def versus_model(found: BreakEven, model_ms: float) -> str:
    """Hold a measured break-even (bench.break_even()) against break_even_model()."""
    lowest = found.levels[0][0]
    ahead = found.below_range or found.work_ms is not None or found.between is not None
    if math.isinf(model_ms):
        return ("With one usable core the model says processes never pay for themselves"
                + ("; this run saw them ahead, which one core cannot explain: treat it as noise."
                   if ahead else ", and this run agrees."))
    where = (f"below the lowest level measured ({show(lowest)} ms)" if model_ms < lowest
             else f"near {show(model_ms)} ms")
    predicted = f"The model predicts a break-even {where}"
    if found.below_range:
        agrees = "which agrees" if model_ms <= lowest * MODEL_AGREEMENT_FACTOR else "earlier"
        return f"{predicted}; this run found it below {show(lowest)} ms, {agrees}."
    if found.between is not None:
        low, high = found.between
        if (low is None or model_ms >= low / MODEL_AGREEMENT_FACTOR) and model_ms <= high:
            return f"{predicted}; this run places it below {show(high)} ms, which agrees." \
                if low is None else \
                f"{predicted}; this run places it between {show(low)} and {show(high)} ms, " \
                "which agrees."
        return f"{predicted}; this run places it {_range(low, high)}, which does not agree."
    if found.work_ms is None:
        return f"{predicted}; this run found no clear crossing to compare it with."
    measured = f"this run found {show(found.work_ms)} ms"
    if model_ms <= 0 or found.work_ms / model_ms > MODEL_AGREEMENT_FACTOR:
        return (f"{predicted}; {measured}, later. Perhaps the processes had less than the whole "
                "machine: the load generator needs CPU too.")
    if model_ms / found.work_ms > MODEL_AGREEMENT_FACTOR:
        return (f"{predicted}; {measured}, earlier. Perhaps a fork costs the server's loop less "
                "than its whole start-up: part of it runs in the child, on another core.")
    return (f"{predicted}; {measured}, within {MODEL_AGREEMENT_FACTOR:g}x of it: "
            "the model holds.")


def _range(low: float | None, high: float) -> str:
    return f"below {show(high)} ms" if low is None else f"between {show(low)} and {show(high)} ms"
