"""Layer 11: pools -- workers made once and reused for every request.

ThreadingMixIn starts a thread per request and ForkingMixIn forks a process
per request; both pay that start-up cost on every connection, and neither
puts a limit on how many run at once (ForkingMixIn waits at max_children).
A pool starts its workers once and reuses them::

    class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer): pass
    class PreforkTCPServer(PreforkMixIn, TCPServer): pass

ThreadPoolMixIn: the serve_forever() loop accepts connections and puts them
on a bounded queue; ``pool_size`` worker threads take them off and handle
them.  When the queue is full, process_request() waits for room, so the
loop stops accepting and new clients wait in the kernel's listen backlog:
backpressure, instead of a queue that grows without limit.

PreforkMixIn: ``pool_size`` worker processes are forked when
serve_forever() starts; each runs its own accept loop on the listening
socket they all share, so the parent never touches a request.  The parent
supervises: it replaces a worker that dies, and stops and reaps them all
when serve_forever() ends.

Defaults aim at "fast without tuning": a thread pool has 4 threads per
usable CPU (threads mostly wait for the network), a prefork pool one
process per CPU (processes run Python in parallel), and both listen with a
deeper backlog than TCPServer's 5, because a pool may leave connections
waiting there.  The trade-off of any fixed pool: ``pool_size`` clients that
connect and never send occupy every worker (a thread- or process-per-request
server would start another one).
"""

import collections
import contextlib
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from time import monotonic

from .servers import TCPServer

if hasattr(selectors, "PollSelector"):
    _ServerSelector = selectors.PollSelector
else:  # Windows
    _ServerSelector = selectors.SelectSelector

#: listen() backlog of the pool servers: connections wait here when every
#: worker is busy (the kernel caps it at net.core.somaxconn).
POOL_LISTEN_BACKLOG = 128


def _flush_output():
    """Flush stdout and stderr, except where one is None (no console) or closed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.flush()


def usable_cpu_count() -> int:
    """The number of CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class _RequestQueue:
    """A bounded FIFO of (request, client_address) shared with the workers.

    put() waits while the queue is full -- this is the backpressure -- until
    a worker takes a request or stop_waiting() is called.
    """

    def __init__(self, capacity: int):
        self._items = collections.deque()
        self._capacity = capacity
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        self._waiting_allowed = True

    def put(self, item) -> None:
        """Append *item*, first waiting for room while waiting is allowed."""
        with self._not_full:
            while len(self._items) >= self._capacity and self._waiting_allowed:
                self._not_full.wait()
            self._items.append(item)
            self._not_empty.notify()

    def get(self):
        """Remove and return the oldest item, waiting for one if empty."""
        with self._not_empty:
            while not self._items:
                self._not_empty.wait()
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def allow_waiting(self, allowed: bool) -> None:
        """Let put() wait for room (True) or overfill at once (False)."""
        with self._not_full:
            self._waiting_allowed = allowed
            self._not_full.notify_all()


