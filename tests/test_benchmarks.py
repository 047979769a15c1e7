"""benchmarks/compare_stdlib.py on a tiny run: it works and reports, never how fast.

The benchmarks are not tests, but a script that breaks unnoticed misleads
the next person who quotes its figures; so each mode runs here once with a
handful of requests.
"""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from checkout import REPO

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


def load_compare_stdlib():
    spec = importlib.util.spec_from_file_location("compare_stdlib", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def address_randomization_is_off(pid: int) -> bool:
    """From /proc: does process *pid* run with ADDR_NO_RANDOMIZE (setarch -R)?"""
    personality = int(Path(f"/proc/{pid}/personality").read_text(), 16)
    return bool(personality & 0x0040000)


@pytest.mark.skipif(not (shutil.which("setarch") and Path("/proc/self/personality").exists()),
                    reason="--fixed-layout needs Linux and its setarch command")
@pytest.mark.timeout(60)
def test_fixed_layout_runs_the_servers_without_address_randomization():
    compare_stdlib = load_compare_stdlib()
    assert compare_stdlib.parse_options(["--fixed-layout"]).fixed_layout
    for fixed_layout in (True, False):
        with compare_stdlib.server_process("socketserver", "sync", fixed_layout) as server:
            assert address_randomization_is_off(server.process.pid) == fixed_layout
            assert compare_stdlib.one_request(server.address) > 0  # and it serves


def _trace_overhead():
    spec = importlib.util.spec_from_file_location("trace_overhead",
                                                  REPO / "benchmarks" / "trace_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(90)
def test_the_tracer_overhead_benchmark_reports_both_ratios_on_a_tiny_run():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "trace_overhead.py"), "--requests", "10",
         "--rounds", "2"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^noise floor \(plain against plain-again\): \d+\.\d%$", completed.stdout,
                     re.M)
    for kind in ("off", " on"):
        assert re.search(rf"^tracing {kind}: .* {RATIO} plain's", completed.stdout, re.M)


@pytest.mark.parametrize("ratio, noise, says", [
    (0.97, 0.05, "within noise"), (1.04, 0.05, "within noise"),
    (0.80, 0.05, "20% slower"), (1.20, 0.05, "20% faster"), (0.97, 0.0, "3% slower"),
])
def test_the_tracer_overhead_verdict_reads_the_ratio_against_the_noise(ratio, noise, says):
    assert _trace_overhead().verdict(ratio, noise) == says


def test_the_tracer_overhead_benchmark_refuses_a_run_of_nothing():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "trace_overhead.py"), "--rounds", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert completed.returncode == 2 and "at least 1" in completed.stderr


def test_the_tracer_overhead_noise_floor_is_the_largest_a_a_difference_of_a_round():
    results = {"plain": [100.0, 100.0, 100.0], "plain-again": [101.0, 90.0, 104.0]}
    assert _trace_overhead().noise_floor(results) == pytest.approx(0.10)
