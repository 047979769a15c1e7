"""sockserver_lib is a drop-in for socketserver: stdlib servers run on it unchanged.

Each scenario runs in a fresh interpreter (tests/dropin_scenarios.py) that
sets ``sys.modules["socketserver"] = sockserver_lib`` before importing
http.server, xmlrpc.server, wsgiref.simple_server or logging.config: this
test process has the real modules imported already, so patching here would
prove nothing.  A scenario serves one real request on 127.0.0.1, port 0, and
reports what the client got and the server class's MRO; the MRO is the proof
that the patch took.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from checkout import environment
from dropin_scenarios import PAGE_TEXT, PROBE_CONFIG

TESTS = Path(__file__).resolve().parent
SCENARIOS = TESTS / "dropin_scenarios.py"
#: A scenario that takes longer than this is hanging, not slow.
SCENARIO_TIMEOUT = 30


def run_scenario(name: str) -> dict:
    """Run one scenario in a fresh interpreter and return its JSON result."""
    done = subprocess.run(
        [sys.executable, str(SCENARIOS), name],
        capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, env=environment(),
    )
    assert done.returncode == 0, f"scenario {name} failed:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_runs_on_sockserver_lib(result: dict, *base_classes: str) -> None:
    """The scenario patched socketserver and its server derives from our classes."""
    assert result["patched"] is True
    for base in base_classes:
        assert f"sockserver_lib.{base}" in result["mro"], result["mro"]
    assert not any(name.startswith("socketserver.") for name in result["mro"]), result["mro"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("server", "our_bases"),
    [
        pytest.param("HTTPServer", ["servers.TCPServer", "servers.BaseServer"], id="HTTPServer"),
        pytest.param("ThreadingHTTPServer", ["mixins.ThreadingMixIn", "servers.TCPServer"],
                     id="ThreadingHTTPServer"),
    ],
)
def test_http_server_serves_a_file(server, our_bases):
    result = run_scenario(f"http.server.{server}")

    assert result["body"] == PAGE_TEXT
    assert_runs_on_sockserver_lib(result, *our_bases)
    assert "sockserver_lib.handlers.StreamRequestHandler" in result["handler_mro"]


@pytest.mark.timeout(60)
def test_simple_xmlrpc_server_answers_a_call():
    result = run_scenario("xmlrpc.server.SimpleXMLRPCServer")

    assert result["result"] == 5
    assert_runs_on_sockserver_lib(result, "servers.TCPServer")


@pytest.mark.timeout(60)
def test_wsgiref_make_server_runs_a_wsgi_app():
    result = run_scenario("wsgiref.simple_server.make_server")

    assert result["body"] == "wsgi says hi to /probe"
    assert_runs_on_sockserver_lib(result, "servers.TCPServer")


@pytest.mark.timeout(60)
def test_logging_config_listen_accepts_a_configuration():
    result = run_scenario("logging.config.listen")

    assert [json.loads(data) for data in result["received"]] == [PROBE_CONFIG]
    assert (result["level_before"], result["level_after"]) == (0, 30)  # NOTSET -> WARNING
    assert result["listener_stopped"] is True
    assert result["address"][0] == "127.0.0.1"
    assert_runs_on_sockserver_lib(result, "mixins.ThreadingTCPServer", "mixins.ThreadingMixIn")
