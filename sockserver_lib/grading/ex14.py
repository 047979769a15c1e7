"""ex14 (notebook 14, capstone 1): an HTTP/1.0 file server, graded with real HTTP clients.

The student's FileHandler (a StreamRequestHandler whose class attribute
``root`` names the folder it serves) runs on a threading server over a
temporary site made by make_site().  A file, ``secret``, lies just outside
that root (and another in ``site-old/``, a sibling folder whose name starts
with the root's); TRAVERSAL_ATTEMPTS are the request targets that try to
reach them (or /etc/passwd): every one must be refused with 400, 403 or 404,
and no reply may contain the secret.  Each traversal test first asks for its
LOOK_ALIKES, files inside the root whose names look like an attack (a
percent sign, two dots, an encoded letter): a server that refuses anything
unusual fails them.  Replies are read with http.client and
urllib.request, or read whole from a socket and parsed by
http.client.HTTPResponse (a request http.client refuses to send, such as a
NUL byte, goes out on a plain socket).

The sizes the tests send are twice the task's limits (MAX_LINE,
MAX_HEADER_BYTES), and small enough that the whole request fits in the
socket buffers: a server that answers and closes without reading the rest
still gets its answer to the client.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import mimetypes
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import sockserver_lib

from .. import lab
from .helpers import POLL_INTERVAL, _expect, _KeepsHandlerErrors
from .model import Students

#: The task's limits: bytes in the request line or in one header line (its CRLF included),
#: and bytes of all the header lines together.
MAX_LINE = 8192
MAX_HEADER_BYTES = 32768
#: What the file outside the root holds: no reply may contain it.
SECRET = b"the secret outside the root: 5f3c9a77e1\n"
#: The files of the site, by path under the root.
FILES = {
    "hello.txt": b"Hello, HTTP!\n",
    "index.html": b"<!doctype html>\n<title>Home</title>\n<p>Home page</p>\n",
    "data.json": b'{"layer": 14, "protocol": "HTTP/1.0"}\n',
    "subdir/notes.txt": b"notes in a folder\n",
    "big.bin": bytes(range(256)) * 8192,  # 2 MiB, every byte value
    "with space.txt": b"a name with a space\n",
    "caf\u00e9.txt": "caf\u00e9: a name in UTF-8\n".encode(),
    "dots..in..name.txt": b"two dots in a name are not a parent folder\n",
    "100%.txt": b"a per cent sign in a name\n",
    "%41.txt": b"a name that decoded once more would be A.txt\n",
}
#: Statuses that refuse a request for something outside the root.
REFUSALS = (400, 403, 404)
#: Statuses for a request line that is too long (414 is http.server's choice).
LINE_TOO_LONG = (413, 414, 431)
#: Statuses for header lines that are too long or too many.
HEADERS_TOO_LARGE = (413, 431)


class Attempt(NamedTuple):
    """A request target that tries to leave the root.

    *target* is sent as it is on the request line, after "{outside}" is
    replaced by the absolute path of the folder that holds the root and the
    secret (without its leading "/"); *group* names the graded test it
    belongs to.
    """

    name: str
    target: str
    group: str

    def target_for(self, site: Site) -> bytes:
        return self.target.replace("{outside}", str(site.outside).lstrip("/")).encode()


#: Every way the tests try to read the secret (or /etc/passwd) through the server.
TRAVERSAL_ATTEMPTS: tuple[Attempt, ...] = (
    Attempt("dot-dot", "/../secret", "dot_dot"),
    Attempt("dot-dot after a folder", "/subdir/../../secret", "dot_dot"),
    Attempt("dot-dot, twice", "/../../../../../../etc/passwd", "dot_dot"),
    Attempt("dot-dot to a folder named site-old", "/../site-old/secret", "dot_dot"),
    Attempt("encoded dots", "/%2e%2e/secret", "percent_encoded"),
    Attempt("encoded dots and slash, upper case", "/%2E%2E%2Fsecret", "percent_encoded"),
    Attempt("encoded slash", "/..%2fsecret", "percent_encoded"),
    Attempt("one dot encoded", "/.%2e/secret", "percent_encoded"),
    Attempt("the other dot encoded", "/%2e./secret", "percent_encoded"),
    Attempt("encoded slashes after a folder", "/subdir/..%2f..%2fsecret", "percent_encoded"),
    Attempt("double-encoded dots", "/%252e%252e/secret", "double_encoded_and_backslash"),
    Attempt("double-encoded slash", "/..%252fsecret", "double_encoded_and_backslash"),
    Attempt("backslash", "/..\\secret", "double_encoded_and_backslash"),
    Attempt("encoded backslash", "/..%5csecret", "double_encoded_and_backslash"),
    Attempt("overlong UTF-8 dots", "/%c0%ae%c0%ae/secret", "double_encoded_and_backslash"),
    Attempt("absolute path", "//etc/passwd", "absolute"),
    Attempt("absolute path to the secret", "//{outside}/secret", "absolute"),
    Attempt("encoded absolute path", "/%2f{outside}%2fsecret", "absolute"),
    Attempt("symlink to a file outside", "/link-out", "symlink"),
    Attempt("symlink to a folder outside", "/dir-out/secret", "symlink"),
    Attempt("symlink to a folder, then site-old/", "/dir-out/site-old/secret",
            "symlink"),
    Attempt("NUL byte, encoded", "/../secret%00.html", "nul_byte"),
    Attempt("NUL byte, encoded, alone", "/hello.txt%00", "nul_byte"),
    Attempt("NUL byte, raw", "/../secret\x00.html", "nul_byte"),
)

#: Per group of TRAVERSAL_ATTEMPTS, targets that only look like attacks, and the file
#: (a key of FILES) each must be answered with, 200.
LOOK_ALIKES: dict[str, tuple[tuple[str, str], ...]] = {
    "dot_dot": (("/dots..in..name.txt", "dots..in..name.txt"),),
    "percent_encoded": (("/%68ello.txt", "hello.txt"), ("/with%20space.txt", "with space.txt")),
    "double_encoded_and_backslash": (("/100%25.txt", "100%.txt"), ("/%2541.txt", "%41.txt"),
                                     ("/caf%C3%A9.txt", "caf\u00e9.txt")),
    "absolute": (("/subdir/notes.txt", "subdir/notes.txt"),),
    "symlink": (("/link-in", "hello.txt"),),
    "nul_byte": (("/hello.txt", "hello.txt"),),
}


@dataclass(frozen=True)
class Site:
    """A folder to serve (*root*) and, next to it in *outside*, the file ``secret``.

    ``site-old/secret`` (*sibling_secret*) holds the secret too: its folder's name
    starts with the root's.
    """

    outside: Path
    root: Path

    @property
    def secret(self) -> Path:
        return self.outside / "secret"

    @property
    def sibling_secret(self) -> Path:
        return self.outside / "site-old" / "secret"


def make_site(folder: str | os.PathLike) -> Site:
    """Fill *folder* with a site: ``secret`` in it, the root ``site/`` beside it.

    ``site-old/secret``, beside the root too, holds the same secret.  The root
    holds FILES, an empty folder ``empty/`` (no index.html), and symbolic links:
    ``link-in`` to hello.txt (inside), ``link-out`` to the secret and ``dir-out``
    to *folder* (both outside).  Where symbolic links cannot be made, they are
    left out.
    """
    outside = Path(folder).resolve()
    root = outside / "site"
    (root / "empty").mkdir(parents=True)
    (outside / "secret").write_bytes(SECRET)
    (outside / "site-old").mkdir()
    (outside / "site-old" / "secret").write_bytes(SECRET)
    for name, content in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    with contextlib.suppress(OSError, NotImplementedError):
        os.symlink("hello.txt", root / "link-in")
        os.symlink(outside / "secret", root / "link-out")
        os.symlink(outside, root / "dir-out", target_is_directory=True)
    return Site(outside, root)


# --- Serving the student's handler -------------------------------------------------------


class _RecordingServer(_KeepsHandlerErrors, sockserver_lib.ThreadingTCPServer):
    """A threading server that keeps its handlers' errors; its threads never hold it."""

    daemon_threads = True
    block_on_close = False


