"""Soak: the fault suite's scenario, longer, on every server kind, round after round.

    python benchmarks/soak.py                          # 3 rounds x 2000 requests per kind
    python benchmarks/soak.py --kinds tcp-threading,udp-forking --requests 20000
    python benchmarks/soak.py --help

Each round serves each kind in a fresh process, exactly as
tests/test_faults.py does (the same clients, faults and checks, imported
from it): silent clients, then --requests requests from --clients threads,
good ones mixed with faults, a last good request, then a shutdown under
load.  The server's own report must show every fault accounted for, and
its descriptors, threads and child processes back where they started.
Rounds use different seeds; the run stops starting rounds after
--duration seconds.  Prints one line per kind and round (requests per
second, the server's resident memory before and after), then the totals;
exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from time import monotonic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_faults as faults  # noqa: E402 - the suite's scenario, from tests/

#: The most requests per kind and round, and the most rounds: a soak is long, not endless.
MAX_REQUESTS, MAX_ROUNDS = 1_000_000, 1000


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/soak.py",
        description="Run the fault suite's scenario longer, on every server kind.",
    )
    parser.add_argument("--kinds", default="all",
                        help="comma-separated kind ids, or 'all': "
                             + ", ".join(kind.id for kind in faults.KINDS))
    parser.add_argument("--requests", type=int, default=2000,
                        help=f"requests per kind and round (default 2000, at most {MAX_REQUESTS})")
    parser.add_argument("--rounds", type=int, default=3,
                        help=f"rounds over the kinds (default 3, at most {MAX_ROUNDS})")
    parser.add_argument("--clients", type=int, default=8,
                        help="client threads sending at once (default 8)")
    parser.add_argument("--duration", type=float, default=600,
                        help="start no round after this many seconds (default 600)")
    parser.add_argument("--seed", type=int, default=faults.SEED,
                        help=f"seed of round 1; round n uses seed + n - 1 (default {faults.SEED})")
    options = parser.parse_args(argv)
    if not 1 <= options.requests <= MAX_REQUESTS or not 1 <= options.rounds <= MAX_ROUNDS:
        parser.error(f"--requests must be 1..{MAX_REQUESTS} and --rounds 1..{MAX_ROUNDS}")
    if not 1 <= options.clients <= 64:
        parser.error("--clients must be 1..64")
    return options


def chosen_kinds(names: str) -> list[faults.FaultKind]:
    if names == "all":
        return list(faults.KINDS)
    unknown = [name for name in names.split(",") if name not in faults.KINDS_BY_ID]
    if unknown:
        sys.exit(f"unknown kinds {unknown}; see --help")
    return [faults.KINDS_BY_ID[name] for name in names.split(",")]


def soak_one(kind: faults.FaultKind, options: argparse.Namespace, seed: int) -> tuple[dict, str]:
    """Run one kind once; return (its figures, "" or why it failed)."""
    try:
        run = faults.run_kind(kind, options.requests, options.clients, seed)
        faults.check_kind_run(run)
    except (AssertionError, OSError, TimeoutError, RuntimeError) as error:
        return {"kinds": 1, "failed": 1}, f"{type(error).__name__}: {str(error)[:300]}"
    figures = faults.figures(run)
    rate = len(run.outcomes) / run.seconds
    before, after = run.report["before"]["resident_kb"], run.report["after"]["resident_kb"]
    memory = "" if before is None else f" memory {before / 1024:.0f} -> {after / 1024:.0f} MB"
    print(f"  {kind.id:42} {len(run.outcomes):7} requests {rate:6.0f}/s "
          f"faults {figures['faults']:6} lost {figures['lost']}{memory}", flush=True)
    return figures, ""


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    kinds = [kind for kind in chosen_kinds(options.kinds) if not kind.unavailable_reason()]
    totals: collections.Counter = collections.Counter()
    start = monotonic()
    for number in range(options.rounds):
        if monotonic() - start > options.duration:
            print(f"--duration {options.duration:g} s reached: no more rounds")
            break
        print(f"round {number + 1} (seed {options.seed + number})", flush=True)
        for kind in kinds:
            figures, problem = soak_one(kind, options, options.seed + number)
            totals.update(figures)
            if problem:
                print(f"  {kind.id:42} FAILED: {problem}", flush=True)
    print(f"soak: {totals['requests']} requests, {totals['faults']} faults injected, "
          f"{totals['lost']} lost, {totals['failed']} failed runs of {totals['kinds']}, "
          f"{monotonic() - start:.0f} s")
    return 1 if totals["failed"] or totals["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
