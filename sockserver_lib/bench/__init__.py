"""Layer 10, the latency lab: how fast do sync, threading, forking, pool and select() servers
answer?

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
sleeps, like waiting for a disk or a database), "cpu" (the handler
computes in pure Python), "slow-client" (one client trickles its request
in pieces while the others are fast: a synchronous server waiting for it is
"deaf" to them, as the socketserver docs warn).

Server kinds are looked up by name in SERVER_KINDS; adding one is one line.
"""

from ._lab import (
    CONNECTIONS,
    QUICK_ENV,
    WORKLOADS,
    LabResults,
    Settings,
    calibrate_cpu,
    default_settings,
    machine_info,
    make_plan,
    quick_mode,
    run_lab,
)
from ._load import Measurement, run_measurement
from ._report import format_table, load_results, save_results
from ._server import SERVER_KINDS, TimedHandler, running_server
from ._stats import SUMMARY_COLUMNS, percentile, summarise

__all__ = [
    "CONNECTIONS", "QUICK_ENV", "SERVER_KINDS", "SUMMARY_COLUMNS", "WORKLOADS",
    "LabResults", "Measurement", "Settings", "TimedHandler",
    "calibrate_cpu", "default_settings", "format_table", "load_results",
    "machine_info", "make_plan", "percentile", "quick_mode", "run_lab",
    "run_measurement", "running_server", "save_results", "summarise",
]
