"""Pools and the event loop against the standard library, side by side, in one run.

Comparisons, each with the target of issue 6:

  threadpool   echo, connection per request, no work, 8 clients at once:
               ThreadPoolTCPServer vs the stdlib's ThreadingTCPServer  (>= 1.5x req/s)
  prefork      the same workload: PreforkTCPServer vs the stdlib's
               ForkingTCPServer                                        (>= 10x req/s)
  cpu          a CPU-bound handler (about --cpu-ms of pure Python per request):
               PreforkTCPServer vs the stdlib's ThreadingTCPServer     (>= 1.7x on 2 cores)
  selector     SelectorTCPServer holds --connections connections (10,000) open at
               once, in one thread, and answers a line on each of them

Every library server is the ready-made class with its default settings
(``class PreforkTCPServer(PreforkMixIn, TCPServer): pass``).  The stdlib
servers get the same listen() backlog as the pools (128) unless
``--stdlib-backlog default``: with the stdlib's 5, eight clients overflow
it now and then, and each overflow costs a client a 1-second SYN
retransmit -- a setting, not the concurrency model this compares.

How the figures are made fair: each server runs alone in its own process
(this file run with ``--serve``); the load comes from other processes, each
running compare_stdlib.run_load() (the same load generator as the stdlib
comparison: client threads, a new connection per request, the reply
checked); the number of client processes is calibrated first, because one
Python process can be the bottleneck; both contenders are started
together, warmed up, then measured in interleaved rounds (A B B A ...), and
the median is quoted.  Besides req/s and latency, each row shows the
server's CPU time per request and how many cores it got during a round
(Linux /proc; its workers and children included): they tell a loaded
machine from a slow server.  The machine's load average is printed too.

Safety: 127.0.0.1 and port 0 only, bounded request and connection counts,
a timeout on every socket, and every server process is stopped at the end,
on an error or Ctrl-C too.  ``python benchmarks/compare_pools.py --help``
lists the options.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import multiprocessing
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from compare_stdlib import PAYLOAD, byte_compile_library, median, percentile, run_load

from sockserver_lib.pools import POOL_LISTEN_BACKLOG

REPO = Path(__file__).resolve().parent.parent
#: Seconds a server process gets to start, or to stop before it is killed.
PROCESS_TIMEOUT = 10.0
#: Seconds the 10,000-connection run may take in all before it is declared broken.
MANY_TIMEOUT = 120.0
#: Connections opened at once by the many-connections client (the server's backlog is deeper).
CONNECT_BATCH = 500

COMPARISONS = {
    # name: (workload, (label, module, class) A, (label, module, class) B, target B/A)
    "threadpool": ("echo", ("stdlib ThreadingTCPServer", "socketserver", "ThreadingTCPServer"),
                   ("lib ThreadPoolTCPServer", "sockserver_lib", "ThreadPoolTCPServer"), 1.5),
    "prefork": ("echo", ("stdlib ForkingTCPServer", "socketserver", "ForkingTCPServer"),
                ("lib PreforkTCPServer", "sockserver_lib", "PreforkTCPServer"), 10.0),
    "cpu": ("cpu", ("stdlib ThreadingTCPServer", "socketserver", "ThreadingTCPServer"),
            ("lib PreforkTCPServer", "sockserver_lib", "PreforkTCPServer"), 1.7),
}


# -- the server side: ``compare_pools.py --serve MODULE CLASS WORKLOAD CPU_MS`` -----------------

def burn_cpu(milliseconds: float) -> None:
    """Run pure-Python arithmetic for about *milliseconds* of CPU time (holds the GIL)."""
    deadline = time.thread_time() + milliseconds / 1000
    total = 0
    while time.thread_time() < deadline:
        for number in range(2000):
            total += number * number


def serve(module_name: str, class_name: str, workload: str, cpu_ms: str, backlog: str) -> None:
    """Serve one workload on 127.0.0.1, port 0, until SIGINT; print ``ready HOST PORT`` first.

    *backlog* is the listen() backlog, or "default" for the class's own.
    serve_forever() runs in the main thread of a process without other
    threads: PreforkTCPServer forks its workers from there.
    """
    module = importlib.import_module(module_name)
    if workload == "line":
        handler = module.LineEchoHandler
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    else:
        work_ms = float(cpu_ms) if workload == "cpu" else 0.0

        def handle(self):
            line = self.rfile.readline(65536)
            if work_ms:
                burn_cpu(work_ms)
            self.wfile.write(line)

        handler = type("Echo", (module.StreamRequestHandler,), {"handle": handle, "timeout": 5})
    server_class = getattr(module, class_name)
    if backlog != "default":
        server_class = type(class_name, (server_class,), {"request_queue_size": int(backlog)})
    with server_class(("127.0.0.1", 0), handler) as server:
        print("ready", *server.server_address[:2], flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


class ServerProcess(NamedTuple):
    label: str
    process: subprocess.Popen
    address: tuple


@contextlib.contextmanager
def server_process(label, module_name, class_name, workload, cpu_ms=0.0,
                   backlog="default") -> Iterator:
    """Run one server in its own process for a ``with`` block; always stop it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", module_name, class_name, workload, str(cpu_ms),
         str(backlog)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(PROCESS_TIMEOUT):
                raise TimeoutError(f"{label} did not start within {PROCESS_TIMEOUT} s")
        word, host, port = (process.stdout.readline().split() + ["", "", ""])[:3]
        if word != "ready":
            raise RuntimeError(f"{label} failed to start")
        yield ServerProcess(label, process, (host, int(port)))
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGINT (what Ctrl-C sends); then kill if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


