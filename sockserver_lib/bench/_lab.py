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
#: disk or database), "cpu" (the handler computes in pure Python), and
#: "slow-client" (no work, but one of the clients trickles its request in
#: pieces while the others are fast: whoever waits for it is "deaf").
WORKLOADS = ("none", "io", "cpu", "slow-client")
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
    once), *repeats* times after one warm-up burst.  A measurement has
    ``requests_per_measurement(concurrency)`` requests.  *io_ms* and
    *cpu_ms* size the handler's work; in the slow-client workload, one
    client sends its request in *slow_pieces* pieces *slow_pause_ms* apart.
    Clients open a new connection per request, or keep one open
    (*connection*).  Every socket operation waits at most *timeout* seconds.
    """

    servers: tuple = field(default_factory=_registered_kinds)
    workloads: tuple = WORKLOADS
    concurrency: tuple = (1, 2, 4, 8, 16, 32)
    requests: int = 40
    rounds: int = 8
    repeats: int = 3
    warmup: bool = True
    connection: str = "per-request"
    io_ms: float = 20.0
    cpu_ms: float = 5.0
    slow_pieces: int = 4
    slow_pause_ms: float = 5.0
    timeout: float = 30.0

    def requests_per_measurement(self, concurrency: int) -> int:
        """At least *requests* in all, and at least *rounds* for each client."""
        return max(self.requests, self.rounds * concurrency)

    def validate(self) -> None:
        """Raise ValueError, saying what to change, if a setting is impossible."""
        _check_names("server kind", self.servers, SERVER_KINDS)
        _check_names("workload", self.workloads, WORKLOADS)
        _check_names("connection mode", (self.connection,), CONNECTIONS)
        for name in ("requests", "rounds", "repeats", "slow_pieces"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency levels must be 1 or more, got {self.concurrency}")
        if min(self.io_ms, self.cpu_ms, self.slow_pause_ms) < 0 or self.timeout <= 0:
            raise ValueError("times must not be negative, and the timeout must be positive")


def _check_names(what: str, names: tuple, known) -> None:
    if not names:
        raise ValueError(f"choose at least one {what} from {', '.join(known)}")
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(known)}")


#: What quick mode changes: fewer levels, requests and repetitions (about a minute).
QUICK_CHANGES = {"concurrency": (1, 4, 8), "requests": 16, "rounds": 4, "repeats": 3}


def quick_mode() -> bool:
    """True if the environment asks for small runs (SOCKSERVER_KIT_QUICK=1)."""
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


def default_settings(quick: bool | None = None, **changes: Any) -> Settings:
    """The full settings, or the quick ones if *quick* (default: quick_mode())."""
    if quick is None:
        quick = quick_mode()
    base = Settings(**QUICK_CHANGES) if quick else Settings()
    return dataclasses.replace(base, **changes)


def calibrate_cpu(milliseconds: float, sample: int = 20_000) -> int:
    """How many burn_cpu() turns take about *milliseconds* here (fastest of 5 tries)."""
    fastest = min(_seconds_to_burn(sample) for _ in range(5))
    return max(1, round(sample * milliseconds / 1000 / fastest))


def _seconds_to_burn(iterations: int) -> float:
    start = time.perf_counter()
    burn_cpu(iterations)
    return time.perf_counter() - start


def request_shape(workload: str, settings: Settings, cpu_iterations: int) -> dict:
    """The request line and trickle of *workload*, as Measurement fields."""
    if workload == "io":
        return {"request_line": f"io {settings.io_ms:g}\n".encode()}
    if workload == "cpu":
        return {"request_line": f"cpu {cpu_iterations}\n".encode()}
    if workload == "slow-client":
        return {
            "request_line": b"none 0\n",
            "slow_clients": 1,
            "pieces": settings.slow_pieces,
            "pause_ms": settings.slow_pause_ms,
        }
    return {"request_line": b"none 0\n"}


def make_plan(settings: Settings, cpu_iterations: int) -> list:
    """The measurements to run against one server, warm-ups included, in order."""
    plan = []
    for workload in settings.workloads:
        for concurrency in settings.concurrency:
            base = Measurement(
                workload=workload,
                concurrency=concurrency,
                repetition=0,
                requests=settings.requests_per_measurement(concurrency),
                persistent=settings.connection == "persistent",
                timeout=settings.timeout,
                **request_shape(workload, settings, cpu_iterations),
            )
            if settings.warmup:
                plan.append(dataclasses.replace(base, requests=concurrency, warmup=True))
            plan += [dataclasses.replace(base, repetition=r) for r in range(settings.repeats)]
    return plan


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

    def row(self, server: str, workload: str, concurrency: int) -> dict:
        """The summary record of one cell; KeyError, saying what exists, if absent."""
        for record in self.summary:
            if (record["server"], record["workload"], record["concurrency"]) == (
                server, workload, concurrency,
            ):
                return record
        measured = sorted({(r["server"], r["workload"], r["concurrency"]) for r in self.summary})
        raise KeyError(f"no result for {(server, workload, concurrency)}; measured: {measured}")

    def requests_of(self, **where: Any) -> list:
        """The request records whose fields equal *where*, e.g. ``server="sync"``."""
        return [r for r in self.requests if all(r[k] == v for k, v in where.items())]


def run_lab(
    settings: Settings | None = None, progress: Callable[[str], Any] | None = None
) -> LabResults:
    """Measure every server kind in *settings* (default: default_settings()).

    *progress*, if given, is called with a line of text as the run goes.
    Raises ValueError for impossible settings before starting anything.
    """
    settings = settings or default_settings()
    settings.validate()
    machine = machine_info()
    say = progress or (lambda message: None)
    cpu_iterations = calibrate_cpu(settings.cpu_ms) if "cpu" in settings.workloads else 0
    plan = make_plan(settings, cpu_iterations)  # one plan: every server gets the same work
    total = len(settings.servers) * sum(not m.warmup for m in plan)
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
                    say(_progress_line(len(measurements), total, record, settings.repeats))
    return LabResults(
        machine=machine,
        settings={**dataclasses.asdict(settings), "cpu_iterations": cpu_iterations},
        summary=summarise(measurements),
        measurements=measurements,
        requests=requests,
    )


def _record(server: str, connection: str, result: dict, requests: list) -> dict:
    """Tag *result*'s requests into *requests*; return the measurement's record."""
    cell = {
        "server": server,
        "workload": result["workload"],
        "connection": connection,
        "concurrency": result["concurrency"],
        "repetition": result["repetition"],
    }
    for request in result["requests"]:
        request["latency_ms"] = round(request["received"] - request["sent"], 3)
        requests.append({**cell, **request})
    return {**cell, "elapsed_ms": result["elapsed_ms"], **measurement_stats(result)}


def _progress_line(done: int, total: int, record: dict, repeats: int) -> str:
    return (
        f"[{done:>{len(str(total))}}/{total}] {record['server']:<9} "
        f"{record['workload']:<11} c={record['concurrency']:<3} "
        f"rep {record['repetition'] + 1}/{repeats}: p50 {record['p50_ms']:8.1f} ms, "
        f"{record['rps']:7.1f} req/s, {record['errors']} errors"
    )
