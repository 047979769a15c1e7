"""Print a test module's figures on the terminal, past pytest's output capture."""

from __future__ import annotations

import pytest


def print_past_capture(config: pytest.Config, line: str) -> None:
    """Write *line* on pytest's terminal even while output is captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(line)
