"""This checkout: its root, and an environment in which the scripts the tests
start import its sockserver_lib, installed or not."""

from __future__ import annotations

import os
from pathlib import Path

#: The root of this checkout.
REPO = Path(__file__).resolve().parent.parent


def pythonpath() -> str:
    """PYTHONPATH with this checkout first, then whatever the environment had."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def environment() -> dict[str, str]:
    """This process's environment, with pythonpath()."""
    return dict(os.environ, PYTHONPATH=pythonpath())
