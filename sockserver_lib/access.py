"""Beyond the stdlib: access control with verify_request(), an allow-list.

verify_request(request, client_address) is the request loop's hook for
deciding who is served: it runs after get_request() and before
process_request(), in the loop's own thread (or process), so a refused
client costs no thread and no process.  AllowListMixIn fills it in::

    class LocalOnlyServer(AllowListMixIn, ThreadingTCPServer):
        allowed_networks = ("127.0.0.0/8", "::1/128", "10.1.0.0/16")

Binding to 127.0.0.1 is still the first line of defence: a server that
listens only on loopback cannot be reached from the network at all.  An
allow-list is for a server that must listen more widely but serve only
some networks.  It checks the source address only; it is not
authentication (anyone on an allowed network is let in).
"""

import functools
import ipaddress


class AllowListMixIn:
    """Serve only clients whose IP address is in one of allowed_networks.

    allowed_networks: networks as strings (``"10.0.0.0/8"``, or
    ``"192.0.2.7"`` for one host; IPv4 and IPv6), read on every request,
    so a change takes effect for the next client; empty lets nobody in.
    The default is loopback only.  refused: how many clients were turned
    away (in a prefork worker, that worker's count).

    A refused client's connection is closed at once (a datagram is
    dropped) without a handler running.  An IPv4 client seen through an
    IPv6 socket (``::ffff:10.1.2.3``) is checked as IPv4.  A client with
    no IP address (a Unix socket) is refused: control access to a Unix
    socket with its file's permissions instead.  Invalid networks raise
    ValueError when the server is built; one set later is reported to
    handle_error() and the client refused (fail closed).
    """

    allowed_networks = ("127.0.0.0/8", "::1/128")
    refused = 0

    def server_activate(self):
        """Check allowed_networks, then activate.  May be extended."""
        _networks(tuple(self.allowed_networks))
        super().server_activate()

    def verify_request(self, request, client_address):
        """Refuse (and count) a client outside allowed_networks; else ask the next class."""
        try:
            allowed = self.is_allowed(client_address)
        except ValueError:
            self.handle_error(request, client_address)
            allowed = False
        if not allowed:
            self.refused += 1
            return False
        return super().verify_request(request, client_address)

    def is_allowed(self, client_address):
        """True if *client_address* (host, port, ...) is in allowed_networks."""
        host = client_address[0] if isinstance(client_address, tuple) else None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # not an IP address (a Unix socket's path, or nothing)
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in _networks(tuple(self.allowed_networks)))


@functools.lru_cache(maxsize=32)
def _networks(allowed_networks):
    """The networks of *allowed_networks* (strings), parsed once per distinct list."""
    return tuple(ipaddress.ip_network(network) for network in allowed_networks)
