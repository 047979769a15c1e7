"""``python -m sockserver_lib.bench``: run the latency lab from a shell (see --help)."""

from ._cli import main

if __name__ == "__main__":  # not when a "spawn" child re-imports this module
    raise SystemExit(main())
