"""Guard the exported API: the same names, classes, signatures and defaults as socketserver.

Also what a call returns where the library takes a different (faster) path
to it: the byte count of an unbuffered ``wfile.write()``.

The reference is Python 3.13's ``socketserver`` for ``__all__`` (hard-coded
below with the stdlib's own platform conditions) and the running
interpreter's ``socketserver`` for everything else, so a run on 3.10 checks
what 3.10 has (3.10 lacks ``allow_reuse_port`` and the Forking Unix servers).

The library's documented differences from the stdlib ("Better than the
stdlib" in servers.py and mixins.py: shutdown() wakes at once, accept()
backs off when out of descriptors, clearer errors, Unix socket files
removed, threads forget themselves, children reaped by pid) are behaviours:
none changes a public name, signature or default, so nothing below is
exempted.  Private details differ and are not compared: the stdlib keeps
``ThreadingMixIn._threads`` as a class-level placeholder, the library as a
set created per instance on first use.
"""

import array
import inspect
import os
import socket
import socketserver
import subprocess
import sys

import pytest
from checkout import environment

import sockserver_lib
from sockserver_lib import lab

#: Dunder methods that are part of the API; other ``_`` names are private.
PUBLIC_DUNDERS = ("__init__", "__enter__", "__exit__")
#: The settings students override; each must be compared on every class that has it.
DOCUMENTED_SETTINGS = (
    "timeout", "address_family", "socket_type", "request_queue_size",
    "allow_reuse_address", "allow_reuse_port", "max_packet_size",
    "daemon_threads", "block_on_close", "max_children", "active_children",
    "rbufsize", "wbufsize", "disable_nagle_algorithm",
)


def stdlib_313_all() -> list:
    """``socketserver.__all__`` of Python 3.13, with its platform conditions."""
    names = ["BaseServer", "TCPServer", "UDPServer",
             "ThreadingUDPServer", "ThreadingTCPServer",
             "BaseRequestHandler", "StreamRequestHandler",
             "DatagramRequestHandler", "ThreadingMixIn"]
    if hasattr(os, "fork"):
        names += ["ForkingUDPServer", "ForkingTCPServer", "ForkingMixIn"]
    if hasattr(socket, "AF_UNIX"):
        names += ["UnixStreamServer", "UnixDatagramServer",
                  "ThreadingUnixStreamServer", "ThreadingUnixDatagramServer"]
        if hasattr(os, "fork"):
            names += ["ForkingUnixStreamServer", "ForkingUnixDatagramServer"]
    return names


def is_public(name: str) -> bool:
    return not name.startswith("_") or name in PUBLIC_DUNDERS


def defining_class(cls: type, name: str) -> type:
    """The class in *cls*'s MRO whose body defines *name*."""
    return next(klass for klass in cls.__mro__ if name in vars(klass))


def public_methods(cls: type) -> list:
    """Public methods of *cls*, inherited ones included, but not object's."""
    return sorted(
        name for name in dir(cls)
        if is_public(name) and callable(getattr(cls, name))
        and defining_class(cls, name) is not object
    )


def public_settings(cls: type) -> list:
    """Public class attributes of *cls* that are not methods."""
    return sorted(
        name for name in dir(cls)
        if not name.startswith("_") and not callable(getattr(cls, name))
    )


STDLIB_NAMES = list(socketserver.__all__)


def test_all_is_the_313_list_then_only_the_kits_extras():
    stdlib_names = stdlib_313_all()
    ours = sockserver_lib.__all__

    assert ours[: len(stdlib_names)] == stdlib_names
    assert set(ours[len(stdlib_names):]) <= set(sockserver_lib.EXTRAS)


def test_kit_extras_are_importable_and_do_not_shadow_stdlib_names():
    for name in sockserver_lib.EXTRAS:
        assert hasattr(sockserver_lib, name), name
        assert name not in stdlib_313_all(), name


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.10 and 3.11 list fewer names")
def test_the_hard_coded_313_list_matches_the_running_stdlib():
    # 3.12 already has 3.13's list; this guards stdlib_313_all() against typos
    assert socketserver.__all__ == stdlib_313_all()


def test_every_name_of_the_running_stdlib_is_exported():
    missing = [name for name in STDLIB_NAMES if name not in sockserver_lib.__all__]

    assert missing == []
    for name in sockserver_lib.__all__:
        assert hasattr(sockserver_lib, name), f"__all__ lists {name} but it is not defined"


