"""Run a demo server in a terminal until Ctrl-C.

    python -m sockserver_lib serve echo --kind threading --port 9000
    python -m sockserver_lib serve upper --kind selector

It prints where it listens, e.g. ``listening on 127.0.0.1:9000 (threading,
echo); press Ctrl-C to stop``; talk to it with ``nc 127.0.0.1 9000`` or
``telnet 127.0.0.1 9000`` and watch how each kind of server copes with
several clients at once.  Exit status: 0 after Ctrl-C, 1 when the server
cannot run (a busy port, ...), 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Callable

from . import TCPServer, ThreadingTCPServer
from .handlers import StreamRequestHandler
from .pools import ThreadPoolTCPServer
from .selector import LineHandler, SelectorTCPServer

#: Line services: each line received -> the bytes sent back.
SERVICES: dict[str, Callable[[bytes], bytes]] = {
    "echo": lambda line: line,
    "upper": bytes.upper,
}
SERVICE_HELP = "echo: send back each line as received; upper: send it back in upper case"

KIND_HELP = {
    "sync": "one client at a time (TCPServer)",
    "threading": "a thread per connection (ThreadingTCPServer)",
    "forking": "a process per connection (ForkingTCPServer)",
    "threadpool": "a fixed pool of threads (ThreadPoolTCPServer)",
    "prefork": "a fixed pool of pre-forked processes (PreforkTCPServer)",
    "selector": "one thread, an event loop over every connection (SelectorTCPServer)",
}
POOL_KINDS = ("threadpool", "prefork")
PROG = "python -m sockserver_lib"


def server_classes() -> dict[str, type]:
    """The server class for each kind, with settings for an interactive demo.

    Ctrl-C must stop the demo at once even while a client stays connected:
    thread-based servers do not wait for their threads, a prefork server
    gives its workers half a second.  Forked children get Ctrl-C themselves
    (the terminal signals the whole process group).
    """

    class Demo:
        allow_reuse_address = True  # restart on the same port at once

    classes = {
        "sync": type("DemoTCPServer", (Demo, TCPServer), {}),
        "threading": type("DemoThreadingTCPServer", (Demo, ThreadingTCPServer),
                          {"daemon_threads": True}),
        "threadpool": type("DemoThreadPoolTCPServer", (Demo, ThreadPoolTCPServer),
                           {"block_on_close": False}),
        "selector": type("DemoSelectorTCPServer", (Demo, SelectorTCPServer), {}),
    }
    if hasattr(os, "fork"):
        from . import ForkingTCPServer
        from .pools import PreforkTCPServer

        classes["forking"] = type("DemoForkingTCPServer", (Demo, ForkingTCPServer), {})
        classes["prefork"] = type("DemoPreforkTCPServer", (Demo, PreforkTCPServer),
                                  {"stop_timeout": 0.5})
    return classes


def handler_class(kind: str, service: str) -> type:
    """A handler that answers each line with SERVICES[service](line)."""
    answer = staticmethod(SERVICES[service])
    if kind == "selector":
        return type("LineServiceEventHandler", (LineHandler,), {
            "answer": answer,
            "line_received": lambda self, line: self.answer(line),
        })
    return type("LineServiceHandler", (StreamRequestHandler,), {
        "answer": answer,
        "handle": _answer_each_line,
    })


def _answer_each_line(self) -> None:
    for line in self.rfile:
        self.wfile.write(self.answer(line))


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description="Run a sockserver kit demo server in this terminal until Ctrl-C.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve", help="run a line service; talk to it with nc or telnet",
        description="Run a line service until Ctrl-C. " + SERVICE_HELP + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="kinds:\n" + "\n".join(f"  {k:<11} {h}" for k, h in KIND_HELP.items()),
    )
    serve.add_argument("service", choices=sorted(SERVICES), help=SERVICE_HELP)
    serve.add_argument("--kind", choices=list(KIND_HELP), default="threading",
                       help="how the server handles several clients (default: threading)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=port_number, default=0,
                       help="port to listen on, 0-65535 (default: 0, any free port)")
    serve.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="threads or processes in the pool, for threadpool and prefork "
                            "(default: from the CPU count)")
    return parser


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a number from 0 to 65535")
    return int(text)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number >= 1")
    return int(text)


def serve(kind: str, service: str, host: str, port: int, workers: int | None) -> int:
    """Serve until Ctrl-C; return the exit status."""
    classes = server_classes()
    if kind not in classes:
        return fail(f"--kind {kind} needs fork(), which this platform lacks")
    server_class = classes[kind]
    attributes = {"pool_size": workers} if workers else {}
    if ":" in host:
        attributes["address_family"] = socket.AF_INET6
    server_class = type(server_class.__name__, (server_class,), attributes)
    try:
        server = server_class((host, port), handler_class(kind, service))
    except OSError as error:
        return fail(describe(error, host, port))
    with server:
        try:
            bound_host, bound_port = server.server_address[:2]
            print(f"listening on {bound_host}:{bound_port} ({kind}, {service}); "
                  "press Ctrl-C to stop", flush=True)
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


def describe(error: OSError, host: str, port: int) -> str:
    """One line on why the server could not listen, without "[Errno N]"."""
    if error.errno == errno.EADDRINUSE:
        return error.strerror  # the library's message says how to fix it
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


def fail(message: str) -> int:
    """Print a one-line runtime error; return exit status 1."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.workers is not None and arguments.kind not in POOL_KINDS:
        build_parser().error("--workers applies only to --kind threadpool or prefork")
    return serve(arguments.kind, arguments.service, arguments.host, arguments.port,
                 arguments.workers)


if __name__ == "__main__":
    sys.exit(main())
