"""Parametrization for the contract suite: which implementations, which kinds.

``implementations()`` is the one list of implementations under test; add the
solutions' classes there (e.g. ``("solutions", contract.implementation(
ThreadingMixIn=solutions.ThreadingMixIn))``) and every contract test and docs
example runs on them too.

A test marked ``@pytest.mark.contract_check(check)`` with arguments
``(impl, kind)`` runs for every implementation and every kind the check
applies to, with ids like ``library-tcp-threading``; a kind the platform
lacks (no AF_UNIX, no fork) is skipped with its reason.  Any other test with
an ``impl`` argument runs once per implementation.
"""

from __future__ import annotations

import signal
import socket
import types
from collections.abc import Callable, Iterator

import pytest
from checkout import pythonpath

from sockserver_lib import contract, lab


def implementations() -> list[tuple[str, types.SimpleNamespace]]:
    """(name, implementation namespace) for every implementation under test."""
    return [("library", contract.reference())]


def contract_cases(applies_to: Callable[[contract.Kind], bool]) -> list:
    """pytest.param(impl, kind) for every implementation and applicable kind."""
    cases = []
    for name, impl in implementations():
        for kind in contract.ALL_KINDS:
            if not applies_to(kind):
                continue
            reason = kind.unavailable_reason()
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(impl, kind, id=f"{name}-{kind.id}", marks=marks))
    return cases


def pytest_configure(config: pytest.Config) -> None:
    let_children_see_ctrl_c()
    config.addinivalue_line(
        "markers",
        "contract_check(check): run a contract.Check on every implementation and kind",
    )


def let_children_see_ctrl_c() -> None:
    """Undo an inherited "ignore SIGINT", so scripts the tests stop like Ctrl-C stop.

    A shell without job control starts a background job (``pytest &`` inside a
    script) with SIGINT ignored, and every child inherits that: the CLI, pool
    and lab tests would wait out their timeouts instead.  A signal with a Python
    handler is reset to its default in a child at exec, so the children see it.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("contract_check")
    if marker is not None:
        metafunc.parametrize(("impl", "kind"), contract_cases(marker.args[0].applies_to))
    elif "impl" in metafunc.fixturenames:
        metafunc.parametrize(
            "impl", [pytest.param(impl, id=name) for name, impl in implementations()]
        )


@pytest.fixture
def unix_socket_path() -> Iterator[str]:
    """A fresh path for a Unix socket, removed afterwards; skips without AF_UNIX."""
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("this platform has no Unix domain sockets (AF_UNIX)")
    with lab.temporary_socket_path() as path:
        yield path


@pytest.fixture
def scripts_import_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripts the test starts (e.g. with lab.server_process()) import this
    checkout's sockserver_lib, not another installed one."""
    monkeypatch.setenv("PYTHONPATH", pythonpath())
