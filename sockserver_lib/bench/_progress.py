"""Showing a run's progress on one line that updates in place, in a terminal or a notebook.

run_lab() reports progress as lines of text (``progress=`` callback): one
when a server starts, then ``[done/total] ~N s left ...`` per measurement.
A long run should show that it is alive without printing hundreds of
lines, so these helpers keep one line and rewrite it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _in_a_notebook() -> bool:
    """True inside a Jupyter kernel (IPython is then already imported)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class ProgressLine:
    """A progress callback for run_lab() that keeps one line up to date.

    In a notebook it updates one output (IPython's display handle, so the
    saved notebook keeps only the last state); in a terminal it rewrites
    the line with a carriage return; elsewhere (a log file, CI) it prints
    each line.  Call finish() at the end: it leaves a last line with how
    many measurements took how long.
    """

    def __init__(self, stream: TextIO | None = None, notebook: bool | None = None):
        self.stream = stream or sys.stderr
        self.notebook = _in_a_notebook() if notebook is None else notebook
        self.server = ""
        self.count = 0
        self.started = time.monotonic()
        self._handle: Any = None

    def __call__(self, line: str) -> None:
        if not line.startswith("["):
            self.server = line.split(":", 1)[0]
            text = f"{self.server}: starting"
        else:
            self.count += 1
            text = line
        self._show(text)

    def finish(self) -> None:
        """Replace the progress with one line: what was measured, in how long.

        Safe to call after an error too: the line then says how far it got.
        """
        seconds = time.monotonic() - self.started
        self._show(f"done: {self.count} measurements in {seconds:.0f} s", last=True)

    def _show(self, text: str, last: bool = False) -> None:
        if self.notebook:
            self._show_in_notebook(text)
        elif self.stream.isatty():
            self.stream.write("\r\033[K" + text + ("\n" if last else ""))
            self.stream.flush()
        else:
            print(text, file=self.stream, flush=True)

    def _show_in_notebook(self, text: str) -> None:
        from IPython.display import display  # only reached inside a notebook

        if self._handle is None:
            self._handle = display({"text/plain": text}, raw=True, display_id=True)
        else:
            self._handle.update({"text/plain": text}, raw=True)