# -- the load: run_load() in several client processes ------------------------------------------

def client_task(address, requests: int, concurrency: int) -> tuple:
    """One client process's share of a round: (start, end, latencies)."""
    start = time.monotonic()
    _, latencies = run_load(tuple(address), requests, concurrency)
    return start, time.monotonic(), latencies


class Round(NamedTuple):
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float  # the server's, workers and children included; nan if unknown
    cores: float  # the server's CPU seconds per second of the round: how many cores it got


def run_round(pool, processes: int, server: ServerProcess, requests: int,
              concurrency: int) -> Round:
    """Split *requests* and *concurrency* over *processes* client processes; one Round."""
    cpu_before = process_tree_cpu(server.process.pid)
    tasks = [pool.apply_async(client_task, (server.address, requests // processes,
                                            max(1, concurrency // processes)))
             for _ in range(processes)]
    results = [task.get(timeout=MANY_TIMEOUT) for task in tasks]
    cpu = process_tree_cpu(server.process.pid) - cpu_before
    elapsed = max(end for _, end, _ in results) - min(start for start, _, _ in results)
    latencies = [value for _, _, values in results for value in values]
    return Round(len(latencies) / elapsed, percentile(latencies, 50) * 1e3,
                 percentile(latencies, 99) * 1e3, cpu / len(latencies) * 1e6, cpu / elapsed)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used by *pid*, its reaped children and its live children; nan off Linux.

    Read from /proc: a prefork server's workers are live children, a forking
    server's finished children are counted in the parent's "cutime".
    """
    try:
        stats = [_proc_stat(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(sum(stat[11:15]) for stat in stats
               if stat and (stat[-1] == pid or stat[1] == pid)) / ticks


def _proc_stat(pid_text: str) -> list | None:
    """Fields 3.. of /proc/PID/stat as numbers (field 4, the parent, at [1]), then the pid."""
    try:
        with open(f"/proc/{pid_text}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # the process ended meanwhile
        return None
    return [0, *map(int, fields[1:15]), int(pid_text)]


def calibrate_clients(pool, options) -> int:
    """Find how many client processes it takes not to be the bottleneck.

    Measures the fastest server (prefork, echo) with 1, 2 and 4 client
    processes sharing the same 8 connections; keeps the smallest count
    within 5% of the best.
    """
    print("calibrating the load generator on lib PreforkTCPServer (echo):")
    figures = {}
    with server_process("lib PreforkTCPServer", "sockserver_lib", "PreforkTCPServer",
                        "echo") as server:
        run_round(pool, 1, server, options.warmup, options.concurrency)
        for processes in (1, 2, 4):
            rounds = [run_round(pool, processes, server, options.requests,
                                options.concurrency) for _ in range(3)]
            figures[processes] = median(r.requests_per_second for r in rounds)
            print(f"  {processes} client process(es): {figures[processes]:8.0f} req/s")
    best = max(figures.values())
    chosen = min(count for count, rate in figures.items() if rate >= 0.95 * best)
    print(f"  -> {chosen} client process(es)")
    return chosen


def compare(name: str, pool, processes: int, options) -> dict:
    """Both contenders of one comparison, interleaved A B B A ...; their rounds."""
    workload, first, second, _ = COMPARISONS[name]
    rounds: dict[str, list[Round]] = {first[0]: [], second[0]: []}
    requests = options.requests if workload == "echo" else options.cpu_requests
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(server_process(
                       *contender, workload, options.cpu_ms,
                       options.stdlib_backlog if contender[1] == "socketserver" else "default"))
                   for contender in (first, second)]
        for server in servers:
            run_round(pool, processes, server, max(processes, requests // 5),
                      options.concurrency)
        for index in range(options.repeat):
            for server in (servers if index % 2 == 0 else servers[::-1]):
                rounds[server.label].append(run_round(pool, processes, server,
                                                      requests, options.concurrency))
    return rounds


def print_comparison(name: str, rounds: dict) -> bool:
    """Print the medians and the ratio against the target; return whether it is met."""
    workload, first, second, target = COMPARISONS[name]
    print(f"\n{name}: workload {workload}")
    rates = {}
    for label, label_rounds in rounds.items():
        rates[label] = median(r.requests_per_second for r in label_rounds)
        spread = [r.requests_per_second for r in label_rounds]
        print(f"  {label:26} {rates[label]:7.0f} req/s ({min(spread):.0f}-{max(spread):.0f})"
              f"  p50 {median(r.p50_ms for r in label_rounds):6.2f} ms"
              f"  p99 {median(r.p99_ms for r in label_rounds):7.2f} ms"
              f"  server CPU {median(r.cpu_us_per_request for r in label_rounds):6.0f} us/req"
              f"  on {median(r.cores for r in label_rounds):.2f} cores")
    ratio = rates[second[0]] / rates[first[0]]
    met = ratio >= target
    print(f"  ratio {ratio:.2f}x, target >= {target}x: {'met' if met else 'MISSED'}")
    return met


# -- the event loop: many connections held open at once --------------------------------------

def raise_descriptor_limit(needed: int) -> None:
    """Raise this process's RLIMIT_NOFILE soft limit, or explain why it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"need {needed} file descriptors, the hard limit is {hard}: "
                         "raise it (ulimit -Hn) or pass a smaller --connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def open_connections(address, count: int, deadline: float) -> list:
    """Open *count* connections, CONNECT_BATCH at a time, non-blocking."""
    sockets = []
    with selectors.DefaultSelector() as selector:
        for start in range(0, count, CONNECT_BATCH):
            batch = []
            for _ in range(min(CONNECT_BATCH, count - start)):
                sock = socket.socket()
                sock.setblocking(False)
                sockets.append(sock)
                if sock.connect_ex(address) not in (0, errno.EINPROGRESS):
                    raise OSError(f"connection {len(sockets)} failed at once")
                selector.register(sock, selectors.EVENT_WRITE)
                batch.append(sock)
            wait_all(selector, batch, deadline, lambda sock: check_connected(sock))
    return sockets


def check_connected(sock) -> bool:
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))
    return True


def wait_all(selector, sockets, deadline, ready) -> None:
    """Wait until ready(sock) is true for every socket; unregister each as it is."""
    pending = len(sockets)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{pending} connections still pending at the deadline")
        for key, _ in selector.select(left):
            if ready(key.fileobj):
                selector.unregister(key.fileobj)
                pending -= 1


def ask_every_connection(sockets, deadline: float) -> None:
    """Send a distinct line on every connection, then check every answer."""
    expected = {sock: b"%d\n" % number for number, sock in enumerate(sockets)}
    received = dict.fromkeys(sockets, b"")
    for sock, line in expected.items():
        sock.send(line)  # a few bytes: the socket buffer takes them at once

    def answered(sock) -> bool:
        received[sock] += sock.recv(64)
        if not expected[sock].startswith(received[sock]):
            raise ValueError(f"expected {expected[sock]!r}, got {received[sock]!r}")
        return received[sock] == expected[sock]

    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        wait_all(selector, sockets, deadline, answered)


def thread_count(pid: int) -> str:
    """How many threads process *pid* runs (Linux /proc), or "?" elsewhere."""
    try:
        return str(len(os.listdir(f"/proc/{pid}/task")))
    except OSError:
        return "?"


def many_connections(count: int) -> bool:
    print(f"\nselector: {count} connections held open at once, a line answered on each")
    raise_descriptor_limit(count + 100)
    with server_process("lib SelectorTCPServer", "sockserver_lib", "SelectorTCPServer",
                        "line") as server:
        started = time.monotonic()
        deadline = started + MANY_TIMEOUT
        sockets = []
        try:
            sockets = open_connections(server.address, count, deadline)
            connected = time.monotonic()
            ask_every_connection(sockets, deadline)
            answered = time.monotonic()
            threads = thread_count(server.process.pid)
        finally:
            for sock in sockets:
                sock.close()
    print(f"  connected {count} in {connected - started:.2f} s; answered all {count} "
          f"in {answered - connected:.2f} s; server threads: {threads}")
    met = threads in ("1", "?")
    print(f"  target: every connection answered by one thread: {'met' if met else 'MISSED'}")
    return met


# -- the whole run ----------------------------------------------------------------------------

def parse_options(argv=None):
    parser = argparse.ArgumentParser(
        description="Thread pool, prefork and event-loop servers of sockserver_lib vs the "
                    "stdlib's ThreadingTCPServer and ForkingTCPServer, on 127.0.0.1.")
    parser.add_argument("--requests", type=int, default=4000,
                        help="echo requests per measured round (default: 4000)")
    parser.add_argument("--cpu-requests", type=int, default=400,
                        help="CPU-bound requests per measured round (default: 400)")
    parser.add_argument("--cpu-ms", type=float, default=5.0,
                        help="CPU time of the CPU-bound handler, ms (default: 5)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="connections in flight at once (default: 8)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="measured rounds per server (default: 5)")
    parser.add_argument("--warmup", type=int, default=500,
                        help="requests sent before calibrating (default: 500)")
    parser.add_argument("--client-processes", type=int, default=0, metavar="N",
                        help="load generator processes (default: 0, calibrate)")
    parser.add_argument("--connections", type=int, default=10_000,
                        help="connections for the selector run, at most 15000 "
                             "(default: 10000)")
    parser.add_argument("--only", default="threadpool,prefork,cpu,selector",
                        help="comma-separated comparisons to run "
                             "(default: threadpool,prefork,cpu,selector)")
    parser.add_argument("--stdlib-backlog", default=str(POOL_LISTEN_BACKLOG), metavar="N",
                        help="listen() backlog of the stdlib servers: the pools' "
                             f"({POOL_LISTEN_BACKLOG}, the default) so that the concurrency "
                             "models are compared, or 'default' for the stdlib's 5, whose "
                             "overflow costs 1 s SYN retransmits")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)  # internal: a server
    options = parser.parse_args(argv)
    options.only = [name for name in options.only.split(",") if name]
    unknown = set(options.only) - {*COMPARISONS, "selector"}
    if unknown:
        parser.error(f"unknown comparison(s) {sorted(unknown)}")
    if not hasattr(os, "fork") and {"prefork", "cpu"} & set(options.only):
        parser.error("prefork and cpu need fork(), which this platform lacks")
    for name in ("requests", "cpu_requests", "concurrency", "repeat", "warmup"):
        if not 1 <= getattr(options, name) <= 1_000_000:
            parser.error(f"--{name.replace('_', '-')} must be from 1 to 1000000")
    if options.stdlib_backlog != "default" and not options.stdlib_backlog.isdigit():
        parser.error("--stdlib-backlog must be a number or 'default'")
    if not 1 <= options.connections <= 15_000:
        parser.error("--connections must be from 1 to 15000")
    return options


def main(argv=None) -> int:
    options = parse_options(argv)
    if options.serve:
        serve(*options.serve)
        return 0
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    print(f"echo: {options.requests} requests per round, cpu: {options.cpu_requests} x "
          f"{options.cpu_ms} ms; {options.concurrency} in flight; {options.repeat} rounds; "
          f"payload {len(PAYLOAD)} bytes; stdlib backlog {options.stdlib_backlog}")
    byte_compile_library()
    verdicts = {}
    try:
        comparisons = [name for name in COMPARISONS if name in options.only]
        if comparisons:
            with multiprocessing.get_context("spawn").Pool(4) as pool:
                processes = options.client_processes or calibrate_clients(pool, options)
                for name in comparisons:
                    verdicts[name] = print_comparison(name, compare(name, pool, processes,
                                                                    options))
        if "selector" in options.only:
            verdicts["selector"] = many_connections(options.connections)
    except KeyboardInterrupt:
        print("\ninterrupted; every server process has been stopped", file=sys.stderr)
        return 130
    print(f"\nload average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("targets: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}"
                                  for name, ok in verdicts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
