"""Numbers from timings: percentiles, one measurement's statistics, medians over repetitions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

#: The columns of a summary record, in CSV order.
SUMMARY_COLUMNS = (
    "server", "workload", "connection", "concurrency", "repeats", "requests",
    "p50_ms", "p90_ms", "p99_ms", "mean_ms", "rps", "errors",
)
#: The statistics quoted as the median over repetitions.
MEDIAN_OVER_REPEATS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "rps")
#: What identifies one cell of the lab: a server, a workload, a connection mode, a concurrency.
CELL_KEYS = ("server", "workload", "connection", "concurrency")


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


def measurement_stats(result: dict) -> dict:
    """p50/p90/p99/mean latency (ms) of the successful requests, throughput, errors.

    Throughput (``rps``) is successful requests per second of the
    measurement's elapsed time.
    """
    latencies = [latency_ms(r) for r in result["requests"] if r["error"] is None]
    seconds = result["elapsed_ms"] / 1000
    return {
        "requests": len(result["requests"]),
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p90_ms": round(percentile(latencies, 0.90), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "mean_ms": round(statistics.fmean(latencies), 3) if latencies else math.nan,
        "rps": round(len(latencies) / seconds, 1) if seconds > 0 else 0.0,
        "errors": len(result["requests"]) - len(latencies),
    }


def median_of(values: Iterable[float]) -> float:
    """The median of the values that are numbers (NaN if none is)."""
    numbers = [v for v in values if not math.isnan(v)]
    return statistics.median(numbers) if numbers else math.nan


def summarise(measurements: list) -> list:
    """One summary record per cell (CELL_KEYS) from per-repetition records.

    Each input record has CELL_KEYS and measurement_stats()'s fields.  A
    summary quotes the median over repetitions of each statistic in
    MEDIAN_OVER_REPEATS, and the totals of requests and errors; cells keep
    the order in which they were first measured.
    """
    cells: dict = {}
    for record in measurements:
        cells.setdefault(tuple(record[key] for key in CELL_KEYS), []).append(record)
    summary = []
    for key, repeats in cells.items():
        row = dict(zip(CELL_KEYS, key, strict=True))
        row["repeats"] = len(repeats)
        row["requests"] = sum(r["requests"] for r in repeats)
        for column in MEDIAN_OVER_REPEATS:
            row[column] = median_of(r[column] for r in repeats)
        row["errors"] = sum(r["errors"] for r in repeats)
        summary.append({column: row[column] for column in SUMMARY_COLUMNS})
    return summary
