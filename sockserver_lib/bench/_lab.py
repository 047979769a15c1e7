"""The coordinator of the latency lab: what to measure, and running it.

run_lab() measures one server kind at a time: it starts the server in a
fresh process, then a load-generator process that runs the plan against
it, and collects each measurement as it arrives.  Both processes are
stopped when the server's turn is over, or on any error or Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._load import Measurement, running_load
from ._server import PROCESS_TIMEOUT, SERVER_KINDS, burn_cpu, running_server
from ._stats import measurement_stats, summarise

#: The workloads: "none" (pure overhead), "io" (the handler waits, like a slow
#: disk or database), "cpu" (the handler computes in pure Python);
#: "slow-sender" and "slow-reader" (no work, but one client sends its request,
#: or reads its large reply, in pieces with pauses while the others are fast:
#: whoever waits for it is "deaf"); "mixed" (half the clients ask for
#: computing, the others for waiting: do the waiters suffer?).
WORKLOADS = ("none", "io", "cpu", "slow-sender", "slow-reader", "mixed")
#: The workloads with special clients; their latency is the ordinary clients'.
SPECIAL_WORKLOADS = ("slow-sender", "slow-reader", "mixed")
#: How clients use connections: a new one per request, or one kept open.
CONNECTIONS = ("per-request", "persistent")
#: Set this environment variable to 1 for small, fast runs (tests and CI do).
QUICK_ENV = "SOCKSERVER_KIT_QUICK"


def _registered_kinds() -> tuple:
    return tuple(SERVER_KINDS)


@dataclass(frozen=True)
class Settings:
    """What the lab measures, and how much.

    Every server in *servers* (names in SERVER_KINDS) is measured with every
    workload in *workloads* at every level in *concurrency* (clients at
    once; the workloads with special clients start at 2), *repeats* times
    after one warm-up burst.  A measurement has
    ``requests_per_measurement(concurrency)`` requests.  *io_ms* and
    *cpu_ms* size the handler's work; if *cpu_sweep_ms* is not empty, the
    cpu workload is measured at each of its levels instead of *cpu_ms*.
    The slow sender sends its request in *slow_pieces* pieces
    *slow_pause_ms* apart; the slow reader asks for *large_reply_kib* KiB and
    reads them SLOW_READ_CHUNK bytes at a time, *slow_pause_ms* apart.
    Clients open a new connection per request, or keep one open
    (*connection*).  Every socket operation waits at most *timeout* seconds.
    """

    servers: tuple = field(default_factory=_registered_kinds)
    workloads: tuple = WORKLOADS
    concurrency: tuple = (1, 2, 4, 8, 16, 32)
    requests: int = 40
    rounds: int = 8
    repeats: int = 5
    warmup: bool = True
    connection: str = "per-request"
    io_ms: float = 20.0
    cpu_ms: float = 5.0
    cpu_sweep_ms: tuple = ()
    slow_pieces: int = 4
    slow_pause_ms: float = 5.0
    large_reply_kib: int = 256
    timeout: float = 30.0

    def requests_per_measurement(self, concurrency: int) -> int:
        """At least *requests* in all, and at least *rounds* for each client."""
        return max(self.requests, self.rounds * concurrency)

    def validate(self) -> None:
        """Raise ValueError, saying what to change, if a setting is impossible."""
        _check_names("server kind", self.servers, SERVER_KINDS)
        _check_names("workload", self.workloads, WORKLOADS)
        _check_names("connection mode", (self.connection,), CONNECTIONS)
        for name in ("requests", "rounds", "repeats", "slow_pieces", "large_reply_kib"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency levels must be 1 or more, got {self.concurrency}")
        if min(self.io_ms, self.cpu_ms, self.slow_pause_ms, *self.cpu_sweep_ms) < 0 or (
            self.timeout <= 0
        ):
            raise ValueError("times must not be negative, and the timeout must be positive")


def _check_names(what: str, names: tuple, known) -> None:
    if not names:
        raise ValueError(f"choose at least one {what} from {', '.join(known)}")
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(known)}")


#: The sizes of a run: what each changes from the full settings.  "quick" is
#: for tests and CI, "learner" what a notebook measures by default (the
#: notebook stays under 90 s on 2 cores), "full" the whole sweep.
SIZES = {
    "quick": {"concurrency": (1, 4, 8), "requests": 16, "rounds": 2, "repeats": 2},
    "learner": {"concurrency": (1, 4, 8), "requests": 24, "rounds": 3, "repeats": 3},
    "full": {},
}


def quick_mode() -> bool:
    """True if the environment asks for small runs (SOCKSERVER_KIT_QUICK=1)."""
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


def notebook_size(full: bool = False) -> str:
    """The size a notebook runs: "full" if asked, "quick" in quick mode, else "learner"."""
    if full:
        return "full"
    return "quick" if quick_mode() else "learner"


def default_settings(quick: bool | None = None, *, size: str | None = None,
                     **changes: Any) -> Settings:
    """Settings of a *size* in SIZES, with *changes*.

    Without *size*: "quick" if *quick* (default: quick_mode()), else "full".
    """
    if size is None:
        size = "quick" if (quick_mode() if quick is None else quick) else "full"
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    return dataclasses.replace(Settings(**SIZES[size]), **changes)


def calibrate_cpu(milliseconds: float, sample: int = 20_000) -> int:
    """How many burn_cpu() turns take about *milliseconds* here (fastest of 5 tries)."""
    fastest = min(_seconds_to_burn(sample) for _ in range(5))
    return max(1, round(sample * milliseconds / 1000 / fastest))


def _seconds_to_burn(iterations: int) -> float:
    start = time.perf_counter()
    burn_cpu(iterations)
    return time.perf_counter() - start


#: The work per request (ms of computing) a break-even sweep measures.
SWEEP_MS = (0.2, 1, 5, 20, 50)


def sweep_settings(base: Settings, servers: tuple, concurrency: tuple) -> Settings:
    """*base* narrowed to a break-even sweep: the cpu workload at every level of SWEEP_MS.

    Half *base*'s requests and rounds per measurement: the long levels
    dominate the time, and a sweep has five times as many cases.
    """
    return dataclasses.replace(
        base, servers=servers, workloads=("cpu",), concurrency=concurrency,
        cpu_sweep_ms=SWEEP_MS, requests=max(1, base.requests // 2),
        rounds=max(1, base.rounds // 2))


def cpu_levels(settings: Settings) -> tuple:
    """The work, in ms, the cpu workload is measured at."""
    return settings.cpu_sweep_ms or (settings.cpu_ms,)


def request_shape(workload: str, settings: Settings, concurrency: int, work_ms: float,
                  iterations: dict) -> dict:
    """The Measurement fields that make *workload* (*iterations*: cpu ms -> burn_cpu turns)."""
    io = {"request_line": f"io {settings.io_ms:g}\n".encode(), "work_ms": settings.io_ms}
    if workload == "io":
        return io
    if workload == "cpu":
        return {"request_line": f"cpu {iterations[work_ms]}\n".encode(), "work_ms": work_ms}
    if workload == "mixed":  # half the clients (rounded down) compute, the others wait
        return {**io, "special_clients": concurrency // 2,
                "special_line": f"cpu {iterations[settings.cpu_ms]}\n".encode()}
    if workload == "slow-sender":
        return {"request_line": b"none 0\n", "special_clients": 1,
                "special_behaviour": "slow-send", "pieces": settings.slow_pieces,
                "pause_ms": settings.slow_pause_ms}
    if workload == "slow-reader":
        return {"request_line": b"none 0\n", "special_clients": 1,
                "special_line": f"big {settings.large_reply_kib * 1024}\n".encode(),
                "special_behaviour": "slow-read", "pause_ms": settings.slow_pause_ms}
    return {"request_line": b"none 0\n"}


def cases(settings: Settings, iterations: dict) -> list:
    """Every case to measure against one server, as a Measurement of repetition 0."""
    found = []
    for workload in settings.workloads:
        levels = cpu_levels(settings) if workload == "cpu" else (None,)
        for concurrency in settings.concurrency:
            if workload in SPECIAL_WORKLOADS and concurrency < 2:
                continue  # a special client alone: nobody to make wait
            for level in levels:
                shape = request_shape(workload, settings, concurrency, level, iterations)
                found.append(Measurement(
                    workload=workload,
                    concurrency=concurrency,
                    repetition=0,
                    requests=settings.requests_per_measurement(concurrency),
                    persistent=settings.connection == "persistent",
                    timeout=settings.timeout,
                    **shape,
                ))
    return found


def make_plan(settings: Settings, iterations: dict) -> list:
    """The measurements to run against one server, warm-ups included, in order.

    Repetitions are interleaved (every case once, then every case again),
    so that a passing slowdown of the machine spreads over all cases
    instead of spoiling one; each case is warmed up before its first.
    """
    plan = []
    every_case = cases(settings, iterations)
    for repetition in range(settings.repeats):
        for case in every_case:
            if settings.warmup and repetition == 0:
                plan.append(dataclasses.replace(case, requests=case.concurrency, warmup=True))
            plan.append(dataclasses.replace(case, repetition=repetition))
    return plan


def calibrate_levels(settings: Settings) -> dict:
    """burn_cpu() turns for each cpu work level the settings need (ms -> turns)."""
    needs_cpu = {"cpu", "mixed"} & set(settings.workloads)
    levels = {*cpu_levels(settings), settings.cpu_ms} if needs_cpu else set()
    return {level: calibrate_cpu(level) for level in sorted(levels)}


def machine_info() -> dict:
    """What the numbers depend on: Python, the machine's cores, the date."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    is_gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "gil_enabled": is_gil_enabled(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass
