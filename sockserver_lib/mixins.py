"""Layers 8-9: a thread or a process per request, and the combinations.

Mix-ins come first in the bases, because they override process_request()::

    class ThreadingUDPServer(ThreadingMixIn, UDPServer): pass
"""

import os
import select
import socket
import threading

from .servers import TCPServer, UDPServer


class ThreadingMixIn:
    """Handle each request in a new thread.

    daemon_threads: if True, the threads do not keep Python alive at exit and
    server_close() does not wait for them.  block_on_close: if True (the
    default), server_close() waits for the non-daemon threads.

    Beyond the stdlib, max_threads (None, the default: no limit): at most
    this many request threads run at once.  When they all run,
    process_request() waits for one to end before it starts another, so the
    loop stops accepting and new clients wait in the listen backlog
    (datagrams in the socket's buffer): backpressure, without a busy loop.
    shutdown() stays prompt: it ends that wait, and the one request in hand
    gets its thread beyond the limit rather than being dropped.  Pair it
    with a handler timeout, or silent clients can hold every thread.

    Better than the stdlib: a thread forgets itself when it ends, so a
    server that runs for weeks keeps no list of finished threads; and
    server_close() waits for the threads before it closes the socket, so a
    datagram server's last replies are not lost.
    """

    daemon_threads = False
    block_on_close = True
    max_threads = None

    def process_request_thread(self, request, client_address):
        """Like BaseServer.process_request, in a thread, with error handling."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._forget_thread(threading.current_thread())

    def process_request(self, request, client_address):
        """Start a new thread to process the request.

        With max_threads set, first wait while that many threads run.
        """
        running = self._running_threads()
        if self.max_threads is not None:
            running.wait_below(
                self.max_threads, stop=lambda: getattr(self, "_shutdown_request", False)
            )
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address)
        )
        thread.daemon = self.daemon_threads
        if not thread.daemon and self.block_on_close:
            self._live_threads().add(thread)
        running.add()
        try:
            thread.start()
        except BaseException:  # e.g. "can't start new thread": out of resources
            running.remove()
            self._live_threads().discard(thread)  # server_close() cannot join it
            raise

    def _live_threads(self):
        # created on first use: mix-ins must not need their own __init__
        return vars(self).setdefault("_threads", set())

    def _running_threads(self):
        return vars(self).setdefault("_running", _ThreadCount())

    def _forget_thread(self, thread):
        vars(self).get("_threads", set()).discard(thread)
        self._running_threads().remove()

    def _wake_waits(self):
        """Called by shutdown(): end a wait for a free thread."""
        super()._wake_waits()
        self._running_threads().wake()

    def server_close(self):
        """Wait for the request threads (see block_on_close), then close the socket.

        Better than the stdlib, which closes first: the threads of a
        datagram server send their replies through the server's socket.
        """
        for thread in list(vars(self).get("_threads", ())):
            thread.join()
        super().server_close()


class _ThreadCount:
    """How many request threads run; lets the loop wait while there are too many."""

    def __init__(self):
        self._changed = threading.Condition()
        self._running = 0

    def add(self):
        with self._changed:
            self._running += 1

    def remove(self):
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def wait_below(self, limit, stop):
        """Wait until fewer than *limit* run, or until ``stop()`` is true."""
        with self._changed:
            while self._running >= limit and not stop():
                self._changed.wait()

    def wake(self):
        """Make a wait_below() check ``stop()`` again."""
        with self._changed:
            self._changed.notify_all()


if hasattr(os, "fork"):

    class ForkingMixIn:
        """Handle each request in a new process (fork()).

        max_children: at most this many children run at once; the server
        waits for one to end before it forks another (on Linux, shutdown()
        ends that wait: the request in hand then gets its child beyond the
        limit rather than being dropped).  block_on_close: if
        True, server_close() waits for all children.  timeout: how often
        handle_request() reaps children when idle.

        Better than the stdlib: it waits only for its own children (the
        stdlib's waitpid(-1) also reaps processes that the rest of the
        program started).

        Like the stdlib, a child ends with os._exit(), which flushes
        nothing: what a handler prints to stdout, when that is a pipe or a
        file, is lost unless flushed; and what the server printed without
        flushing before a fork is written again by every child that
        flushes.  Flush what the handler and the server print
        (print(..., flush=True)).
        """

        timeout = 300
        active_children = None
        max_children = 40
        block_on_close = True

        def collect_children(self, *, blocking=False):
            """Reap children that have exited; wait if at max_children."""
            if self.active_children is None:
                return
            self._reap(blocking=blocking)
            while len(self.active_children) >= self.max_children:
                if self._shutdown_request:
                    return  # shutdown() must not wait for a child to end
                _wait_for_first_exit(self.active_children, self._shutdown_waker())
                self._reap(blocking=False)

        def _shutdown_waker(self):
            """The socket shutdown() writes to, if this thread runs serve_forever()."""
            waker = getattr(self, "_waker", None)
            if waker is not None and self._loop_thread == threading.get_ident():
                return waker[0]
            return None

        def _reap(self, blocking):
            """Forget the children that have exited (all of them, if *blocking*)."""
            options = 0 if blocking else os.WNOHANG
            for pid in list(self.active_children):
                try:
                    done, _ = os.waitpid(pid, options)
                except ChildProcessError:
                    done = pid  # already reaped elsewhere
                except InterruptedError:
                    continue
                if done:
                    self.active_children.discard(pid)

        def handle_timeout(self):
            """Reap children after self.timeout idle seconds.

            May be extended, do not override.
            """
            self.collect_children()

        def service_actions(self):
            """Reap children on every turn of serve_forever()."""
            self.collect_children()

        def process_request(self, request, client_address):
            """Fork a child that handles the request and exits."""
            if len(self.active_children or ()) >= self.max_children:
                self.collect_children()  # wait for room (serve_forever reaps after each request)
            pid = os.fork()
            if pid:
                if self.active_children is None:
                    self.active_children = set()
                self.active_children.add(pid)
                self.close_request(request)
                return
            status = 1  # the child: handle the request, then exit whatever happens
            try:
                self.finish_request(request, client_address)
                status = 0
            except Exception:
                self.handle_error(request, client_address)
            finally:
                try:
                    self.shutdown_request(request)
                finally:
                    os._exit(status)

        def server_close(self):
            super().server_close()
            self.collect_children(blocking=self.block_on_close)

    def _wait_for_first_exit(pids, waker=None):
        """Block until one of *pids* (our own children) has exited, or *waker*
        (the serve_forever() loop's wake-up socket) is readable.

        Linux: one pidfd per child, and select() wakes on the first to exit
        or on shutdown().  Elsewhere (or on an old kernel): wait for the
        oldest child, and shutdown() waits for it too.  Either way no other
        process's child is touched, as waitpid(-1) would.
        """
        pidfds = []
        try:
            for pid in pids:
                pidfds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            pass  # one has exited already: nothing to wait for
        except (AttributeError, OSError):  # no pidfd_open here, or ENOSYS
            os.waitpid(min(pids), 0)  # reaped; _reap() then forgets it
        else:
            select.select(pidfds + ([waker] if waker is not None else []), [], [])
        finally:
            for fd in pidfds:
                os.close(fd)


class ThreadingUDPServer(ThreadingMixIn, UDPServer): pass
class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass

if hasattr(os, "fork"):
    class ForkingUDPServer(ForkingMixIn, UDPServer): pass
    class ForkingTCPServer(ForkingMixIn, TCPServer): pass

if hasattr(socket, "AF_UNIX"):
    from .servers import UnixDatagramServer, UnixStreamServer

    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer): pass
    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer): pass

    if hasattr(os, "fork"):
        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer): pass
        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer): pass
