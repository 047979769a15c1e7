"""sockserver_lib: a readable, drop-in re-implementation of ``socketserver``.

The public names, inheritance, signatures and call order are those of the
standard library's ``socketserver`` (Python 3.13); ``__all__`` lists the same
names the stdlib lists on this platform, plus the kit's extras in
``EXTRAS``.  Read it in learning order:

- servers.py   BaseServer (the request loop), TCPServer, UDPServer, Unix*
- handlers.py  BaseRequestHandler, StreamRequestHandler, DatagramRequestHandler
- mixins.py    ThreadingMixIn, ForkingMixIn and the ready-made combinations

Names that need fork() or AF_UNIX are absent where the platform lacks them,
exactly as in the stdlib.
"""

import os
import socket

from .handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from .mixins import ThreadingMixIn, ThreadingTCPServer, ThreadingUDPServer
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
