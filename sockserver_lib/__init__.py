"""sockserver_lib: a readable, drop-in re-implementation of ``socketserver``.

The public names, inheritance, signatures and call order are those of the
standard library's ``socketserver`` (Python 3.13); ``__all__`` lists the same
names the stdlib lists on this platform, plus the kit's extras in
``EXTRAS``.  Read it in learning order:

- servers.py   BaseServer (the request loop), TCPServer, UDPServer, Unix*
- handlers.py  BaseRequestHandler, StreamRequestHandler, DatagramRequestHandler
- mixins.py    ThreadingMixIn, ForkingMixIn and the ready-made combinations
- selector.py  beyond the stdlib: one thread, many connections (SelectorMixIn)
- pools.py     beyond the stdlib: ThreadPoolMixIn, PreforkMixIn

Names that need fork() or AF_UNIX are absent where the platform lacks them,
exactly as in the stdlib.
"""

import os
import socket

from .handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from .mixins import ThreadingMixIn, ThreadingTCPServer, ThreadingUDPServer
from .pools import ThreadPoolMixIn, ThreadPoolTCPServer  # noqa: F401 (in EXTRAS)
from .selector import (  # noqa: F401 (in EXTRAS)
    EventHandler,
    LineEchoHandler,
    LineHandler,
    SelectorMixIn,
    SelectorTCPServer,
)
from .servers import BaseServer, TCPServer, UDPServer

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

#: The kit's names beyond the stdlib's, importable from here.
EXTRAS: list = []

EXTRAS += [
    "ThreadPoolMixIn", "ThreadPoolTCPServer",
    "SelectorMixIn", "SelectorTCPServer", "EventHandler", "LineHandler", "LineEchoHandler",
]
if hasattr(os, "fork"):
    from .pools import PreforkMixIn, PreforkTCPServer  # noqa: F401 (in EXTRAS)

    EXTRAS += ["PreforkMixIn", "PreforkTCPServer"]
if hasattr(socket, "AF_UNIX"):
    from .pools import ThreadPoolUnixStreamServer  # noqa: F401 (in EXTRAS)
    from .selector import SelectorUnixStreamServer  # noqa: F401 (in EXTRAS)

    EXTRAS += ["ThreadPoolUnixStreamServer", "SelectorUnixStreamServer"]
    if hasattr(os, "fork"):
        from .pools import PreforkUnixStreamServer  # noqa: F401 (in EXTRAS)

        EXTRAS += ["PreforkUnixStreamServer"]

# Hardening (issue 7): access control, and the errors of the new limits.
from .access import AllowListMixIn  # noqa: E402, F401 (in EXTRAS)
from .handlers import LineTooLongError  # noqa: E402, F401 (in EXTRAS)
from .servers import OversizeDatagramError  # noqa: E402, F401 (in EXTRAS)

EXTRAS += ["AllowListMixIn", "LineTooLongError", "OversizeDatagramError"]
