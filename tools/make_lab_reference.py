"""Measure the latency lab's reference results, shown in notebooks 10 and 12 beside a learner's run.

    python tools/make_lab_reference.py             # the full settings: about 30 minutes
    python tools/make_lab_reference.py learner     # a smaller run: about 3 minutes

Writes notebooks/reference/lab-full.json (every server kind and workload,
at 1 to 32 clients) and
notebooks/reference/lab-sweep.json (the cpu work sweep of threading, forking
and prefork), summaries only, with the machine they were measured on.  Run
it on an otherwise idle machine.  The notebooks print the settings they
find in these files, so they stay right if you change them here.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from sockserver_lib import bench

REFERENCE = Path(__file__).resolve().parent.parent / "notebooks" / "reference"
#: The cpu work per request the sweep measures, in ms.
SWEEP_MS = (0.2, 1, 5, 20, 50)


def sweep_settings(base: bench.Settings, cores: int) -> bench.Settings:
    """The break-even sweep: the kinds that fork or not, at cores and twice as many clients."""
    kinds = tuple(k for k in ("threading", "forking", "prefork") if k in bench.SERVER_KINDS)
    return replace(base, servers=kinds, workloads=("cpu",), concurrency=(cores, 2 * cores),
                   cpu_sweep_ms=SWEEP_MS)


def measure(name: str, settings: bench.Settings) -> None:
    """Run *settings* with a progress line; save the summary as REFERENCE/<name>.json."""
    progress = bench.progress_line()
    results = bench.run_lab(settings, progress=progress)
    progress.finish()
    path = REFERENCE / f"{name}.json"
    bench.save_results(results, REFERENCE / name, requests=False)
    (REFERENCE / name / "results.json").replace(path)
    (REFERENCE / name / "results.csv").replace(REFERENCE / f"{name}.csv")
    (REFERENCE / name).rmdir()
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list) -> int:
    full = bench.default_settings(size=argv[0] if argv else "full")
    measure("lab-full", full)
    measure("lab-sweep", sweep_settings(full, bench.machine_info()["usable_cpus"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
