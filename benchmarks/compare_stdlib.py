"""Compare sockserver_lib with the standard library's socketserver, side by side.

Workload: connection per request.  A client connects, sends one line, reads
until the server closes the connection, and checks that it got its line
back; the handler is a StreamRequestHandler that echoes one line.  The same
workload runs against the sync (TCPServer), threading (ThreadingTCPServer)
and forking (ForkingTCPServer) servers of both implementations in one run.

How it keeps the comparison fair:

- each server runs in its own lean Python process (this file run with
  ``--serve``), and the load comes from this process through client
  threads: server and clients do not share a GIL;
- both implementations of one kind are started together, warmed up, then
  measured in interleaved rounds ordered lib, stdlib, stdlib, lib, lib, ...
  (ABBA), so a slow drift of the machine (other jobs, CPU frequency) hits
  both alike;
- the median over the rounds is quoted, with the ratio lib / stdlib;
- besides wall-clock figures, the server's CPU time and page faults per
  request (its own plus its reaped children's) are reported: they depend
  much less on what else the machine is running;
- ``--self-check`` puts a second copy of the stdlib in the library's place:
  its ratios, ideally 1.00x, show how far the benchmark itself can be trusted.

Safety: 127.0.0.1 and port 0 only, a bounded number of requests, a timeout
on every socket, and every server process is stopped at the end, on Ctrl-C
too.  Run ``python benchmarks/compare_stdlib.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib
import importlib.util
import itertools
import os
import platform
import resource
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
#: The two implementations, by module name: the library and the stdlib.
LIB, STDLIB = "sockserver_lib", "socketserver"
#: For --self-check: a second, separate import of the stdlib's socketserver,
#: from the same .pyc, that stands in for the library (an A/A comparison).
STDLIB_COPY = "socketserver-copy"
#: Server kind -> class name, the same in both implementations.
KINDS = {"sync": "TCPServer", "threading": "ThreadingTCPServer", "forking": "ForkingTCPServer"}
PAYLOAD = b"the quick brown fox jumps over the lazy dog\n"
#: Seconds any socket (client or handler) waits before the run is declared broken.
SOCKET_TIMEOUT = 5.0
#: Seconds a server process gets to start, or to stop cleanly before it is killed.
PROCESS_TIMEOUT = 10.0


# -- the server side: ``compare_stdlib.py --serve MODULE KIND`` in its own process ---------

def echo_one_line(handler) -> None:
    """The handler's handle(): send back the first line received."""
    handler.wfile.write(handler.rfile.readline(65536))


def serve(module_name: str, kind: str) -> None:
    """Serve the echo handler on 127.0.0.1, port 0, until told to stop.

    Protocol on stdin/stdout, one line each: prints ``ready HOST PORT FILE``
    once listening; answers ``usage`` with ``usage SECONDS FAULTS`` (CPU
    time and page faults of this process and its reaped children so far);
    stops on ``stop`` or when stdin closes (the parent went away).
    """
    module = load_implementation(module_name)
    handler = type("EchoOneLine", (module.StreamRequestHandler,),
                   {"handle": echo_one_line, "timeout": SOCKET_TIMEOUT})
    server = getattr(module, KINDS[kind])(("127.0.0.1", 0), handler)
    try:
        host, port = server.server_address[:2]
        print("ready", host, port, module.__file__, flush=True)
        threading.Thread(target=obey_parent, args=(server,), daemon=True).start()
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group; the parent cleans up
    finally:
        server.server_close()


