"""What the tracer costs: a server with tracing off, and on, against the same server untraced.

    python benchmarks/trace_overhead.py [--requests 1000] [--rounds 11]

One synchronous TCPServer with an echo handler, served in a background
thread; one client sends --requests requests, a new connection each, one
after another (so the server's own time per request is what is measured).
Four contenders, measured in interleaved rounds (A B C D, D C B A, ...):

  plain       the untraced classes
  plain-again the untraced classes once more: the A/A pair that gives the noise
  off         Trace().wrap(...) with trace.enabled = False
  on          Trace().wrap(...) recording every hook

A first round of each is a warm-up and is not counted.  The median
requests/s of each is compared with plain's; a ratio within the noise floor
of this run (the largest difference between plain and plain-again in one
round) is reported as "within noise".
127.0.0.1 and port 0 only; a timeout on every socket; every server closed.
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import statistics
import sys
import time

from sockserver_lib import lab
from sockserver_lib.trace import Trace

KINDS = ("plain", "plain-again", "off", "on")


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


def classes(kind: str, trace: Trace) -> tuple[type, type]:
    if kind.startswith("plain"):
        return socketserver.TCPServer, Echo
    trace.enabled = kind == "on"
    return trace.wrap(socketserver.TCPServer, Echo)


def requests_per_second(kind: str, requests: int) -> float:
    """Serve *requests* one after another; requests/s as the client saw it."""
    with Trace() as trace:
        server_class, handler = classes(kind, trace)
        with lab.background_server(server_class(lab.LOCALHOST, handler), 0.05) as server:
            start = time.perf_counter()
            for _ in range(requests):
                with socket.create_connection(server.server_address, timeout=5) as client:
                    client.sendall(b"ping\n")
                    if client.makefile("rb").readline() != b"ping\n":
                        raise RuntimeError("wrong reply")
            return requests / (time.perf_counter() - start)


def measure(requests: int, rounds: int) -> dict[str, list[float]]:
    """{kind: requests/s of each round}, after one warm-up round of each."""
    for kind in KINDS:
        requests_per_second(kind, requests)
    results: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_number in range(rounds):
        order = KINDS if round_number % 2 == 0 else tuple(reversed(KINDS))
        for kind in order:
            results[kind].append(requests_per_second(kind, requests))
    return results


def noise_floor(results: dict[str, list[float]]) -> float:
    """The largest relative difference between plain and plain-again in one round."""
    return max(abs(again / plain - 1)
               for plain, again in zip(results["plain"], results["plain-again"], strict=True))


def verdict(ratio: float, noise: float) -> str:
    """How a median ratio against plain reads, given this run's A/A *noise* (a fraction)."""
    if abs(ratio - 1) <= noise:
        return "within noise"
    return f"{(1 - ratio) * 100:.0f}% slower" if ratio < 1 else f"{(ratio - 1) * 100:.0f}% faster"


def report(results: dict[str, list[float]]) -> list[str]:
    medians = {kind: statistics.median(values) for kind, values in results.items()}
    noise = noise_floor(results)
    lines = [f"noise floor (plain against plain-again): {noise * 100:.1f}%"]
    for kind in ("off", "on"):
        ratio = medians[kind] / medians["plain"]
        lines.append(f"tracing {kind:>3}: {medians[kind]:8.0f} req/s, {ratio:.2f}x plain's "
                     f"{medians['plain']:.0f} req/s: {verdict(ratio, noise)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=11, help="rounds of each contender")
    options = parser.parse_args(argv)
    if options.requests < 1 or options.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    for line in report(measure(options.requests, options.rounds)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
