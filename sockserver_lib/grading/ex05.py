"""ex05 (notebook 05, UDP): UDPServer's max_packet_size.
"""

from __future__ import annotations

from .. import lab
from .helpers import _expect, _talking
from .model import Students


def _ex05_max_packet_size(students: Students) -> None:
    class Echo(students["DatagramRequestHandler"]):
        def handle(self):
            self.wfile.write(self.rfile.read())

    server_type = type("Small", (students["UDPServer"],), {"max_packet_size": 8})
    with lab.background_server(server_type(lab.LOCALHOST, Echo)) as server:
        with _talking("a datagram of 20 bytes", "get_request() uses recvfrom()"):
            reply = lab.udp_request(server.server_address, b"0123456789abcdefghij")
    _expect(reply == b"01234567", f"with max_packet_size = 8, a 20-byte datagram should be "
            f"cut to its first 8 bytes, got {reply!r}; get_request() reads "
            "recvfrom(self.max_packet_size)")