class ThreadPoolMixIn:
    """Handle requests in a fixed pool of worker threads fed by a bounded queue.

    Settings (class attributes): pool_size, the number of worker threads
    (None: 4 per usable CPU); queue_size, how many accepted requests may
    wait for a worker (None: pool_size); block_on_close, whether
    server_close() waits for the workers to finish every accepted request.

    The pool starts in server_activate() and stops in server_close(): the
    workers finish the requests already queued, then exit.  They are daemon
    threads, so a program that forgets server_close() can still exit.

    Backpressure: process_request() waits while the queue is full, so the
    serve_forever() loop stops accepting and new connections wait in the
    listen backlog.  shutdown() stays prompt: it stops that wait, and the
    one request in hand is queued beyond the limit rather than dropped.
    """

    pool_size = None
    queue_size = None
    block_on_close = True
    request_queue_size = POOL_LISTEN_BACKLOG
    _requests = None  # the queue, once server_activate() has started the pool
    _workers = ()

    def server_activate(self):
        """Listen, then start the worker threads.  May be extended."""
        super().server_activate()
        self._start_pool()

    def _start_pool(self):
        size = self.pool_size or 4 * usable_cpu_count()
        self._requests = _RequestQueue(self.queue_size or size)
        self._workers = [
            threading.Thread(
                target=self._work, name=f"{type(self).__name__}-worker-{number}", daemon=True
            )
            for number in range(size)
        ]
        for worker in self._workers:
            worker.start()

    def _work(self):
        """A worker's life: handle queued requests until the stop marker."""
        while (item := self._requests.get()) is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            except SystemExit:
                pass  # ends the request, as it ends a ThreadingMixIn thread; the worker stays
            finally:
                self.shutdown_request(request)

    def process_request(self, request, client_address):
        """Queue the request for a worker; wait for room while the queue is full."""
        self._requests.put((request, client_address))

    def serve_forever(self, poll_interval=0.5):
        """As BaseServer.serve_forever(); waits for room again after a shutdown()."""
        try:
            super().serve_forever(poll_interval)
        finally:
            if self._requests is not None:
                self._requests.allow_waiting(True)

    def shutdown(self):
        """Stop the loop at once, even while it waits for room in the queue."""
        if self._requests is not None:
            self._requests.allow_waiting(False)
        super().shutdown()

    def server_close(self):
        """Close the socket, let the workers finish the queue, then join them."""
        super().server_close()
        workers, self._workers = self._workers, ()
        if workers:
            self._requests.allow_waiting(False)  # closing never waits for room
        for _ in workers:
            self._requests.put(None)  # one stop marker each, after the queued requests
        if self.block_on_close:
            for worker in workers:
                worker.join()


