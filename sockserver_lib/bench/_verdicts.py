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

from ._stats import is_number

#: The smallest noise floor used, even when an A/A run agreed more closely:
#: two runs that agree once by luck do not prove a 1% precision.
MINIMUM_NOISE = 0.10
#: Little's law: with N clients in a closed loop, throughput x mean latency
#: is at most N; below this fraction of N the run was too short or starved.
LITTLE_LOWEST_FRACTION = 0.7
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
    ValueError if no cell is in both.
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
                where[row["workload"]] = f"{WHAT[metric]} at {row['concurrency']} clients"
    if not observed:
        raise ValueError("the two runs have no cell in common: measure the same cases twice")
    server = again[0]["server"]
    parts = ", ".join(f"{observed[w]:.0%} on {w} ({where[w]})" for w in observed)
    sentence = (f"Measured twice, the same {server} server differed by up to {parts}. "
                "A difference between two servers counts only if it is larger than the "
                f"noise of its workload (and at least {MINIMUM_NOISE:.0%}: one lucky "
                "agreement proves little).")
    return Noise(observed=observed, where=where, sentence=sentence)


def _cell(row: dict) -> tuple:
    return row["server"], row["workload"], row["connection"], row["concurrency"], row["work_ms"]


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
    if None in (low_a, high_a, low_b, high_b):
        return False  # no spread recorded: judge by the noise floor alone
    return low_a <= high_b and low_b <= high_a


