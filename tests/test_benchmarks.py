"""benchmarks/compare_stdlib.py on a tiny run: it works and reports, never how fast.

The benchmarks are not tests, but a script that breaks unnoticed misleads
the next person who quotes its figures; so each mode runs here once with a
handful of requests.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "compare_stdlib.py"
TINY_RUN = ["--requests", "20", "--repeat", "2", "--warmup", "5", "--concurrency", "2",
            "--kinds", "sync,threading"]
#: A ratio as the table prints it, e.g. "0.98x".
RATIO = r"\d+\.\d\dx"


def run_benchmark(*options):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY_RUN, *options],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.timeout(90)
def test_the_library_against_the_stdlib_prints_a_ratio_per_kind():
    output = run_benchmark()
    for kind in ("sync", "threading"):
        assert re.search(rf"^\s*{kind}\s+sockserver_lib from .*sockserver_lib", output, re.M)
        assert re.search(rf"^{kind}\s+lib/stdlib\s+{RATIO}", output, re.M), output


@pytest.mark.timeout(90)
def test_self_check_compares_the_stdlib_with_a_copy_of_itself():
    output = run_benchmark("--self-check")
    copy_file = re.search(r"socketserver-copy from (\S+)", output).group(1)
    stdlib_file = re.search(r"socketserver\s+from (\S+)", output).group(1)
    assert copy_file == stdlib_file  # the very same source (and cached bytecode)
    assert "sockserver_lib" not in output
    assert re.search(rf"^sync\s+copy/stdlib\s+{RATIO}", output, re.M), output


def test_a_bad_option_is_refused_with_a_clear_message():
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--kinds", "sync,carrier-pigeon"],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )
    assert completed.returncode == 2
    assert "unknown kind(s) ['carrier-pigeon']" in completed.stderr