if hasattr(os, "fork"):

    class PreforkMixIn:
        """Handle requests in a fixed pool of pre-forked worker processes.

        Settings (class attributes): pool_size, the number of workers (None:
        one per usable CPU); stop_timeout, how many seconds a worker gets to
        finish the request in hand when the server stops, before it is
        killed.

        Workers are forked when serve_forever() starts, not in
        server_activate(): a server that is built but never served (or
        served again after a shutdown) should not leave processes behind,
        and the pool's life then matches the loop's -- shutdown() stops
        and reaps every worker before it returns.  server_close() does the
        same for any worker still running.  handle_request() does not use
        the workers: it serves one request in the calling process.

        Each worker runs its own accept loop on the listening socket they
        share (made non-blocking, so a worker that loses the race for a
        connection goes back to waiting) and handles requests one at a time
        with the usual finish_request/shutdown_request/handle_error.  Each
        worker is tied to the parent by a socket pair, its "line": the
        parent shuts its end to tell the worker to stop, and the worker's
        exit, for whatever reason, shows up at once as end-of-file on the
        parent's end, so a dead worker is replaced at once.  If the parent
        is killed, the workers see end-of-file too and exit.  Workers
        ignore SIGINT: Ctrl-C in a terminal reaches the whole process group,
        and the parent stops them in order instead.

        service_actions() runs in the parent, after each wake-up of its
        loop.  Forking a process that runs several threads is fragile
        (Python 3.12+ warns about it): run serve_forever() in the main
        thread of a process that has no other threads, e.g. a script or a
        child process.
        """

        pool_size = None
        stop_timeout = 5.0
        request_queue_size = POOL_LISTEN_BACKLOG
        _lines = None  # {worker pid: the parent's end of its line}, while serving
        _my_line = None  # in a worker: the worker's end of its line
        _selector = None  # the parent's selector, while serving

        @property
        def worker_pids(self):
            """The process ids of the running workers (empty when not serving)."""
            return sorted(self._lines or ())

        def serve_forever(self, poll_interval=0.5):
            """Fork the workers, supervise them until shutdown(), then stop them.

            Calls service_actions() at least every *poll_interval* seconds.
            """
            waker = self._start_loop()
            if waker is None:  # shutdown() came first
                return
            timeout = self.socket.gettimeout()
            self._selector = _ServerSelector()
            try:
                self._selector.register(waker, selectors.EVENT_READ)
                self.socket.setblocking(False)
                self._lines = {}
                self._fork_workers(self.pool_size or usable_cpu_count())
                self._supervise(poll_interval)
            finally:
                self._selector.close()
                self._selector = None
                self._stop_workers()
                self.socket.settimeout(timeout)
                self._end_loop()

        def _supervise(self, poll_interval):
            """The parent's loop: replace workers that die, until shutdown()."""
            while not self._shutdown_request:
                for key, _ in self._selector.select(poll_interval):
                    if key.data is not None and not self._shutdown_request:
                        self._replace_worker(key.data)
                self.service_actions()

        def _fork_workers(self, count):
            _flush_output()  # else every worker writes our pending output again when it exits
            for _ in range(count):
                parent_end, worker_end = socket.socketpair()
                pid = os.fork()
                if pid == 0:
                    parent_end.close()
                    self._run_worker(worker_end)  # never returns
                worker_end.close()
                self._lines[pid] = parent_end
                self._selector.register(parent_end, selectors.EVENT_READ, pid)

        def _replace_worker(self, pid):
            """A worker's line is at end-of-file: reap the worker, fork another."""
            line = self._lines.pop(pid)
            self._selector.unregister(line)
            line.close()
            os.waitpid(pid, 0)  # it is exiting: its line closed with its files
            self._fork_workers(1)

        def _run_worker(self, line):
            """A worker process: accept and handle requests until told to stop."""
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                self._my_line = line
                for parent_end in [*self._lines.values(), *self._waker]:  # the parent's only
                    parent_end.close()
                self._lines = None
                self._waker = self._loop_thread = None  # this process runs no serve_forever()
                with _ServerSelector() as selector:
                    selector.register(self, selectors.EVENT_READ)
                    selector.register(line, selectors.EVENT_READ)
                    while not any(key.fileobj is line for key, _ in selector.select()):
                        self._handle_request_noblock()
                status = 0
            except Exception:
                traceback.print_exc()  # a fault in the loop itself: handlers have handle_error
            finally:
                try:
                    _flush_output()  # os._exit() does not, and a worker serves for long
                finally:
                    os._exit(status)

        def get_request(self):
            """Accept a connection; it is blocking whatever the listening socket is.

            Some systems (BSD, macOS) let an accepted socket inherit the
            listening socket's non-blocking mode.
            """
            request, client_address = super().get_request()
            request.settimeout(socket.getdefaulttimeout())
            return request, client_address

        def _stop_workers(self):
            """Tell every worker to stop, wait up to stop_timeout, kill the rest, reap."""
            lines, self._lines = self._lines or {}, None
            for line in lines.values():
                with contextlib.suppress(OSError):  # a worker that is gone already
                    line.shutdown(socket.SHUT_WR)  # the worker reads end-of-file: stop
            self._kill_if_still_running(lines, deadline=monotonic() + self.stop_timeout)
            for pid, line in lines.items():
                line.close()
                os.waitpid(pid, 0)

        @staticmethod
        def _kill_if_still_running(lines, deadline):
            """Wait until every worker's line is at end-of-file; SIGKILL the late."""
            running = set(lines)
            with _ServerSelector() as selector:
                for pid, line in lines.items():
                    selector.register(line, selectors.EVENT_READ, pid)
                while running and (time_left := deadline - monotonic()) > 0:
                    for key, _ in selector.select(time_left):
                        selector.unregister(key.fileobj)
                        running.discard(key.data)
            for pid in running:
                os.kill(pid, signal.SIGKILL)

        def shutdown(self):
            """Stop serving: the loop ends, every worker is stopped and reaped.

            Raises RuntimeError in a worker process (a handler of a prefork
            server): only the parent can stop the pool.
            """
            if self._my_line is not None:
                raise RuntimeError(
                    "shutdown() was called in a prefork worker process (from a "
                    "handler?); only the parent process can stop the server: "
                    "signal it instead, e.g. os.kill(os.getppid(), signal.SIGINT)"
                )
            super().shutdown()

        def server_close(self):
            """Close the socket; stop and reap any worker still running."""
            self._stop_workers()
            super().server_close()


class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer): pass

if hasattr(os, "fork"):
    class PreforkTCPServer(PreforkMixIn, TCPServer): pass

if hasattr(socket, "AF_UNIX"):
    from .servers import UnixStreamServer

    class ThreadPoolUnixStreamServer(ThreadPoolMixIn, UnixStreamServer): pass

    if hasattr(os, "fork"):
        class PreforkUnixStreamServer(PreforkMixIn, UnixStreamServer): pass
