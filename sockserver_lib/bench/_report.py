"""Saving and showing lab results: the CSV, the JSON of raw timings, a text table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ._lab import LabResults
from ._stats import SUMMARY_COLUMNS

CSV_NAME = "results.csv"
JSON_NAME = "results.json"
#: The columns of format_table(): the CSV's, and "<name>_range" for the
#: lowest..highest of a statistic over repetitions.
TABLE_COLUMNS = ("server", "workload", "concurrency", "work_ms", "p50_ms", "p50_ms_range",
                 "p99_ms", "rps", "rps_range", "errors")
#: The columns that hold names rather than numbers.
NAME_COLUMNS = ("server", "workload", "connection")
#: What a saved JSON holds: the fields of LabResults.
JSON_FIELDS = ("machine", "settings", "summary", "measurements", "requests")


def save_results(results: LabResults, out_dir: str | Path, requests: bool = True) -> dict:
    """Write the summary CSV and the JSON of everything into *out_dir*.

    Returns ``{"csv": path, "json": path}``.  A value that could not be
    measured is an empty cell in the CSV.  The JSON holds machine,
    settings, summary, measurements and (unless *requests* is False, for a
    small file such as the notebooks' reference results) every request; a
    NaN (no successful request to measure) is written as null.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / CSV_NAME, out / JSON_NAME
    with open(csv_path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(_nan_to_none(results.summary))  # no value: an empty cell
    everything = {name: getattr(results, name) for name in JSON_FIELDS}
    if not requests:
        everything["requests"] = []
    with open(json_path, "w", encoding="utf-8") as file:
        json.dump(_nan_to_none(everything), file, indent=1)
    return {"csv": csv_path, "json": json_path}


def load_results(path: str | Path) -> LabResults:
    """Read back what save_results() wrote (give the JSON file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    return LabResults(**{name: _nones_to_nan(name, data.get(name, [])) for name in JSON_FIELDS})


def _nones_to_nan(name: str, records):
    """Summary records as summarise() made them: null (no value) read back as NaN."""
    if name != "summary":
        return records
    return [{key: math.nan if value is None else value for key, value in record.items()}
            for record in records]


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(item) for item in value]
    return value


def format_table(summary: list, columns: tuple = TABLE_COLUMNS) -> str:
    """The summary records as an aligned text table, one line per record.

    A column "<name>_range" shows the lowest..highest of <name> over the
    repetitions (e.g. ``20.1..22.4``).
    """
    rows = [list(columns)] + [[_value(record, column) for column in columns]
                              for record in summary]
    widths = [max(len(row[index]) for row in rows) for index in range(len(columns))]
    return "\n".join(_align(row, widths, columns) for row in rows)


def _value(record: dict, column: str) -> str:
    if column.endswith("_range"):
        name = column[: -len("_range")]
        return f"{_cell(record.get(name + '_low'))}..{_cell(record.get(name + '_high'))}"
    return _cell(record.get(column))


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _align(cells: list, widths: list, columns: tuple) -> str:
    # names to the left, numbers to the right, as a reader scans them
    parts = [
        cell.ljust(width) if column in NAME_COLUMNS else cell.rjust(width)
        for cell, width, column in zip(cells, widths, columns, strict=True)
    ]
    return "  ".join(parts).rstrip()
