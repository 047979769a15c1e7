"""Numbers from timings: percentiles, one measurement's statistics, and their spread over repeats.

A case is measured several times (repetitions); the summary quotes the
median over the repetitions, and the lowest and highest value next to it
(``p50_ms_low``, ``p50_ms_high``...): that range is the noise a reader must
see before believing a difference.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

#: The statistics of one measurement that the summary quotes with their spread.
SPREAD_STATISTICS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "rps")
#: What identifies one cell of the lab: a server, a workload, a connection
#: mode, a concurrency, and the work each request asks for (in ms).
CELL_KEYS = ("server", "workload", "connection", "concurrency", "work_ms")
#: The columns of a summary record, in CSV order.
SUMMARY_COLUMNS = (
    *CELL_KEYS, "repeats", "requests",
    *(f"{name}{end}" for name in SPREAD_STATISTICS for end in ("", "_low", "_high")),
    "service_ms", "special_p50_ms", "errors",
)


def percentile(values: Iterable[float], fraction: float) -> float:
    """The *fraction* (0 to 1) percentile of *values*, interpolating between ranks.

    Same as numpy's default ("linear"): percentile([10, 20], 0.5) == 15.0.
    NaN when there are no values.
    """
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    weight = position - below
    return ordered[below] * (1 - weight) + ordered[above] * weight


def latency_ms(request: dict) -> float:
    """What the client waited: from sending (or connecting) to the whole reply."""
    return request["received"] - request["sent"]


def service_time_ms(request: dict) -> float:
    """How long the handler worked on *request*: from reading it to the end of its reply."""
    return request["finished"] - request["started"]


def _round(value: float, digits: int = 3) -> float:
    return value if math.isnan(value) else round(value, digits)


def measurement_stats(result: dict) -> dict:
    """The statistics of one measurement.

    Latency (p50/p90/p99/mean, ms) is that of the successful requests of the
    *ordinary* clients: in a workload with special clients (a slow one, or
    CPU-bound neighbours) it is what everybody else waited, and
    ``special_p50_ms`` is the special clients' median.  ``rps`` is all
    successful requests per second of the measurement's elapsed time;
    ``service_ms`` the median time a handler worked on an ordinary request.
    """
    done = [r for r in result["requests"] if r["error"] is None]
    ordinary = [r for r in done if not r.get("special")]
    latencies = [latency_ms(r) for r in ordinary]
    seconds = result["elapsed_ms"] / 1000
    return {
        "requests": len(result["requests"]),
        "p50_ms": _round(percentile(latencies, 0.50)),
        "p90_ms": _round(percentile(latencies, 0.90)),
        "p99_ms": _round(percentile(latencies, 0.99)),
        "mean_ms": _round(statistics.fmean(latencies)) if latencies else math.nan,
        "rps": round(len(done) / seconds, 1) if seconds > 0 else 0.0,
        "service_ms": _round(percentile([service_time_ms(r) for r in ordinary], 0.5)),
        "special_p50_ms": _round(percentile([latency_ms(r) for r in done if r.get("special")],
                                            0.5)),
        "errors": len(result["requests"]) - len(done),
    }


def is_number(value) -> bool:
    """True for a measured value: not None, not NaN."""
    return value is not None and not math.isnan(value)


def numbers(values: Iterable[float]) -> list:
    """The values that are numbers (no None, no NaN)."""
    return [v for v in values if is_number(v)]


def median_of(values: Iterable[float]) -> float:
    """The median of the values that are numbers (NaN if none is)."""
    found = numbers(values)
    return statistics.median(found) if found else math.nan


def spread_of(values: Iterable[float]) -> tuple:
    """(lowest, median, highest) of the values that are numbers (NaNs if none is)."""
    found = numbers(values)
    if not found:
        return math.nan, math.nan, math.nan
    return min(found), statistics.median(found), max(found)


def summarise(measurements: list) -> list:
    """One summary record per cell (CELL_KEYS) from per-repetition records.

    Each input record has CELL_KEYS and measurement_stats()'s fields.  A
    summary quotes, for each statistic in SPREAD_STATISTICS, the median over
    repetitions and the lowest and highest (``_low``, ``_high``); the
    medians of ``service_ms`` and ``special_p50_ms``; the totals of requests
    and errors.  Cells keep the order in which they were first measured.
    """
    cells: dict = {}
    for record in measurements:
        cells.setdefault(tuple(record[key] for key in CELL_KEYS), []).append(record)
    summary = []
    for key, repeats in cells.items():
        row = dict(zip(CELL_KEYS, key, strict=True))
        row["repeats"] = len(repeats)
        row["requests"] = sum(r["requests"] for r in repeats)
        for name in SPREAD_STATISTICS:
            low, middle, high = spread_of(r[name] for r in repeats)
            digits = 1 if name == "rps" else 3  # a median of two is their mean: no float noise
            row.update({name: _round(middle, digits), f"{name}_low": low, f"{name}_high": high})
        for name in ("service_ms", "special_p50_ms"):
            row[name] = _round(median_of(r[name] for r in repeats))
        row["errors"] = sum(r["errors"] for r in repeats)
        summary.append({column: row[column] for column in SUMMARY_COLUMNS})
    return summary
