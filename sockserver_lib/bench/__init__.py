"""Layer 10, the latency lab: how fast do sync, threading, forking, pool, select() and asyncio
servers answer?

Run it from a shell (``python -m sockserver_lib.bench --help``) or call
run_lab() from a notebook; plot the results with sockserver_lib.plots.

How a run is arranged, and why::

    coordinator (your notebook, or python -m sockserver_lib.bench)
      |-- spawns --> server process: one server kind, serve_forever() in its only thread
      |-- spawns --> load-generator process: N client threads, each timing round trips
      <-- pipe ----- one result per measurement, as it finishes

- The server and the load generator are separate processes, so they do
  not take turns on one GIL, and fresh ("spawn") ones, so a forking server
  never forks a threaded process or a Jupyter kernel.
- One clock: time.monotonic_ns() reads CLOCK_MONOTONIC, which every
  process on the machine shares.  The client notes when it sent a request
  and got the reply; the server's handler (TimedHandler) replies with when
  the connection was accepted, when it started and finished, and which
  thread or process did it.  Together they give each request's timeline.
- A measurement is a burst of requests from N clients at once, each client
  sending its next request when its previous reply arrives.  Each is
  repeated (after a warm-up) and the median over repetitions is quoted.
- Everything is bounded: a timeout on every socket, a limit on how long
  the coordinator waits for news, and every process stopped and joined
  however the run ends.

The workloads (WORKLOADS): "none" (pure overhead), "io" (the handler
sleeps, like waiting for a disk or a database), "cpu" (the handler computes
in pure Python; Settings.cpu_sweep_ms measures it at several sizes),
"slow-sender" and "slow-reader" (one client sends its request, or reads its
large reply, in pieces while the others are fast: a synchronous server
busy with it is "deaf" to them, as the socketserver docs warn), "mixed"
(half the clients compute, the others wait: with threads, the waiters queue
for the GIL behind the computers).

Verdicts and sanity checks (compare, noise_floor, littles_law,
sync_queue_model, within_cores, break_even) turn results into sentences
whose words the numbers choose.

Server kinds are looked up by name in SERVER_KINDS; adding one is one line.
"""

from ._lab import (
    CONNECTIONS,
    QUICK_ENV,
    SIZES,
    SPECIAL_WORKLOADS,
    SWEEP_MS,
    WORKLOADS,
    LabResults,
    Settings,
    calibrate_cpu,
    default_settings,
    machine_info,
    make_plan,
    notebook_size,
    quick_mode,
    run_lab,
    sweep_settings,
)
from ._load import Measurement, run_measurement
from ._progress import ProgressLine
from ._report import format_table, load_results, save_results
from ._server import SERVER_KINDS, TimedHandler, running_server
from ._stats import SUMMARY_COLUMNS, percentile, summarise
from ._verdicts import (
    BreakEven,
    Check,
    Comparison,
    Noise,
    break_even,
    break_even_model,
    compare,
    fork_explains,
    littles_law,
    noise_floor,
    sync_queue_model,
    versus_model,
    within_cores,
)

__all__ = [
    "CONNECTIONS", "QUICK_ENV", "SERVER_KINDS", "SIZES", "SPECIAL_WORKLOADS", "SUMMARY_COLUMNS",
    "SWEEP_MS", "WORKLOADS", "BreakEven", "Check", "Comparison", "LabResults", "Measurement",
    "Noise", "ProgressLine", "Settings", "TimedHandler", "break_even", "break_even_model",
    "calibrate_cpu", "compare", "default_settings", "fork_explains", "format_table",
    "littles_law", "load_results", "machine_info", "make_plan", "noise_floor", "notebook_size",
    "percentile", "quick_mode", "run_lab", "run_measurement", "running_server", "save_results",
    "summarise", "sweep_settings", "sync_queue_model", "versus_model", "within_cores",
]
