"""Measure the latency lab's reference results, shown in notebooks 10 and 12 beside a learner's run.

    python tools/make_lab_reference.py             # the full settings: about 15 minutes
    python tools/make_lab_reference.py learner     # a smaller run: about 3 minutes

Writes notebooks/reference/lab-full.json and .csv (every server kind and
workload, at every concurrency of the size) and lab-sweep.json and .csv
(bench.sweep_settings(): the cpu work sweep of threading, forking and
prefork), summaries only, with the machine they were measured on.  Run
it on an otherwise idle machine.  The notebooks print the settings they
find in these files, so they stay right if you change them here.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sockserver_lib import bench

REFERENCE = Path(__file__).resolve().parent.parent / "notebooks" / "reference"


def sweep_settings(base: bench.Settings, cores: int) -> bench.Settings:
    """The break-even sweep: the kinds that fork or not, at cores and twice as many clients."""
    kinds = tuple(k for k in ("threading", "forking", "prefork") if k in bench.SERVER_KINDS)
    return bench.sweep_settings(base, kinds, (cores, 2 * cores))


def measure(name: str, settings: bench.Settings) -> None:
    """Run *settings* with a progress line; save the summary as REFERENCE/<name>.json."""
    progress = bench.ProgressLine()
    results = bench.run_lab(settings, progress=progress)
    progress.finish()
    with tempfile.TemporaryDirectory() as scratch:
        files = bench.save_results(results, scratch, requests=False)
        for kind, path in files.items():
            Path(path).replace(REFERENCE / f"{name}.{kind}")
    print(f"wrote {REFERENCE / name}.json and .csv", file=sys.stderr)


def main(argv: list) -> int:
    full = bench.default_settings(size=argv[0] if argv else "full")
    measure("lab-full", full)
    measure("lab-sweep", sweep_settings(full, bench.machine_info()["usable_cpus"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