def load_implementation(module_name: str):
    """Import *module_name*; STDLIB_COPY loads the stdlib's socketserver under another name.

    The copy comes from the same source file and the same cached bytecode
    as the stdlib's own import, so it is the very same code, placed in a
    process of its own: whatever separates it from the stdlib in a run is
    the benchmark's own noise and bias.
    """
    if module_name != STDLIB_COPY:
        return importlib.import_module(module_name)
    origin = importlib.util.find_spec(STDLIB).origin  # finds it without importing it
    spec = importlib.util.spec_from_file_location("socketserver_copy", origin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def obey_parent(server) -> None:
    """Answer ``usage`` requests from stdin; shut the server down on ``stop`` or EOF."""
    for command in sys.stdin:
        if command.strip() == "usage":
            print("usage", *resource_usage(), flush=True)
        else:
            break
    server.shutdown()


def resource_usage() -> tuple[float, int]:
    """CPU seconds (user + system) and page faults of this process and its reaped children.

    Page faults matter for forking servers: after fork() every page that the
    parent or the child writes is copied (copy-on-write), and the count,
    unlike time, hardly depends on what else the machine is doing.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return cpu, own.ru_minflt + children.ru_minflt


class ServerProcess(NamedTuple):
    process: subprocess.Popen
    address: tuple
    module_file: str

    def usage(self) -> tuple[float, int]:
        """Ask the server for its CPU seconds and page faults so far."""
        self.process.stdin.write("usage\n")
        self.process.stdin.flush()
        cpu, faults = read_reply(self.process, "usage")
        return float(cpu), int(faults)


def read_reply(process: subprocess.Popen, word: str) -> list[str]:
    """Read the server's next line, which must start with *word*; return the rest.

    Waits at most PROCESS_TIMEOUT seconds (nothing else is ever buffered: the
    server writes one line per request, so select() on the pipe is enough).
    """
    readable, _, _ = select.select([process.stdout], [], [], PROCESS_TIMEOUT)
    if not readable:
        raise TimeoutError(f"the server did not say {word!r} within {PROCESS_TIMEOUT} s")
    line = process.stdout.readline().split()
    if not line or line[0] != word:
        raise RuntimeError(f"the server said {line!r} instead of {word!r}")
    return line[1:]


@contextlib.contextmanager
def server_process(module_name: str, kind: str,
                   fixed_layout: bool = False) -> Iterator[ServerProcess]:
    """Run one server in its own process for a ``with`` block; always stop it.

    *fixed_layout*: run it without address-space randomization (Linux's
    ``setarch -R``), so that where objects land in memory, and with it the
    page faults per request, repeat exactly from one run to the next.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))  # this checkout's library
    command = [sys.executable, __file__, "--serve", module_name, kind]
    if fixed_layout:
        command = ["setarch", platform.machine(), "--addr-no-randomize", *command]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        host, port, module_file = read_reply(process, "ready")
        yield ServerProcess(process, (host, int(port)), module_file)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Ask the server to stop; terminate, then kill it if it does not."""
    with contextlib.suppress(OSError):
        process.stdin.close()  # EOF: obey_parent() shuts the server down
    try:
        process.wait(PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.stdout.close()


# -- the load generator: runs in this process ---------------------------------------------

def one_request(address) -> float:
    """Do one echo exchange on a new connection; return its latency in seconds."""
    started = time.perf_counter()
    with socket.create_connection(address, timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(PAYLOAD)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    if reply != PAYLOAD:
        raise ValueError(f"expected {PAYLOAD!r}, got {reply!r}")
    return time.perf_counter() - started


class Round(NamedTuple):
    """One measured round (or the medians of several)."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    faults_per_request: float


