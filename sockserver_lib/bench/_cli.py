"""The command line of the latency lab: ``python -m sockserver_lib.bench --out DIR``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._lab import CONNECTIONS, QUICK_ENV, SIZES, WORKLOADS, Settings, default_settings, run_lab
from ._progress import ProgressLine
from ._report import format_table, save_results
from ._server import SERVER_KINDS

DESCRIPTION = """\
Measure how socket servers (sync, threading, forking, a thread pool, pre-forked
workers, a select() loop, an asyncio server) answer under load.

Each server kind runs in its own process; a load generator in another process
sends requests from N clients at once and times each one.  The results are
saved in --out: results.csv (one line per server, workload, concurrency and
work per request: p50/p90/p99/mean latency in ms and requests per second,
each the median over the repetitions with its lowest and highest value in
<name>_low and <name>_high, the handler's own time service_ms, errors),
results.json (the machine, the settings and, unless --summary-only, the raw
timings of every request) and PNG figures, with the spread as error bars.
Progress goes to stderr, the final table to stdout.
"""

EPILOG = f"""\
workloads: none = no work (the server's own overhead); io = the handler waits
(like a slow disk or database); cpu = the handler computes in pure Python
(--cpu-sweep measures it at several sizes, to find where processes pay for
themselves); slow-sender = one client sends its request in pieces while the
others are fast; slow-reader = one client reads a large reply in pieces (a
server busy with either is "deaf" to the others); mixed = half the clients
compute, the others wait (do the waiters suffer?).  In the three workloads
with a special client, latency is the other clients'.

sizes: {", ".join(SIZES)}.  The default is full; --quick (or the environment
variable {QUICK_ENV}=1) is the smallest, about a minute; learner is what the
notebooks measure.
"""


def _names(text: str) -> tuple:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _numbers(text: str) -> tuple:
    try:
        return tuple(float(level) for level in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.2,1,5, got {text!r}") from None


def _levels(text: str) -> tuple:
    try:
        return tuple(int(level) for level in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,4,8, got {text!r}") from None


def _default(field: str) -> str:
    """Help text for a default that quick mode may change."""
    full, quick = (getattr(default_settings(q), field) for q in (False, True))
    show = (lambda v: ",".join(map(str, v))) if isinstance(full, tuple) else str
    if full == quick:
        return f"default: {show(full)}"
    return f"default: {show(full)}, or {show(quick)} in quick mode"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every option's help says its default."""
    parser = argparse.ArgumentParser(
        prog="python -m sockserver_lib.bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--out", metavar="DIR", default="bench-results",
        help="folder for results.csv, results.json and the PNG figures (default: bench-results)")
    how_much = parser.add_mutually_exclusive_group()
    how_much.add_argument(
        "--quick", action="store_true", default=None,
        help=f"a small run of about a minute: --size quick (also on when {QUICK_ENV}=1)")
    how_much.add_argument(
        "--size", choices=tuple(SIZES),
        help="how much to measure (default: full, or quick in quick mode)")
    add("--servers", type=_names, metavar="NAMES",
        help=f"server kinds, comma-separated, from: {', '.join(SERVER_KINDS)} (default: all)")
    add("--workloads", type=_names, metavar="NAMES",
        help=f"workloads, comma-separated, from: {', '.join(WORKLOADS)} (default: all)")
    add("--concurrency", type=_levels, metavar="LEVELS",
        help=f"numbers of clients at once, comma-separated ({_default('concurrency')})")
    add("--requests", type=int, metavar="N",
        help=f"at least N requests per measurement ({_default('requests')})")
    add("--rounds", type=int, metavar="N",
        help=f"and at least N requests per client ({_default('rounds')})")
    add("--repeats", type=int, metavar="N",
        help=f"measure each case N times, quote the median and the range "
             f"({_default('repeats')})")
    add("--no-warmup", dest="warmup", action="store_false", default=None,
        help="skip the unreported warm-up burst before each case")
    add("--connection", choices=CONNECTIONS,
        help="a new connection per request, or one kept open per client (default: per-request)")
    add("--io-ms", type=float, metavar="MS",
        help=f"how long the io handler waits, in ms ({_default('io_ms')})")
    add("--cpu-ms", type=float, metavar="MS",
        help=f"about how long the cpu handler computes, in ms ({_default('cpu_ms')})")
    add("--cpu-sweep", type=_numbers, metavar="MS",
        help="measure the cpu workload at each of these sizes, comma-separated, e.g. "
             "0.2,1,5,20,50 (default: only --cpu-ms)")
    add("--slow-pieces", type=int, metavar="N",
        help=f"the slow sender sends its request in N pieces ({_default('slow_pieces')})")
    add("--slow-pause-ms", type=float, metavar="MS",
        help=f"pause between the slow sender's pieces and the slow reader's reads, in ms "
             f"({_default('slow_pause_ms')})")
    add("--large-reply-kib", type=int, metavar="KIB",
        help=f"size of the slow reader's reply, in KiB ({_default('large_reply_kib')})")
    add("--timeout", type=float, metavar="S",
        help=f"seconds any socket operation may wait ({_default('timeout')})")
    add("--no-plots", dest="plots", action="store_false",
        help="do not draw the figures (no matplotlib needed)")
    add("--summary-only", dest="keep_requests", action="store_false",
        help="leave every request's timings out of results.json (a small file, e.g. to keep "
             "as reference results)")
    return parser


#: Options that map one to one onto Settings fields.
SETTINGS_OPTIONS = (
    "servers", "workloads", "concurrency", "requests", "rounds", "repeats", "warmup",
    "connection", "io_ms", "cpu_ms", "cpu_sweep", "slow_pieces", "slow_pause_ms",
    "large_reply_kib", "timeout",
)
#: Options whose Settings field has another name.
FIELD_OF = {"cpu_sweep": "cpu_sweep_ms"}


def settings_from(args: argparse.Namespace) -> Settings:
    """The Settings the parsed options ask for (unset ones keep their defaults)."""
    changes = {FIELD_OF.get(name, name): getattr(args, name) for name in SETTINGS_OPTIONS}
    size = "quick" if args.quick else args.size
    return default_settings(size=size, **{k: v for k, v in changes.items() if v is not None})


def main(argv: list | None = None) -> int:
    """Run the lab as the options say; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from(args)
    try:
        settings.validate()
    except ValueError as error:
        parser.error(str(error))
    started = time.monotonic()
    progress = ProgressLine(sys.stderr, notebook=False)
    try:
        results = run_lab(settings, progress=progress)
    except KeyboardInterrupt:
        print("\ninterrupted: every server and load process was stopped", file=sys.stderr)
        return 130
    finally:
        progress.finish()
    files = save_results(results, args.out, requests=args.keep_requests)
    if args.plots:
        from ..plots import save_figures  # matplotlib only when figures are wanted

        files.update(save_figures(results, args.out))
    _report(results, files, time.monotonic() - started)
    return 0


def _report(results, files: dict, seconds: float) -> None:
    machine = results.machine
    print(format_table(results.summary))
    print(
        f"\nPython {machine['python']} ({machine['implementation']}), "
        f"{machine['usable_cpus']} usable CPUs of {machine['cpu_count']}, {machine['platform']}"
    )
    for path in files.values():
        print(f"wrote {Path(path)}")
    print(f"took {seconds:.1f} s")
