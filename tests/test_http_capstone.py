"""Capstone 1 (notebook 14, exercise ex14): the HTTP/1.0 file server and its grader.

What the grader's own tests (sockserver_lib/grading/ex14.py) do not show:

- every entry of TRAVERSAL_ATTEMPTS, run one by one against the solution's
  FileHandler, is refused, and the server never even *opens* the secret
  (an audit hook watches every open() in the process, server threads
  included);
- the list covers the encodings the exercise promises, and every group of
  it is graded;
- the grader's checks can fail: handlers with a classic mistake (no
  containment check, decoding twice, no limits, following links, the
  standard library's SimpleHTTPRequestHandler) fail the tests aimed at that
  mistake and pass the others;
- the exercise's Try-it cells run on the untouched stubs without crashing.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from checkout import REPO

from sockserver_lib import StreamRequestHandler
from sockserver_lib.grading import EXERCISES, ex14
from sockserver_lib.grading.ex14 import SECRET, TRAVERSAL_ATTEMPTS

SOLUTION = REPO / "solutions" / "ex14_http_server.ipynb"
EXERCISE = REPO / "exercises" / "ex14_http_server.ipynb"
TESTS = dict(ex14.EX14_TESTS + ex14.SYMLINK_TESTS)
needs_symlinks = pytest.mark.skipif(ex14.symlinks_unavailable() is not None,
                                    reason=str(ex14.symlinks_unavailable()))


def notebook_namespace(path, *, try_it: bool = False) -> dict:
    """Run a notebook's code cells (not the check() cell; Try-it cells only if *try_it*)."""
    namespace: dict = {"__name__": f"__{path.stem}__"}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or "check(" in cell.source:
            continue
        if "try-it" in cell.metadata.get("tags", []) and not try_it:
            continue
        exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def solution() -> dict:
    return notebook_namespace(SOLUTION)


# --- Every encoding, one by one, against the solution --------------------------------

#: While a test runs: the real paths opened in this process (an audit hook fills it).
_OPENED: list[str] | None = None


def _watch_opens(event: str, args: tuple) -> None:
    if event != "open" or _OPENED is None or not isinstance(args[0], (str, bytes)):
        return
    with contextlib.suppress(ValueError, OSError, TypeError):
        _OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_watch_opens)  # an audit hook cannot be removed: it does nothing unless watched


@contextlib.contextmanager
def watching_opens() -> Iterator[list[str]]:
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


@pytest.mark.parametrize("attempt", TRAVERSAL_ATTEMPTS, ids=lambda attempt: attempt.name)
def test_the_solution_refuses_every_traversal_attempt_without_opening_the_secret(
        solution, attempt):
    if attempt.group == "symlink" and ex14.symlinks_unavailable():
        pytest.skip(ex14.symlinks_unavailable())
    students = {"FileHandler": solution["FileHandler"]}
    with ex14._serving(students) as (server, site), watching_opens() as opened:
        reply = ex14._ask(server, b"GET " + attempt.target_for(site) + b" HTTP/1.0\r\n\r\n")
    assert reply.status in ex14.REFUSALS, (attempt, reply.status)
    assert SECRET not in reply.raw
    assert str(site.secret) not in opened, f"{attempt.name}: the server opened the secret"
    assert str(site.sibling_secret) not in opened, f"{attempt.name}: it opened site-old/secret"
    assert server.errors == []


@needs_symlinks
def test_the_watch_sees_the_secret_opened_through_a_link(solution):
    """The audit hook is not blind: a handler that follows links is caught opening it."""
    namespace = notebook_namespace(SOLUTION)
    namespace["resolve_target"] = _without_containment(namespace)
    students = {"FileHandler": namespace["FileHandler"]}
    with ex14._serving(students) as (server, site), watching_opens() as opened:
        reply = ex14._ask(server, b"GET /link-out HTTP/1.0\r\n\r\n")
    assert SECRET in reply.raw and str(site.secret) in opened


# --- The list itself ----------------------------------------------------------------------

#: The encodings exercise 14 promises to try (as request targets).
PROMISED = ("/../secret", "/%2e%2e/secret", "/%2E%2E%2Fsecret", "/..%2fsecret",
            "/%252e%252e/secret", "/..\\secret", "//etc/passwd", "/subdir/../../secret",
            "/.%2e/secret", "/%2e./secret")


def test_traversal_attempts_cover_the_promised_encodings():
    targets = [attempt.target for attempt in TRAVERSAL_ATTEMPTS]
    assert set(PROMISED) <= set(targets)
    assert len(set(targets)) == len(targets) >= 10
    assert len({attempt.name for attempt in TRAVERSAL_ATTEMPTS}) == len(TRAVERSAL_ATTEMPTS)
    groups = {attempt.group for attempt in TRAVERSAL_ATTEMPTS}
    assert {"symlink", "nul_byte", "absolute"} <= groups
    assert any("\x00" in target for target in targets)
    assert any("%00" in target for target in targets)