def run_load(address, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Send *requests* requests from *concurrency* client threads.

    Returns the elapsed seconds and every request's latency in seconds.
    """
    tickets = itertools.count()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            while next(tickets) < requests:
                latencies.append(one_request(address))
        except BaseException as error:  # reported below, never lost
            errors.append(error)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed, first: {errors[0]!r}")
    return elapsed, latencies


def measure(server: ServerProcess, requests: int, concurrency: int) -> Round:
    """One round against *server*: throughput, latency, server CPU and faults per request."""
    cpu_before, faults_before = server.usage()
    elapsed, latencies = run_load(server.address, requests, concurrency)
    cpu_after, faults_after = server.usage()
    return Round(requests / elapsed, percentile(latencies, 50) * 1e3,
                 percentile(latencies, 99) * 1e3, (cpu_after - cpu_before) / requests * 1e6,
                 (faults_after - faults_before) / requests)


def percentile(values: list[float], percent: float) -> float:
    """The nearest-rank percentile of *values*."""
    ordered = sorted(values)
    rank = max(1, round(percent / 100 * len(ordered)))
    return ordered[rank - 1]


# -- the comparison ---------------------------------------------------------------------------

def byte_compile_library() -> None:
    """Compile sockserver_lib to .pyc files, as a first import normally does.

    The stdlib's socketserver loads from its .pyc.  Where bytecode writing is
    off (PYTHONDONTWRITEBYTECODE), every server process would compile the
    library from source, which leaves it ~0.5 MB more heap for each fork()
    to copy: a cost of the environment, not of the library.
    """
    compileall.compile_dir(str(REPO / "sockserver_lib"), quiet=1)


def interleaved_order(repeat: int, candidate: str) -> list[str]:
    """candidate, STDLIB, STDLIB, candidate, ...: ABBA rounds cancel a linear drift."""
    order = []
    for index in range(repeat):
        order += [candidate, STDLIB] if index % 2 == 0 else [STDLIB, candidate]
    return order


def compare_kind(kind: str, options) -> dict[str, list[Round]]:
    """Measure the candidate (the library) and the stdlib for one kind; return their rounds."""
    rounds: dict[str, list[Round]] = {options.candidate: [], STDLIB: []}
    with contextlib.ExitStack() as servers:
        running = {name: servers.enter_context(server_process(name, kind, options.fixed_layout))
                   for name in rounds}
        for name, server in running.items():
            print(f"  {kind:9} {name:14} from {server.module_file}", flush=True)
            run_load(server.address, options.warmup, options.concurrency)
        for name in interleaved_order(options.repeat, options.candidate):
            rounds[name].append(measure(running[name], options.requests, options.concurrency))
    return rounds


def median(values) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def medians(rounds: list[Round]) -> Round:
    """The median of each measure over the rounds."""
    return Round(*(median(values) for values in zip(*rounds, strict=True)))


def ratio_text(lib: float, stdlib: float) -> str:
    """lib / stdlib as "1.02x"; "-" when the stdlib's figure is zero (e.g. no page faults)."""
    return f"{lib / stdlib:.2f}x" if stdlib else "-"


HEADER = (f"{'kind':9} {'impl':14} {'req/s':>7} {'(min-max)':>13} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10} {'faults/req':>10}")


def print_table(results: dict[str, dict[str, list[Round]]], candidate: str) -> None:
    print()
    print(HEADER)
    for kind, rounds in results.items():
        summary = {name: medians(impl_rounds) for name, impl_rounds in rounds.items()}
        for name, row in summary.items():
            spread = [r.requests_per_second for r in rounds[name]]
            print(f"{kind:9} {name:14} {row.requests_per_second:7.0f} "
                  f"{min(spread):6.0f}-{max(spread):<6.0f} {row.p50_ms:7.3f} "
                  f"{row.p99_ms:7.3f} {row.cpu_us_per_request:10.0f} "
                  f"{row.faults_per_request:10.1f}")
        ratio = Round(*(ratio_text(lib, std)
                        for lib, std in zip(summary[candidate], summary[STDLIB], strict=True)))
        label = "copy/stdlib" if candidate == STDLIB_COPY else "lib/stdlib"
        print(f"{kind:9} {label:14} {ratio.requests_per_second:>7} {'':13} "
              f"{ratio.p50_ms:>7} {ratio.p99_ms:>7} {ratio.cpu_us_per_request:>10} "
              f"{ratio.faults_per_request:>10}")
    print()
    print("req/s ratio >= 1.00: the library serves at least as many requests per second.")
    print("p50, p99, CPU and faults ratios <= 1.00: its requests take no longer and cost")
    print("the server no more CPU or page faults (lower is better).  Medians of the")
    print("rounds; (min-max) is the spread of req/s over the rounds.")


def parse_options(argv=None):
    parser = argparse.ArgumentParser(
        description="Echo benchmark, connection per request: sockserver_lib vs socketserver "
                    "(sync, threading, forking TCP servers), on 127.0.0.1.")
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests per measured round (default: 1000)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="client threads sending at once (default: 4)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="measured rounds per implementation and kind (default: 5)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="requests sent to each server before measuring (default: 200)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated server kinds (default: sync,threading,forking)")
    parser.add_argument("--self-check", action="store_true",
                        help="compare the stdlib with a second copy of itself instead of the "
                             "library: the ratios then show the benchmark's own noise and bias "
                             "(ideally 1.00x)")
    parser.add_argument("--fixed-layout", action="store_true",
                        help="run the servers without address-space randomization (Linux, "
                             "setarch): page faults per request then repeat exactly from run "
                             "to run, to compare two versions of the code")
    parser.add_argument("--serve", nargs=2, metavar=("MODULE", "KIND"),
                        help=argparse.SUPPRESS)  # internal: be one server process
    options = parser.parse_args(argv)
    options.kinds = [kind for kind in options.kinds.split(",") if kind]
    options.candidate = STDLIB_COPY if options.self_check else LIB
    if options.fixed_layout and not shutil.which("setarch"):
        parser.error("--fixed-layout needs the setarch command (Linux, util-linux)")
    unknown = set(options.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kind(s) {sorted(unknown)}; choose from {list(KINDS)}")
    if "forking" in options.kinds and not hasattr(os, "fork"):
        options.kinds.remove("forking")
        print("no fork() on this platform: skipping the forking servers")
    for name in ("requests", "concurrency", "repeat"):
        if getattr(options, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return options


def main(argv=None) -> int:
    options = parse_options(argv)
    if options.serve:
        serve(*options.serve)
        return 0
    print(f"Python {sys.version.split()[0]}; {options.requests} requests x "
          f"{options.repeat} rounds per implementation, {options.concurrency} clients, "
          f"{options.warmup} warm-up requests, {os.cpu_count()} CPUs")
    started = time.perf_counter()
    byte_compile_library()
    results = {}
    try:
        for kind in options.kinds:
            results[kind] = compare_kind(kind, options)
    except KeyboardInterrupt:
        print("\ninterrupted; every server process has been stopped", file=sys.stderr)
        return 130
    print_table(results, options.candidate)
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
