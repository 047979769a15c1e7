"""sockserver_lib: a readable, drop-in re-implementation of ``socketserver``.

The public names, inheritance, signatures and call order are those of the
standard library's ``socketserver`` (Python 3.13).  ``__all__`` is exactly
the stdlib's list on this platform, so ``from sockserver_lib import *`` is a
drop-in; the kit's extras are importable by name and listed in ``EXTRAS``.
Read it in learning order:

- servers.py   BaseServer (the request loop), TCPServer, UDPServer, Unix*
- handlers.py  BaseRequestHandler, StreamRequestHandler, DatagramRequestHandler
- mixins.py    ThreadingMixIn, ForkingMixIn and the ready-made combinations
- selector.py  beyond the stdlib: one thread, many connections (SelectorMixIn)
- pools.py     beyond the stdlib: ThreadPoolMixIn, PreforkMixIn
- access.py    beyond the stdlib: AllowListMixIn (verify_request by network)

Names that need fork() or AF_UNIX are absent where the platform lacks them,
exactly as in the stdlib.
"""

import importlib
import os
import socket

from .handlers import (
    BaseRequestHandler,
    DatagramRequestHandler,
    LineTooLongError,  # noqa: F401 (in EXTRAS)
    StreamRequestHandler,
)
from .mixins import ThreadingMixIn, ThreadingTCPServer, ThreadingUDPServer
from .servers import BaseServer, OversizeDatagramError, TCPServer, UDPServer  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "BaseServer", "TCPServer", "UDPServer",
    "ThreadingUDPServer", "ThreadingTCPServer",
    "BaseRequestHandler", "StreamRequestHandler",
    "DatagramRequestHandler", "ThreadingMixIn",
]

if hasattr(os, "fork"):
    from .mixins import ForkingMixIn, ForkingTCPServer, ForkingUDPServer

    __all__ += ["ForkingUDPServer", "ForkingTCPServer", "ForkingMixIn"]

if hasattr(socket, "AF_UNIX"):
    from .mixins import ThreadingUnixDatagramServer, ThreadingUnixStreamServer
    from .servers import UnixDatagramServer, UnixStreamServer

    __all__ += [
        "UnixStreamServer", "UnixDatagramServer",
        "ThreadingUnixStreamServer", "ThreadingUnixDatagramServer",
    ]
    if hasattr(os, "fork"):
        from .mixins import ForkingUnixDatagramServer, ForkingUnixStreamServer

        __all__ += ["ForkingUnixStreamServer", "ForkingUnixDatagramServer"]

#: Where each of the kit's extras lives.  They are imported on first use
#: (see __getattr__), so that ``import sockserver_lib`` as a drop-in for
#: ``socketserver`` loads no more than the stdlib does: a forking server
#: copies every page the parent touches after each fork().
_EXTRAS_HOME = {
    "ThreadPoolMixIn": "pools", "ThreadPoolTCPServer": "pools",
    "SelectorMixIn": "selector", "SelectorTCPServer": "selector",
    "EventHandler": "selector", "LineHandler": "selector", "LineEchoHandler": "selector",
    "AllowListMixIn": "access",
}
if hasattr(os, "fork"):
    _EXTRAS_HOME.update(PreforkMixIn="pools", PreforkTCPServer="pools")
if hasattr(socket, "AF_UNIX"):
    _EXTRAS_HOME.update(ThreadPoolUnixStreamServer="pools", SelectorUnixStreamServer="selector")
    if hasattr(os, "fork"):
        _EXTRAS_HOME.update(PreforkUnixStreamServer="pools")

#: The kit's names beyond the stdlib's, importable from here.
EXTRAS = [*_EXTRAS_HOME, "LineTooLongError", "OversizeDatagramError"]


def __getattr__(name):
    """Import an extra from its module the first time it is asked for."""
    home = _EXTRAS_HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__():
    return sorted([*globals(), *_EXTRAS_HOME])