def test_every_group_of_attempts_has_look_alikes_and_is_graded():
    graded = {test.run.__name__ for test in EXERCISES["ex14"].tests}
    groups = {attempt.group for attempt in TRAVERSAL_ATTEMPTS}
    assert groups == set(ex14.LOOK_ALIKES)
    for group in groups:
        assert f"_ex14_traversal_{group}" in graded, group


def test_look_alikes_name_files_inside_the_root(tmp_path):
    site = ex14.make_site(tmp_path)
    for target, name in (pair for pairs in ex14.LOOK_ALIKES.values() for pair in pairs):
        decoded = urllib.parse.unquote(target, errors="strict").lstrip("/")
        assert (site.root / decoded).resolve() == (site.root / name).resolve(), target
        assert name in ex14.FILES


def test_make_site_puts_the_secret_just_outside_the_root(tmp_path):
    site = ex14.make_site(tmp_path)
    assert site.root.parent == site.secret.parent == tmp_path.resolve()
    assert site.secret.read_bytes() == SECRET
    assert site.sibling_secret.read_bytes() == SECRET
    assert site.sibling_secret.parent.name.startswith(site.root.name)
    for name, content in ex14.FILES.items():
        assert (site.root / name).read_bytes() == content
    if ex14.symlinks_unavailable() is None:
        assert os.path.realpath(site.root / "link-out") == str(site.secret)
        assert os.path.realpath(site.root / "dir-out") == str(tmp_path.resolve())
        assert os.path.realpath(site.root / "link-in") == str(site.root / "hello.txt")


def test_attempt_targets_fill_in_the_outside_folder(tmp_path):
    site = ex14.make_site(tmp_path)
    absolute = next(a for a in TRAVERSAL_ATTEMPTS if "{outside}" in a.target)
    assert absolute.target_for(site).startswith(b"//" + str(site.outside).lstrip("/").encode())


# --- The checks can fail ----------------------------------------------------------------------

def _without_containment(namespace: dict) -> Callable:
    """resolve_target() that decodes and joins, and never asks where the path landed."""
    http_error = namespace["HTTPError"]

    def resolve_target(root, target):
        path = os.path.join(root, urllib.parse.unquote(target.split("?")[0]).lstrip("/"))
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if not os.path.isfile(path):
            raise http_error(404)
        return path

    return resolve_target


def _decoding_twice(namespace: dict) -> Callable:
    """The solution's resolve_target() on a target decoded once more, and no containment."""
    loose = _without_containment(namespace)
    return lambda root, target: loose(root, urllib.parse.unquote(target))


def _checked(namespace: dict, *, resolve: Callable, contains: Callable) -> Callable:
    """The solution's resolve_target() with its own way to *resolve* a path and to check
    that the root *contains* it."""
    http_error = namespace["HTTPError"]

    def resolve_target(root, target):
        try:
            path = urllib.parse.unquote(target.split("?")[0], errors="strict")
        except UnicodeDecodeError:
            raise http_error(400) from None
        if "\x00" in path or "\\" in path:
            raise http_error(400)
        root = resolve(root)
        candidate = resolve(os.path.join(root, path.lstrip("/")))
        if os.path.isdir(candidate):
            candidate = resolve(os.path.join(candidate, "index.html"))
        if not contains(root, candidate) or not os.path.isfile(candidate):
            raise http_error(404)
        return candidate

    return resolve_target


def _inside(root: str, path: str) -> bool:
    return Path(path).is_relative_to(root)


def _normpath_only(namespace: dict) -> Callable:
    """Containment checked on the text (normpath), so links are not followed."""
    return _checked(namespace, resolve=os.path.normpath, contains=_inside)


def _prefix_only(namespace: dict) -> Callable:
    """Real paths, but containment as a prefix of the text: site-old/ starts with site."""
    return _checked(namespace, resolve=os.path.realpath,
                    contains=lambda root, path: path.startswith(root))


def _normalised_then_prefix(namespace: dict) -> Callable:
    """The text normalised first (so a leading .. is dropped), then real paths and a
    prefix check: only a link can reach site-old/."""
    prefix_only = _prefix_only(namespace)
    return lambda root, target: prefix_only(root, os.path.normpath("/" + target))


def _decoding_twice_then_contained(namespace: dict) -> Callable:
    """The solution's resolve_target() (containment included) on a target decoded once more."""
    solution = namespace["resolve_target"]
    return lambda root, target: solution(root, urllib.parse.unquote(target))