class LabResults:
    """Everything a lab run measured, as tidy records (lists of flat dicts).

    *summary*: one record per server, workload, connection and concurrency
    (the CSV).  *measurements*: one per repetition.  *requests*: one per
    request, with its times in ms since its measurement started (the
    timeline).  *machine* and *settings* say where and how.
    """

    machine: dict
    settings: dict
    summary: list
    measurements: list
    requests: list

    def row(self, server: str, workload: str, concurrency: int,
            work_ms: float | None = None) -> dict:
        """The summary record of one cell; KeyError, saying what exists, if absent.

        *work_ms* picks one level of a cpu sweep; it may be left out when
        the workload was measured at one level only.
        """
        found = [r for r in self.summary
                 if (r["server"], r["workload"], r["concurrency"])
                 == (server, workload, concurrency)
                 and (work_ms is None or r["work_ms"] == work_ms)]
        if len(found) == 1:
            return found[0]
        if found:
            levels = sorted(r["work_ms"] for r in found)
            raise KeyError(f"{(server, workload, concurrency)} was measured at work_ms {levels}; "
                           "say which with work_ms=")
        measured = sorted({(r["server"], r["workload"], r["concurrency"]) for r in self.summary})
        raise KeyError(f"no result for {(server, workload, concurrency)}; measured: {measured}")

    def requests_of(self, **where: Any) -> list:
        """The request records whose fields equal *where*, e.g. ``server="sync"``."""
        return [r for r in self.requests if all(r[k] == v for k, v in where.items())]