@contextlib.contextmanager
def _serving(students: Students) -> Iterator[tuple[_RecordingServer, Site]]:
    """The student's FileHandler, with root = a fresh site's root, on a threading server."""
    folder = tempfile.mkdtemp(prefix="ex14-")
    try:
        site = make_site(folder)
        handler = type("FileHandlerUnderTest", (students["FileHandler"],),
                       {"root": str(site.root)})
        server = _RecordingServer(lab.LOCALHOST, handler)
        with lab.background_server(server, POLL_INTERVAL):
            yield server, site
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- Clients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A response as http.client parsed it, and the bytes it was parsed from."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    raw: bytes

    @property
    def after_headers(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


class _Recorded:
    """What http.client.HTTPResponse needs of a socket: the bytes already received."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


def _raw_exchange(server: _RecordingServer, request: bytes) -> bytes:
    """Send *request* on a new connection; return every byte of the reply, until it closes."""
    with lab.connect(server.server_address) as sock:
        sock.sendall(request)
        return lab.recv_all(sock, reset_ends=True)


def _ask(server: _RecordingServer, request: bytes, method: str = "GET") -> Reply:
    """Send *request* as it is; parse the reply with http.client (fail if it is not one)."""
    what = f"the request {_shown(request)}"
    try:
        raw = _raw_exchange(server, request)
    except TimeoutError:
        raise AssertionError(f"{what}: no reply within {lab.CLIENT_TIMEOUT:g} s; does your "
                             "server answer once it has read the blank line that ends the "
                             "headers?") from None
    except OSError as error:
        raise AssertionError(f"{what}: {type(error).__name__}: {error}") from None
    return _parsed(server, raw, method, what)


def _parsed(server: _RecordingServer, raw: bytes, method: str, what: str) -> Reply:
    response = http.client.HTTPResponse(_Recorded(raw), method=method)  # type: ignore[arg-type]
    try:
        response.begin()
        body = response.read()
    except (http.client.HTTPException, OSError, ValueError) as error:
        if not raw:
            raise AssertionError(f"{what}: the server closed the connection without a "
                                 f"response{_handler_errors(server)}") from None
        raise AssertionError(f"{what}: the reply is not an HTTP response "
                             f"({type(error).__name__}); it starts {raw[:80]!r}") from None
    return Reply(response.status, response.headers, body, raw)


def _handler_errors(server: _RecordingServer) -> str:
    if not server.errors:
        return ""
    error = server.errors[-1]
    return (f"; your handler raised {type(error).__name__}: {error} (catch it and answer "
            "with an error status instead)")


def _shown(request: bytes, limit: int = 60) -> str:
    shown = request if len(request) <= limit else request[:limit] + b"..."
    return f"{shown!r} ({len(request):,} bytes)" if len(request) > limit else repr(shown)


def _get(target: str, *, method: str = "GET", headers: tuple = ()) -> bytes:
    lines = [f"{method} {target} HTTP/1.0", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _url(server: _RecordingServer, path: str) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def _connection(server: _RecordingServer) -> http.client.HTTPConnection:
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(host, port, timeout=lab.CLIENT_TIMEOUT)


#: urllib without the proxies of http_proxy and the like: the server is on this machine.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


# --- The tests -------------------------------------------------------------------------------


def _ex14_get_files(students: Students) -> None:
    with _serving(students) as (server, _):
        for name, content in FILES.items():
            quoted = urllib.parse.quote(name)
            for path in (f"/{quoted}", f"/{quoted}?version=2"):
                try:
                    with _NO_PROXY.open(_url(server, path),
                                        timeout=lab.CLIENT_TIMEOUT) as response:
                        status, headers, body = response.status, response.headers, response.read()
                except urllib.error.HTTPError as error:
                    raise AssertionError(f"urllib: GET {path} got {error.code}, expected 200"
                                         f"{_handler_errors(server)}") from None
                except (OSError, http.client.HTTPException) as error:
                    raise AssertionError(f"urllib: GET {path} failed: {type(error).__name__}: "
                                         f"{error}{_handler_errors(server)}") from None
                _expect(status == 200 and body == content,
                        f"GET {path}: status {status}, {len(body):,} bytes; expected 200 and "
                        f"the file's {len(content):,} bytes (a query string ?... is not part "
                        "of the file's name)")
                expected_type = _content_type(name)
                _expect((headers.get("Content-Type") or "").split(";")[0] == expected_type,
                        f"GET {path}: Content-Type {headers.get('Content-Type')!r}, expected "
                        f"{expected_type!r} (mimetypes.guess_type(), application/octet-stream "
                        "when it does not know)")
                _expect(headers.get("Content-Length") == str(len(content)),
                        f"GET {path}: Content-Length {headers.get('Content-Length')!r}, "
                        f"expected {str(len(content))!r}, the file's size in bytes")


def _ex14_folder_index(students: Students) -> None:
    with _serving(students) as (server, _):
        reply = _ask(server, _get("/"))
        _expect(reply.status == 200 and reply.body == FILES["index.html"],
                f"GET / got {reply.status} and {reply.body[:40]!r}; a folder is served as its "
                "index.html")
        for path in ("/empty/", "/empty"):
            reply = _ask(server, _get(path))
            _expect(reply.status == 404, f"GET {path} (a folder without index.html) got "
                    f"{reply.status}, expected 404: no folder listings")


def _ex14_symlink_inside_root(students: Students) -> None:
    with _serving(students) as (server, site):
        reply = _ask(server, _get("/link-in"))
        _expect(reply.status == 200 and reply.body == FILES["hello.txt"],
                f"GET /link-in (a symbolic link to hello.txt, inside the root) got "
                f"{reply.status}; a link that stays inside the root may be served: check where "
                "a path leads after resolving it, not whether it is a link")


def _ex14_head(students: Students) -> None:
    with _serving(students) as (server, _):
        connection = _connection(server)
        try:
            connection.request("HEAD", "/data.json")
            response = connection.getresponse()
            status, length = response.status, response.getheader("Content-Length")
            content_type = response.getheader("Content-Type") or ""
        except (OSError, http.client.HTTPException) as error:
            raise AssertionError(f"http.client: HEAD /data.json failed: {type(error).__name__}: "
                                 f"{error}{_handler_errors(server)}") from None
        finally:
            connection.close()
        expected = FILES["data.json"]
        _expect(status == 200 and length == str(len(expected)),
                f"HEAD /data.json: status {status}, Content-Length {length!r}; expected 200 and "
                f"{str(len(expected))!r}, the same headers as GET")
        _expect(content_type.split(";")[0] == _content_type("data.json"),
                f"HEAD /data.json: Content-Type {content_type!r}, expected "
                f"{_content_type('data.json')!r}, as for GET")
        for target in ("/data.json", "/missing.txt"):
            reply = _ask(server, _get(target, method="HEAD"), method="HEAD")
            _expect(reply.after_headers == b"",
                    f"HEAD {target}: {len(reply.after_headers)} bytes came after the headers; "
                    "a reply to HEAD has the headers of GET and no body, errors included")


def _ex14_not_found(students: Students) -> None:
    with _serving(students) as (server, _):
        for target in ("/missing.txt", "/subdir/missing", "/hello.txt/more"):
            reply = _ask(server, _get(target))
            _expect(reply.status == 404, f"GET {target} got {reply.status}, expected 404")
            sent = len(reply.after_headers)
            _expect(reply.headers.get("Content-Length") == str(sent),
                    f"GET {target}: Content-Length {reply.headers.get('Content-Length')!r} but "
                    f"{sent} bytes came after the headers; an error's body needs its length too")


def _ex14_method_not_allowed(students: Students) -> None:
    with _serving(students) as (server, _):
        for method in ("POST", "PUT", "DELETE"):
            connection = _connection(server)
            try:
                connection.request(method, "/hello.txt", body=b"x=1")
                response = connection.getresponse()
                status, allow = response.status, response.getheader("Allow") or ""
                response.read()
            except (OSError, http.client.HTTPException) as error:
                raise AssertionError(f"http.client: {method} /hello.txt failed: "
                                     f"{type(error).__name__}: {error}"
                                     f"{_handler_errors(server)}") from None
            finally:
                connection.close()
            _expect(status == 405, f"{method} /hello.txt got {status}, expected 405 Method "
                    "Not Allowed")
            allowed = {word.strip() for word in allow.split(",")}
            _expect({"GET", "HEAD"} <= allowed, f"{method} /hello.txt: the 405 reply's Allow "
                    f"header is {allow!r}; it lists the methods the server allows, GET and HEAD")


#: Requests that are not HTTP/1.0 or 1.1 requests: each must get 400.
BAD_REQUESTS = (
    b"garbage\r\n\r\n",
    b"GET /hello.txt\r\n\r\n",  # no version (HTTP/0.9 had none; it is not served here)
    b"GET /hello.txt HTTP/1.0 extra\r\n\r\n",
    b"GET hello.txt HTTP/1.0\r\n\r\n",  # the target does not start with /
    b"GET /hello.txt FTP/1.0\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",  # the start of a TLS handshake
    b"GET /hello.txt HTTP/1.0\r\nno colon in this header\r\n\r\n",
)


def _ex14_bad_request(students: Students) -> None:
    with _serving(students) as (server, _):
        for request in BAD_REQUESTS:
            reply = _ask(server, request)
            _expect(reply.status == 400, f"the request {_shown(request)} got {reply.status}, "
                    "expected 400 Bad Request: a request line is three words (method, a target "
                    "starting with /, HTTP/1.0 or HTTP/1.1) and a header line has a colon")
            _expect(b"Hello, HTTP!" not in reply.body, f"the request {_shown(request)} was "
                    "served the file anyway")


def _ex14_request_line_too_long(students: Students) -> None:
    with _serving(students) as (server, _):
        target = "/" + "a" * (2 * MAX_LINE)
        reply = _ask(server, _get(target))
        _expect(reply.status in LINE_TOO_LONG,
                f"a request line of {len(target) + 15:,} bytes got {reply.status}, expected "
                f"414 (or 413 or 431); see the hints for read_line()")
        reply = _ask(server, _get("/hello.txt"))
        _expect(reply.status == 200, f"after a request line that was too long, GET /hello.txt "
                f"got {reply.status}")


def _ex14_headers_too_large(students: Students) -> None:
    with _serving(students) as (server, _):
        long_line = ("X-Long: " + "b" * (2 * MAX_LINE),)
        many_lines = tuple(f"X-Header-{n}: " + "c" * 1000 for n in range(
            2 * MAX_HEADER_BYTES // 1000))
        for headers, what in ((long_line, f"a header line of {2 * MAX_LINE:,} bytes"),
                              (many_lines, f"{len(many_lines)} header lines of 1 KB")):
            reply = _ask(server, _get("/hello.txt", headers=headers))
            _expect(reply.status in HEADERS_TOO_LARGE,
                    f"{what} got {reply.status}, expected 431 (or 413): limit each header line "
                    f"({MAX_LINE:,} bytes) and all of them together ({MAX_HEADER_BYTES:,})")
        usual = ("Host: example.test", "User-Agent: " + "u" * 4000, "Accept: */*")
        reply = _ask(server, _get("/hello.txt", headers=usual))
        _expect(reply.status == 200 and reply.body == FILES["hello.txt"],
                f"a request with 4 KB of ordinary headers got {reply.status}, expected 200")


def _ex14_one_response_per_connection(students: Students) -> None:
    with _serving(students) as (server, _):
        reply = _ask(server, _get("/hello.txt"))
        status_line = reply.raw.partition(b"\r\n")[0]
        _expect(status_line.startswith(b"HTTP/1.0 200"),
                f"the status line is {status_line!r}; an HTTP/1.0 server starts its reply with "
                "b'HTTP/1.0 200 OK'")
        _expect(reply.after_headers == FILES["hello.txt"],
                f"after the headers came {reply.after_headers[:60]!r}; expected exactly the "
                "file, then the end of the connection")
        connection = _connection(server)  # an HTTP/1.1 client, which would keep the connection
        try:
            connection.request("GET", "/hello.txt")
            response = connection.getresponse()
            body = response.read()
            closed = response.will_close
        finally:
            connection.close()
        _expect(body == FILES["hello.txt"] and closed,
                "an HTTP/1.1 client (http.client) got its file, but was told the connection "
                "stays open; answer with HTTP/1.0, then close")


#: A line of /etc/passwd: a name, a password field, then user and group 0 (root).
_PASSWD_ROOT_LINE = re.compile(rb"(?m)^root:[^:\n]*:0:0:")


def _serves_look_alikes(server: _RecordingServer, group: str) -> None:
    for target, name in LOOK_ALIKES[group]:
        reply = _ask(server, _get(target))
        _expect(reply.status == 200 and reply.body == FILES[name],
                f"GET {target} got {reply.status}, expected 200 and the file {name!r}: it is "
                "inside the root, and only looks like an attack. A safe server refuses "
                "paths that land outside the root, not names that look unusual")


def _traversal(group: str):
    """The test for the TRAVERSAL_ATTEMPTS of *group*, after its LOOK_ALIKES are served."""

    def run(students: Students) -> None:
        with _serving(students) as (server, site):
            _serves_look_alikes(server, group)
            for attempt in TRAVERSAL_ATTEMPTS:
                if attempt.group != group:
                    continue
                target = attempt.target_for(site)
                reply = _ask(server, b"GET " + target + b" HTTP/1.0\r\n\r\n")
                _expect(SECRET not in reply.raw and not _PASSWD_ROOT_LINE.search(reply.body),
                        f"{attempt.name}: GET {target!r} was answered with a file from OUTSIDE "
                        f"the root (status {reply.status}); see the hints of resolve_target()")
                _expect(reply.status in REFUSALS,
                        f"{attempt.name}: GET {target!r} got {reply.status}, expected 400, 403 "
                        "or 404")

    run.__name__ = f"_ex14_traversal_{group}"
    return run


_ex14_traversal_dot_dot = _traversal("dot_dot")
_ex14_traversal_percent_encoded = _traversal("percent_encoded")
_ex14_traversal_double_encoded_and_backslash = _traversal("double_encoded_and_backslash")
_ex14_traversal_absolute = _traversal("absolute")
_ex14_traversal_symlink = _traversal("symlink")
_ex14_traversal_nul_byte = _traversal("nul_byte")


def symlinks_unavailable() -> str | None:
    """Why the symbolic-link test cannot run here, or None."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            os.symlink(folder, os.path.join(folder, "link"))
        except (OSError, NotImplementedError) as error:
            return f"cannot make symbolic links here ({error})"
    return None


#: (name, test) in the order they are graded; SYMLINK_TESTS need symbolic links.
EX14_TESTS = (
    ("get_files", _ex14_get_files),
    ("folder_index", _ex14_folder_index),
    ("head", _ex14_head),
    ("not_found", _ex14_not_found),
    ("method_not_allowed", _ex14_method_not_allowed),
    ("bad_request", _ex14_bad_request),
    ("request_line_too_long", _ex14_request_line_too_long),
    ("headers_too_large", _ex14_headers_too_large),
    ("one_response_per_connection", _ex14_one_response_per_connection),
    ("traversal_dot_dot", _ex14_traversal_dot_dot),
    ("traversal_percent_encoded", _ex14_traversal_percent_encoded),
    ("traversal_double_encoded_and_backslash", _ex14_traversal_double_encoded_and_backslash),
    ("traversal_absolute_paths", _ex14_traversal_absolute),
    ("traversal_nul_byte", _ex14_traversal_nul_byte),
)
SYMLINK_TESTS = (
    ("symlink_inside_root_served", _ex14_symlink_inside_root),
    ("traversal_symlink_out_of_root", _ex14_traversal_symlink),
)

__all__ = ["EX14_TESTS", "FILES", "LOOK_ALIKES", "MAX_HEADER_BYTES", "MAX_LINE", "SECRET",
           "SYMLINK_TESTS", "TRAVERSAL_ATTEMPTS", "Attempt", "Reply", "Site", "make_site",
           "symlinks_unavailable"]
