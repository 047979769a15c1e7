"""The contract: behaviour every socketserver implementation must show.

Each check is a plain function ``check(impl, kind)`` that raises
AssertionError with a message for a learner (what was expected, what
happened, a hint) when the implementation misbehaves.  The same checks are
run by tests/ against the reference library and the solutions, and by
sockserver_lib.grading against a student's classes.

``impl`` is a namespace with the socketserver names (TCPServer,
ThreadingMixIn, StreamRequestHandler, ...): ``reference()`` gives the
library's, ``implementation(ThreadingMixIn=MyMixIn)`` the library's with a
student's classes put in.  ``kind`` says which server to build from it.

The checks, in learning order: an echo round trip; handle_request() with and
without a timeout; verify_request() denying a client; a handler that raises
(handle_error, SystemExit); the order of setup/handle/finish; readline()
against a single recv(); shutdown() and server_close(); no leaked
descriptors, threads or processes; a silent client blocking only a
synchronous server.

Every check is bounded in time (a timeout on every socket and every wait)
and stops and closes every server it starts, even when the implementation
under test is broken, so a grader running them cannot hang.

The package: core.py (kinds, implementations, the registry CHECKS, settings,
failure messages), harness.py (servers, clients and child processes with
bounded waits), then one module per layer of the kit, each registering its
checks in CHECKS when imported:

- servers.py    TCP, UDP and Unix servers (notebooks 03, 05, 06): the echo round trip
- requests.py   the request loop (02): handle_request(), its timeout, verify_request()
- handlers.py   request handlers (04): handle_error(), SystemExit, hooks, readline()
- shutdown.py   stopping (07): shutdown() ends serve_forever(), server_close() frees the address
- leaks.py      no descriptor, thread or process left after many requests
- threads.py    threads (08): a silent client, server_close() waiting for threads
- processes.py  processes (09): reaping the children
"""

from .core import (
    ABSENCE,
    ALL_KINDS,
    CHECKS,
    CONCURRENCIES,
    GARBAGE,
    LEAK_ROUNDS,
    PATIENCE,
    POLL_INTERVAL,
    POOL_CONCURRENCIES,
    TRANSPORTS,
    Check,
    Kind,
    check,
    implementation,
    reference,
    server_class,
)

# The layers, in learning order: importing a layer registers its checks, so
# this order is the order of CHECKS (and of every report).  Keep it.
# isort: off
from .servers import echo_round_trip
from .requests import (
    handle_request_serves_one_request,
    handle_request_times_out,
    verify_request_false_denies_client,
)
from .handlers import (
    handler_exception_goes_to_handle_error,
    handler_hooks_run_in_order,
    readline_vs_single_recv,
    system_exit_in_handler_propagates,
)
from .shutdown import server_close_releases_address, shutdown_stops_serve_forever
from .leaks import no_leaks_after_many_requests
from .threads import (
    server_close_waits_for_request_threads,
    silent_client_blocks_sync_server,
    silent_client_does_not_block_concurrent_server,
)
from .processes import forking_server_reaps_children
# isort: on

__all__ = [
    "TRANSPORTS", "CONCURRENCIES", "POOL_CONCURRENCIES", "Kind", "ALL_KINDS",
    "reference", "implementation", "server_class", "Check", "CHECKS", "check",
    "PATIENCE", "ABSENCE", "POLL_INTERVAL", "LEAK_ROUNDS", "GARBAGE",
    # the checks, in the order of CHECKS
    "echo_round_trip", "handle_request_serves_one_request", "handle_request_times_out",
    "verify_request_false_denies_client", "handler_exception_goes_to_handle_error",
    "system_exit_in_handler_propagates", "handler_hooks_run_in_order",
    "readline_vs_single_recv", "shutdown_stops_serve_forever",
    "server_close_releases_address", "no_leaks_after_many_requests",
    "silent_client_does_not_block_concurrent_server", "silent_client_blocks_sync_server",
    "server_close_waits_for_request_threads", "forking_server_reaps_children",
]