def run_lab(
    settings: Settings | None = None, progress: Callable[[str], Any] | None = None
) -> LabResults:
    """Measure every server kind in *settings* (default: default_settings()).

    *progress*, if given, is called with a line of text as the run goes:
    one when a server starts, one per measurement (``[done/total] ...``,
    with an estimate of the time left).  Raises ValueError for impossible
    settings before starting anything.
    """
    settings = settings or default_settings()
    settings.validate()
    machine = machine_info()
    say = progress or (lambda message: None)
    iterations = calibrate_levels(settings)
    plan = make_plan(settings, iterations)  # one plan: every server gets the same work
    clock = _Countdown(len(settings.servers) * sum(not m.warmup for m in plan))
    measurements: list = []
    requests: list = []
    silence_limit = max(m.longest_request_s() for m in plan) + PROCESS_TIMEOUT
    for server in settings.servers:
        say(f"{server}: starting the server and the load generator, each in its own process")
        with running_server(SERVER_KINDS[server]) as process:
            with running_load(process.address, plan, silence_limit) as results:
                for result in results:
                    record = _record(server, settings.connection, result, requests)
                    measurements.append(record)
                    say(_progress_line(clock.tick(), record, settings.repeats))
    return LabResults(
        machine=machine,
        settings={**dataclasses.asdict(settings),
                  "cpu_iterations": iterations.get(settings.cpu_ms, 0),
                  "cpu_iterations_per_level": {str(k): v for k, v in iterations.items()}},
        summary=summarise(measurements),
        measurements=measurements,
        requests=requests,
    )


class _Countdown:
    """Counts measurements done, and guesses the time left from the pace so far."""

    def __init__(self, total: int):
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def tick(self) -> str:
        """Count one more; return ``"[done/total] ~N s left"``."""
        self.done += 1
        pace = (time.monotonic() - self.started) / self.done
        left = pace * (self.total - self.done)
        return f"[{self.done:>{len(str(self.total))}}/{self.total}] ~{left:3.0f} s left"


def _record(server: str, connection: str, result: dict, requests: list) -> dict:
    """Tag *result*'s requests into *requests*; return the measurement's record."""
    cell = {
        "server": server,
        "workload": result["workload"],
        "connection": connection,
        "concurrency": result["concurrency"],
        "work_ms": result["work_ms"],
        "repetition": result["repetition"],
    }
    for request in result["requests"]:
        request["latency_ms"] = round(request["received"] - request["sent"], 3)
        requests.append({**cell, **request})
    return {**cell, "elapsed_ms": result["elapsed_ms"], **measurement_stats(result)}


def _progress_line(count: str, record: dict, repeats: int) -> str:
    work = f" {record['work_ms']:g} ms" if record["workload"] == "cpu" else ""
    return (
        f"{count} {record['server']:<9} {record['workload'] + work:<11} "
        f"c={record['concurrency']:<3} rep {record['repetition'] + 1}/{repeats}: "
        f"p50 {record['p50_ms']:8.1f} ms, {record['rps']:7.1f} req/s, {record['errors']} errors"
    )
