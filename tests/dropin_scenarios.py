"""Drop-in scenarios: stdlib servers built on sockserver_lib, one per process.

Run as ``python tests/dropin_scenarios.py NAME``.  Before anything else,
main() puts ``sockserver_lib`` in ``sys.modules["socketserver"]``; the
scenario then imports a standard-library module that is built on
``socketserver`` (http.server, xmlrpc.server, wsgiref.simple_server,
logging.config), serves one real request with it on 127.0.0.1, port 0, and
prints one JSON line: what the client received and the server class's MRO
(``module.qualname`` of each class), so the calling test can check both that
the module worked and that it really ran on sockserver_lib.

It must run in a fresh interpreter: a process that imported the real
``socketserver`` (or a module built on it) earlier keeps those classes.
Importing this module has no side effect (the tests import its constants).
"""

import contextlib
import functools
import json
import os
import socket
import struct
import sys
import tempfile
import urllib.request

import sockserver_lib
from sockserver_lib.lab import CLIENT_TIMEOUT, background_server, recv_all

#: Modules that would hold the real socketserver's classes if imported before
#: the patch (none of the imports above pulls them in).
BUILT_ON_SOCKETSERVER = ("socketserver", "http.server", "xmlrpc.server",
                         "wsgiref.simple_server", "logging.config")


def patch_socketserver() -> None:
    """Make ``import socketserver`` give sockserver_lib from now on."""
    too_early = [name for name in BUILT_ON_SOCKETSERVER if name in sys.modules]
    if too_early:
        raise RuntimeError(f"imported before the patch, so it cannot apply: {too_early}")
    sys.modules["socketserver"] = sockserver_lib


#: The file served by the HTTP scenarios, and what it holds.
PAGE_NAME = "hello.txt"
PAGE_TEXT = "served by sockserver_lib\n"


def mro_names(cls: type) -> list:
    """Return ``module.qualname`` for every class in *cls*'s MRO."""
    return [f"{klass.__module__}.{klass.__qualname__}" for klass in cls.__mro__]


def fetch(url: str) -> str:
    """GET *url* with a timeout, ignoring any proxy set in the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=CLIENT_TIMEOUT) as response:
        return response.read().decode()


def http_url(server, path: str = "/") -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def serve_page(server_class) -> dict:
    """Serve a temporary folder with SimpleHTTPRequestHandler; fetch one file."""
    import http.server

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass  # keep the scenario's stderr for real errors

    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, PAGE_NAME), "w") as page:
            page.write(PAGE_TEXT)
        handler = functools.partial(QuietHandler, directory=folder)
        with background_server(server_class(("127.0.0.1", 0), handler), 0.05) as server:
            body = fetch(http_url(server, "/" + PAGE_NAME))
    return {"body": body, "mro": mro_names(server_class),
            "handler_mro": mro_names(QuietHandler)}


def http_server() -> dict:
    """http.server.HTTPServer serves a file."""
    import http.server

    return serve_page(http.server.HTTPServer)


def threading_http_server() -> dict:
    """http.server.ThreadingHTTPServer serves a file."""
    import http.server

    return serve_page(http.server.ThreadingHTTPServer)


def xmlrpc_server() -> dict:
    """SimpleXMLRPCServer answers a call made with xmlrpc.client.ServerProxy."""
    import xmlrpc.client
    import xmlrpc.server

    class TimeoutTransport(xmlrpc.client.Transport):
        def make_connection(self, host):
            connection = super().make_connection(host)
            connection.timeout = CLIENT_TIMEOUT
            return connection

    server = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
    server.register_function(lambda a, b: a + b, "add")
    with background_server(server, 0.05):
        with xmlrpc.client.ServerProxy(http_url(server), transport=TimeoutTransport()) as proxy:
            result = proxy.add(2, 3)
    return {"result": result, "mro": mro_names(type(server))}


def wsgiref_server() -> dict:
    """wsgiref.simple_server.make_server serves a tiny WSGI application."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"wsgi says hi to {environ['PATH_INFO']}".encode()]

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):
            pass

    server = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
    with background_server(server, 0.05):
        body = fetch(http_url(server, "/probe"))
    return {"body": body, "mro": mro_names(type(server))}


#: The configuration sent to logging.config.listen(): one logger's level.
PROBE_LOGGER = "dropin.probe"
PROBE_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {PROBE_LOGGER: {"level": "WARNING"}},
}


def logging_listener() -> dict:
    """logging.config.listen(0) accepts a configuration sent over a socket."""
    import logging
    import logging.config

    received = []

    def verify(data: bytes) -> bytes:
        received.append(data)
        return data

    level_before = logging.getLogger(PROBE_LOGGER).level
    listener = logging.config.listen(0, verify=verify)
    listener.start()
    try:
        if not listener.ready.wait(CLIENT_TIMEOUT):
            raise TimeoutError("logging.config.listen() did not start")
        server = logging.config._listener  # set by the thread before ready
        send_config(server.server_address, json.dumps(PROBE_CONFIG).encode())
    finally:
        logging.config.stopListening()
        wake(server.server_address)
        listener.join(CLIENT_TIMEOUT)
    return {
        "received": [data.decode() for data in received],
        "level_before": level_before,
        "level_after": logging.getLogger(PROBE_LOGGER).level,
        "listener_stopped": not listener.is_alive(),
        "address": list(server.server_address),
        "mro": mro_names(type(server)),
    }


def send_config(address, config: bytes) -> None:
    """Send *config* framed as logging.config.listen() expects; wait until handled.

    The handler applies the configuration before the server closes the
    connection, so reading until end-of-file waits for it to be applied.
    """
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(struct.pack(">L", len(config)) + config)
        recv_all(sock)


def wake(address) -> None:
    """Connect once so the listener's loop notices stopListening() at once.

    Its loop only checks for the stop flag after select() returns, which
    otherwise takes up to one second; an empty connection is ignored.
    """
    with contextlib.suppress(OSError):
        socket.create_connection(address, timeout=CLIENT_TIMEOUT).close()


SCENARIOS = {
    "http.server.HTTPServer": http_server,
    "http.server.ThreadingHTTPServer": threading_http_server,
    "xmlrpc.server.SimpleXMLRPCServer": xmlrpc_server,
    "wsgiref.simple_server.make_server": wsgiref_server,
    "logging.config.listen": logging_listener,
}


def main(name: str) -> None:
    patch_socketserver()
    result = SCENARIOS[name]()
    result["patched"] = sys.modules["socketserver"] is sockserver_lib
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