def compare(a: str, row_a: dict, b: str, row_b: dict, metric: str = "p50_ms",
            noise: float = MINIMUM_NOISE) -> Comparison:
    """Compare two summary rows on *metric*, with a sentence whose words the numbers choose.

    The difference is clear when the ratio is beyond the noise floor
    (*noise*, relative) and the ranges over repetitions do not overlap.
    """
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
        why = (f"within this run's noise (±{noise:.0%})" if not beyond_noise
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


def littles_law(row: dict) -> Check:
    """Little's law on a closed-loop row: throughput x mean latency should be close to N.

    Each of N clients is always either waiting for a reply or about to send
    the next request, so about N requests are in flight: rps x mean latency
    (in seconds) ~ N, a little under it because the queue drains at the end
    of a run.  Much less means the clients spent their time elsewhere: a
    run too short, or a load generator starved of CPU.
    """
    clients = row["concurrency"]
    in_flight = row["rps"] * row["mean_ms"] / 1000
    product = (f"{show(row['rps'])} req/s x {show(row['mean_ms'])} ms = {in_flight:.1f} "
               f"requests in flight")
    if in_flight > clients * 1.05:
        return Check("Little's law", False,
                     f"{row['server']}, {row['workload']}: {product}, more than the {clients} "
                     "clients there were. That is impossible in a closed loop: the clocks or "
                     "the run are wrong; do not use this row.")
    if in_flight >= clients * LITTLE_LOWEST_FRACTION:
        return Check("Little's law", True,
                     f"{row['server']}, {row['workload']}: {product}, close to the {clients} "
                     "clients (a little under: the queue drains at the end of a run).")
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
    limit = cores * (1 + noise)
    if speedup <= limit:
        return Check("speedup within the cores", True,
                     f"{what}: {times(speedup)} with {cores} usable core(s), within the "
                     f"{cores}x that {cores} core(s) allow.")
    return Check("speedup within the cores", False,
                 f"{what}: {times(speedup)} with only {cores} usable core(s). Computing on "
                 f"{cores} core(s) cannot be more than {cores}x faster than on one, so the "
                 "baseline was slowed by something else (noise): this run cannot say how "
                 "much the extra cores gave.")


# --- fork cost and break-even -----------------------------------------------------------


def fork_explains(forking_row: dict, threading_row: dict, fork_ms: float) -> str:
    """Explain forking's extra median latency over threading in forks' worth.

    Its server loop forks one child at a time, so a request that arrives
    with others waits for their forks.
    """
    extra = forking_row["p50_ms"] - threading_row["p50_ms"]
    clients = forking_row["concurrency"]
    if fork_ms <= 0 or extra < fork_ms / 2:
        return (f"With {clients} clients, forking's median ({show(forking_row['p50_ms'])} ms) "
                f"was within half a fork ({show(fork_ms)} ms) of threading's "
                f"({show(threading_row['p50_ms'])} ms): its forks did not hold requests up.")
    forks = extra / fork_ms
    return (f"With {clients} clients, forking's median was {show(extra)} ms above threading's: "
            f"about {forks:.0f} fork start-up(s) of {show(fork_ms)} ms. The server's loop forks "
            "one child at a time, so a request that arrives with others waits for their forks.")


@dataclass(frozen=True)
class BreakEven:
    """Where *b* starts to beat *a* as the work per request grows.

    *work_ms* is the interpolated work per request at which their
    throughputs cross (None if they do not cross in the range measured);
    *levels* are (work_ms, ratio b/a, clear) for each level measured.
    """

    a: str
    b: str
    work_ms: float | None
    levels: tuple
    sentence: str


def break_even(summary: list, a: str, b: str, concurrency: int,
               noise: float = MINIMUM_NOISE) -> BreakEven:
    """Find the work per request (cpu workload) above which *b*'s throughput beats *a*'s.

    Reads the cpu rows of both servers at *concurrency*, one per work level;
    the crossing is interpolated on log scales between the last level where
    *a* did at least as well and the first where *b* did better.
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
    crossing = _crossing(levels)
    span = f"from {show(shared[0])} to {show(shared[-1])} ms of computing per request"
    if crossing is not None:
        sentence = (f"With {concurrency} clients, {b} overtook {a} at about {show(crossing)} ms "
                    f"of computing per request (measured {span}).")
    elif all(ratio > 1 for _, ratio, _ in levels):
        sentence = (f"With {concurrency} clients, {b} did better than {a} at every level "
                    f"measured, {span}: the break-even is below {show(shared[0])} ms.")
    else:
        sentence = (f"With {concurrency} clients, {b} never overtook {a} {span}: here its "
                    "extra cost per request was never paid back.")
    unclear = [work for work, _, clear in levels if not clear]
    if unclear:
        sentence += (f" At {', '.join(show(w) for w in unclear)} ms the two were within this "
                     "run's noise.")
    return BreakEven(a, b, crossing, levels, sentence)


def _cpu_rows(summary: list, server: str, concurrency: int) -> dict:
    return {r["work_ms"]: r for r in summary
            if (r["server"], r["workload"], r["concurrency"]) == (server, "cpu", concurrency)
            and is_number(r["rps"]) and r["rps"] > 0}


def _crossing(levels: tuple) -> float | None:
    """The work where ratio b/a first goes from <= 1 to > 1, interpolated on log scales."""
    for (work_1, ratio_1, _), (work_2, ratio_2, _) in zip(levels, levels[1:], strict=False):
        if ratio_1 <= 1 < ratio_2 and work_1 > 0:
            x1, x2 = math.log(work_1), math.log(work_2)
            y1, y2 = math.log(ratio_1), math.log(ratio_2)
            return math.exp(x1 + (x2 - x1) * (0 - y1) / (y2 - y1))
    return None


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


def versus_model(measured_ms: float | None, model_ms: float) -> str:
    """Hold a measured break-even (None: no crossing found) against break_even_model()."""
    if math.isinf(model_ms):
        return "With one usable core the model says processes never pay for themselves here."
    predicted = f"The model predicts a break-even near {show(model_ms)} ms"
    if measured_ms is None:
        return f"{predicted}; this run found no crossing in the range it measured."
    found = f"this run found {show(measured_ms)} ms"
    if model_ms <= 0 or measured_ms / model_ms > MODEL_AGREEMENT_FACTOR:
        return (f"{predicted}; {found}, later: the load generator needs CPU too, so the "
                "processes had less than the whole machine to themselves.")
    if model_ms / measured_ms > MODEL_AGREEMENT_FACTOR:
        return (f"{predicted}; {found}, earlier: a fork costs the server's loop less than "
                "its whole start-up (part of it runs in the child, on the other core).")
    return f"{predicted}; {found}, within {MODEL_AGREEMENT_FACTOR:g}x of it: the model holds."
