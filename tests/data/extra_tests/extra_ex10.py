"""Instructor-only tests: the example for ``python -m sockserver_lib.grade --extra-tests DIR``.

Every module in DIR defines EXTRA_TESTS: {exercise id: [grading.Test, ...]}.
Each test's ``run(students)`` gets what the notebook defined, by the names
of the exercise's check() call (here students["AllowListServer"]), and
raises AssertionError with a message for the student to fail.  The tests
are graded like the exercise's own (isolated, with a time limit, one point
each unless Test(points=...) says otherwise) and appear in every report.
Keep DIR off the students' copy of the kit: they cannot see these.
"""

import sockserver_lib
from sockserver_lib import lab
from sockserver_lib.grading import Test


class _Echo(sockserver_lib.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


def single_address_allowed(students):
    """allowed_networks may name one address, without a /32."""

    class OnlyThisMachine(students["AllowListServer"]):
        allowed_networks = ("127.0.0.1",)

    with lab.background_server(OnlyThisMachine(lab.LOCALHOST, _Echo)) as server:
        reply = lab.tcp_request(server.server_address, b"hi\n")
    assert reply == b"hi\n", (
        "allowed_networks = ('127.0.0.1',) (one address, no /32) should let 127.0.0.1 in; "
        f"the client got {reply!r}. Hint: ipaddress.ip_network() accepts a single address")


EXTRA_TESTS = {"ex10": [Test("single_address_allowed", single_address_allowed)]}