@pytest.mark.parametrize("name", STDLIB_NAMES)
def test_mro_class_names_match_the_stdlib(name):
    ours = [klass.__name__ for klass in getattr(sockserver_lib, name).__mro__]
    theirs = [klass.__name__ for klass in getattr(socketserver, name).__mro__]

    assert ours == theirs


@pytest.mark.parametrize("name", STDLIB_NAMES)
def test_public_methods_have_the_stdlibs_signatures(name):
    ours, theirs = getattr(sockserver_lib, name), getattr(socketserver, name)
    methods = public_methods(theirs)
    assert methods, f"no public method found on socketserver.{name}"

    for method in methods:
        assert hasattr(ours, method), f"{name}.{method} is missing"
        assert inspect.signature(getattr(ours, method)) == inspect.signature(
            getattr(theirs, method)
        ), f"{name}.{method}"


@pytest.mark.parametrize("name", STDLIB_NAMES)
def test_public_methods_are_defined_in_the_same_class(name):
    # e.g. UDPServer must override server_activate itself, as the stdlib does,
    # not merely inherit TCPServer's (a same signature with other behaviour)
    ours, theirs = getattr(sockserver_lib, name), getattr(socketserver, name)

    for method in public_methods(theirs):
        assert (
            defining_class(ours, method).__name__ == defining_class(theirs, method).__name__
        ), f"{name}.{method}"


@pytest.mark.parametrize("name", STDLIB_NAMES)
def test_class_settings_have_the_stdlibs_defaults(name):
    ours, theirs = getattr(sockserver_lib, name), getattr(socketserver, name)

    for setting in public_settings(theirs):
        assert hasattr(ours, setting), f"{name}.{setting} is missing"
        assert getattr(ours, setting) == getattr(theirs, setting), f"{name}.{setting}"


def test_every_documented_setting_is_compared_somewhere():
    compared = {
        setting for name in STDLIB_NAMES for setting in public_settings(getattr(socketserver, name))
    }
    # allow_reuse_port arrived in Python 3.11; ForkingMixIn needs fork()
    expected = set(DOCUMENTED_SETTINGS)
    if sys.version_info < (3, 11):
        expected.discard("allow_reuse_port")
    if not hasattr(os, "fork"):
        expected -= {"max_children", "active_children"}

    assert expected <= compared, expected - compared


IMPORT_PROBE = """
import sys
before = set(sys.modules)
import sockserver_lib
print("\\n".join(sorted(set(sys.modules) - before)))
"""


@pytest.mark.timeout(30)
def test_importing_the_library_imports_only_the_standard_library():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        capture_output=True, text=True, timeout=20, env=environment(),
    )
    assert done.returncode == 0, done.stderr
    imported = done.stdout.split()

    assert "sockserver_lib.servers" in imported  # the probe saw the import
    outside = [
        module for module in imported
        if module.partition(".")[0] not in sys.stdlib_module_names
        and module.partition(".")[0] != "sockserver_lib"
    ]
    assert outside == []


def write_through_unbuffered_wfile(module, data):
    """Write *data* with a StreamRequestHandler's wfile (wbufsize 0) of *module*.

    Returns what wfile.write() returned and the bytes the peer received.
    """
    handler_end, peer_end = socket.socketpair()
    with handler_end, peer_end:
        peer_end.settimeout(5)
        handler = module.StreamRequestHandler.__new__(module.StreamRequestHandler)
        assert handler.wbufsize == 0  # so setup() makes the unbuffered writer
        handler.request = handler_end
        handler.setup()
        try:
            returned = handler.wfile.write(data)
        finally:
            handler.finish()
        handler_end.shutdown(socket.SHUT_WR)
        return returned, lab.recv_all(peer_end)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("data", [
    b"bytes", bytearray(b"bytearray"), memoryview(b"view"), array.array("i", [1, 2, 3]),
], ids=["bytes", "bytearray", "memoryview", "array-of-ints"])
def test_unbuffered_wfile_write_returns_the_number_of_bytes_like_the_stdlib(data):
    expected = (len(bytes(data)), bytes(data))  # an array of 3 ints is 12 bytes, not 3
    assert write_through_unbuffered_wfile(socketserver, data) == expected
    assert write_through_unbuffered_wfile(sockserver_lib, data) == expected