def _refusing_what_looks_odd(namespace: dict) -> Callable:
    """The solution's resolve_target(), behind a refusal of every "%" and ".." in the target."""
    http_error = namespace["HTTPError"]
    solution = namespace["resolve_target"]

    def resolve_target(root, target):
        if "%" in target or ".." in target:
            raise http_error(400)
        return solution(root, target)

    return resolve_target


def _unlimited_read_line(namespace: dict) -> Callable:
    return lambda rfile, limit, status: rfile.readline()


class _StdlibFiles(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler, given its folder by the class attribute the grader sets."""

    root = "."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=self.root, **kwargs)

    def log_message(self, format, *args):
        pass


def _failing(handler: type) -> set[str]:
    """The names of the ex14 tests that *handler* fails (run in this process)."""
    failed = set()
    for name, test in TESTS.items():
        try:
            test({"FileHandler": handler})
        except AssertionError:
            failed.add(name)
    return failed


TRAVERSAL = {"traversal_dot_dot", "traversal_percent_encoded",
             "traversal_double_encoded_and_backslash", "traversal_absolute_paths",
             "traversal_nul_byte", "traversal_symlink_out_of_root"}


@needs_symlinks
@pytest.mark.parametrize("mistake, patch, expected", [
    ("no containment check", ("resolve_target", _without_containment),
     {"traversal_dot_dot", "traversal_percent_encoded", "traversal_symlink_out_of_root"}),
    ("decoding twice", ("resolve_target", _decoding_twice),
     {"get_files", "traversal_dot_dot", "traversal_percent_encoded",
      "traversal_symlink_out_of_root", "traversal_double_encoded_and_backslash"}),
    ("checking the text, not where links lead", ("resolve_target", _normpath_only),
     {"traversal_symlink_out_of_root"}),
    ("containment as a prefix of the text", ("resolve_target", _prefix_only),
     {"traversal_dot_dot", "traversal_symlink_out_of_root"}),
    ("normalised, then a prefix of the text", ("resolve_target", _normalised_then_prefix),
     {"traversal_symlink_out_of_root"}),
    ("decoding twice, then checking containment",
     ("resolve_target", _decoding_twice_then_contained),
     {"get_files", "traversal_double_encoded_and_backslash"}),
    ("refusing every % and ..", ("resolve_target", _refusing_what_looks_odd),
     {"get_files", "traversal_dot_dot", "traversal_percent_encoded",
      "traversal_double_encoded_and_backslash"}),
    ("readline() without a limit", ("read_line", _unlimited_read_line),
     {"request_line_too_long", "headers_too_large"}),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_classic_mistake_fails_exactly_the_tests_aimed_at_it(mistake, patch, expected):
    namespace = notebook_namespace(SOLUTION)
    name, make = patch
    namespace[name] = make(namespace)
    assert _failing(namespace["FileHandler"]) == expected, mistake


@needs_symlinks
def test_the_standard_librarys_file_handler_fails_where_notebook_14_says():
    failed = _failing(_StdlibFiles)
    # follows links out of its folder; no reply on a NUL byte; 501 for POST; HTTP/0.9 without
    # a version; 64 KiB limits; folder listings.
    assert {"traversal_symlink_out_of_root", "traversal_nul_byte", "method_not_allowed",
            "bad_request", "request_line_too_long", "headers_too_large",
            "folder_index"} == failed
    assert not failed & (TRAVERSAL - {"traversal_symlink_out_of_root", "traversal_nul_byte"})


def test_the_solution_passes_every_test_in_this_process(solution):
    assert _failing(solution["FileHandler"]) == set()


# --- The exercise ---------------------------------------------------------------------------

def test_the_exercises_try_it_cells_report_the_stubs_instead_of_crashing(capsys):
    notebook_namespace(EXERCISE, try_it=True)
    printed = capsys.readouterr().out
    assert "not written yet" in printed
    assert "SECRET LEAKED" not in printed


def test_the_exercise_states_the_limits_the_grader_uses():
    namespace = notebook_namespace(EXERCISE)
    assert namespace["MAX_LINE"] == ex14.MAX_LINE
    assert namespace["MAX_HEADER_BYTES"] == ex14.MAX_HEADER_BYTES


class _Silent(StreamRequestHandler):
    """Reads the request line, then closes without a word."""

    root = "."

    def handle(self):
        self.rfile.readline(100)


def test_a_server_that_closes_without_a_reply_gets_a_message_that_says_so():
    with pytest.raises(AssertionError, match="closed connection without response"):
        TESTS["get_files"]({"FileHandler": _Silent})
