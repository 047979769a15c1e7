"""Safe grading: one bad submission cannot stall or break a class's grading run.

One run of the batch grader on a class folder: a good submission next to
the bad ones of tests/data/unsafe (see its README) -- one that allocates
without bound, one that forks a server (which ignores SIGTERM) and then
ends its own process, one that leaves temporary files and a Unix socket
behind, one that hangs in a single test, one whose cell never returns, one
that prints without end, one
that forks and lets both processes carry on, one that deletes its working
folder and the grader's results file, one that patches the grader, and the
good one again under a file name that is not UTF-8.  The run completes,
each submission scores what it proved, the good one full points, and
nothing is left: no process, no temporary file.

Then the limits themselves, each in a throwaway process.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from checkout import REPO

from sockserver_lib import grading
from sockserver_lib.grade import limit_resources

UNSAFE = REPO / "tests" / "data" / "unsafe"
GOOD = "ex10_good.ipynb"
#: The good submission again, named as an archive made on Windows names it: not UTF-8.
NOT_UTF8 = os.fsdecode(b"ex10_caf\xe9.ipynb")
#: How that name is shown in the table and the CSV.
NOT_UTF8_SHOWN = "ex10_caf\\xe9.ipynb"
#: The limits of the class run: small, so that the bad submissions meet them fast.
TEST_TIMEOUT, MEMORY_MB, FILE_MB = 2, 512, 1
EX10_TESTS = [test.name for test in grading.EXERCISES["ex10"].tests]

needs_posix_limits = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin",
    reason="needs the resource module's RLIMIT_AS and RLIMIT_FSIZE as Linux enforces them",
)


def processes_with(text: str) -> list[int]:
    """Live processes (not zombies) whose command line contains *text*; [] without /proc."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc/self") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read()
            with open(f"/proc/{entry}/stat") as file:
                state = file.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # ended while we looked
        if text.encode() in command and state != "Z":
            found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    """Grade the class folder once: (completed process, rows by submission, its TMPDIR)."""
    folder = tmp_path_factory.mktemp("class")
    for sample in sorted(UNSAFE.glob("*.json")):
        shutil.copy(sample, folder / (sample.stem + ".ipynb"))
    shutil.copy(REPO / "solutions" / "ex10_access_control.ipynb", folder / GOOD)
    try:
        shutil.copy(REPO / "solutions" / "ex10_access_control.ipynb", folder / NOT_UTF8)
    except (OSError, UnicodeEncodeError):  # a file system that only takes UTF-8 (macOS)
        pass
    temporary = tmp_path_factory.mktemp("tmp")
    table = tmp_path_factory.mktemp("grades") / "grades.csv"
    completed = subprocess.run(
        [sys.executable, "-m", "sockserver_lib.grade", str(folder), "--csv", str(table),
         "--timeout", "30", "--test-timeout", str(TEST_TIMEOUT), "--cell-timeout", "2",
         "--journal", str(table.with_suffix(".jsonl")),
         "--memory-limit", str(MEMORY_MB), "--file-size-limit", str(FILE_MB)],
        cwd=REPO, capture_output=True, text=True, timeout=110,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    assert completed.returncode == 0, completed.stderr
    rows: dict[str, list[dict]] = {}
    with open(table, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            rows.setdefault(Path(row["submission"]).name, []).append(row)
    return completed, rows, temporary


def points(rows: list[dict]) -> dict[str, int]:
    return {row["test"]: int(row["points"]) for row in rows}


@pytest.mark.timeout(120)
def test_the_run_completes_and_grades_every_submission(class_run):
    completed, rows, _ = class_run
    expected = [GOOD] + [p.stem + ".ipynb" for p in UNSAFE.glob("*.json")]
    expected += [NOT_UTF8_SHOWN] if NOT_UTF8_SHOWN in rows else []
    assert sorted(rows) == sorted(expected)
    for graded in rows.values():
        assert [row["test"] for row in graded] == EX10_TESTS
    total = "total: 44/55 points" if NOT_UTF8_SHOWN in rows else "total: 39/50 points"
    assert completed.stdout.rstrip().splitlines()[-1] == total
    assert sum(points(rows[GOOD]).values()) == 5


@pytest.mark.timeout(120)
def test_a_name_that_is_not_utf8_is_graded_and_written_safely(class_run):
    completed, rows, _ = class_run
    if NOT_UTF8_SHOWN not in rows:
        pytest.skip("this file system takes only UTF-8 names")
    assert sum(points(rows[NOT_UTF8_SHOWN]).values()) == 5  # the CSV was written, and read
    assert NOT_UTF8_SHOWN in completed.stdout


@pytest.mark.timeout(120)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_a_fork_that_carries_on_is_graded_once(class_run):
    completed, rows, _ = class_run
    graded = rows["ex10_forks_and_carries_on.ipynb"]
    assert [row["test"] for row in graded] == EX10_TESTS  # each test once, not twice
    assert sum(points(graded).values()) == 5
    assert ("ex10_forks_and_carries_on.ipynb: results reported by 1 other process(es) were "
            "ignored") in completed.stdout


@pytest.mark.timeout(120)
def test_deleting_its_folder_and_the_results_file_loses_nothing(class_run):
    _, rows, _ = class_run
    assert sum(points(rows["ex10_deletes_its_folder.ipynb"]).values()) == 5


@pytest.mark.timeout(120)
def test_a_notebook_that_patches_the_grader_scores_zero_with_the_reason(class_run):
    _, rows, _ = class_run
    for row in rows["ex10_patches_the_grader.ipynb"]:
        assert (row["status"], row["points"]) == (grading.TAMPERED, "0")
        assert "changed the grader (sockserver_lib.grading.run_isolated replaced" in \
            row["message"]


@pytest.mark.timeout(120)
@needs_posix_limits
def test_unbounded_allocation_meets_the_memory_limit_and_the_rest_is_graded(class_run):
    completed, rows, _ = class_run
    assert "ex10_hogs_memory.ipynb: cell 3 raised MemoryError" in completed.stdout
    assert sum(points(rows["ex10_hogs_memory.ipynb"]).values()) == 5


@pytest.mark.timeout(120)
def test_a_forked_server_dies_with_its_submission(class_run):
    completed, rows, _ = class_run
    for row in rows["ex10_forks_server_and_exits.ipynb"]:
        assert (row["status"], row["points"]) == ("crashed", "0")
        assert "ended (exit code 0) before grading finished" in row["message"]
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc to look for the forked server")
    # it ignored SIGTERM: the grader's SIGKILL to the whole group ended it
    assert processes_with("ex10_forks_server_and_exits") == []


@pytest.mark.timeout(120)
def test_temporary_files_and_sockets_left_behind_are_removed(class_run):
    _, rows, temporary = class_run
    assert sum(points(rows["ex10_litters_tmp.ipynb"]).values()) == 5
    assert list(temporary.iterdir()) == []  # the grader's folders and the submissions' files


@pytest.mark.timeout(120)
def test_a_test_that_hangs_is_stopped_and_the_others_are_graded(class_run):
    _, rows, _ = class_run
    graded = {row["test"]: row for row in rows["ex10_hangs_in_one_test.ipynb"]}
    assert graded["refusals_counted"]["status"] == "timed out"
    assert f"did not finish within {TEST_TIMEOUT} s" in graded["refusals_counted"]["message"]
    assert points(graded.values()) == {name: int(name != "refusals_counted")
                                       for name in EX10_TESTS}


@pytest.mark.timeout(120)
@needs_posix_limits
def test_endless_output_stops_at_the_file_size_limit_and_the_rest_is_graded(class_run):
    completed, rows, _ = class_run
    assert "ex10_floods_output.ipynb: cell 3 raised OSError: [Errno 27] File too large" in (
        completed.stdout)
    assert sum(points(rows["ex10_floods_output.ipynb"]).values()) == 5


# --- the limits, each in a throwaway process ----------------------------------

LIMITED = """
import sys
from sockserver_lib.grade import limit_resources
print(" ".join(limit_resources(int(sys.argv[1]), int(sys.argv[2]))))
"""


def run_limited(code: str, memory_mb: int, file_mb: int, *args: str):
    return subprocess.run(
        [sys.executable, "-c", LIMITED + code, str(memory_mb), str(file_mb), *args],
        capture_output=True, text=True, timeout=30,
    )


@needs_posix_limits
@pytest.mark.timeout(60)
def test_the_memory_limit_turns_a_big_allocation_into_memory_error():
    allocate = "\ntry:\n    bytes(768 << 20)\nexcept MemoryError:\n    print('MemoryError')\n"
    limited = run_limited(allocate, 256, 0)
    assert limited.stdout.split() == ["RLIMIT_AS", "MemoryError"], limited.stderr
    unlimited = run_limited(allocate, 0, 0)  # calloc()ed, never touched: no real memory
    assert unlimited.stdout.split() == [], unlimited.stderr


@needs_posix_limits
@pytest.mark.timeout(60)
def test_the_file_size_limit_fails_the_write_without_killing_the_process(tmp_path):
    write = (
        "\nimport errno\ntry:\n"
        "    open(sys.argv[3], 'wb').write(bytes(3 << 20))\n"
        "except OSError as error:\n    print(errno.errorcode[error.errno])\n"
    )
    limited = run_limited(write, 0, 1, str(tmp_path / "big"))
    assert limited.returncode == 0, limited.stderr
    assert limited.stdout.split() == ["RLIMIT_FSIZE", "EFBIG"]
    assert (tmp_path / "big").stat().st_size == 1 << 20


def test_no_limit_means_nothing_is_set():
    assert limit_resources(0, 0) == []


def test_the_grader_documents_its_limits():
    shown = subprocess.run([sys.executable, "-m", "sockserver_lib.grade", "--help"],
                           capture_output=True, text=True, timeout=30, cwd=REPO).stdout
    for option in ("--timeout", "--test-timeout", "--memory-limit", "--file-size-limit"):
        assert option in shown


@pytest.mark.timeout(120)
def test_a_cell_that_never_returns_is_stopped_and_the_next_cells_run(class_run):
    completed, rows, _ = class_run
    assert sum(points(rows["ex10_serves_forever_in_a_cell.ipynb"]).values()) == 5
    assert ("ex10_serves_forever_in_a_cell.ipynb: cell 3 was stopped after 2 s (the per-cell "
            "limit, --cell-timeout)") in completed.stdout


# --- results are the grader's own, whatever the worker's lines claim ------------


def test_reported_results_are_checked_against_the_graders_own_registry():
    from sockserver_lib.grade_one import Submission, _result_from

    first, second, *rest = EX10_TESTS
    events = [
        {"grading": "ex10"},
        {"test": {"name": first, "status": "passed", "points": 100, "max_points": 100}},
        {"test": {"name": first, "status": "passed", "points": 1, "max_points": 1}},  # again
        {"test": {"name": "bonus", "status": "passed", "points": 50, "max_points": 0}},
        {"test": {"name": second, "status": "failed", "points": 1, "max_points": 1}},
        {"test": "not even a dict"},
        {"done": True},
    ]
    result = _result_from(Submission(Path("ex10.ipynb"), "ex10"), events)
    assert [test.name for test in result.tests] == [first, second, *rest]
    assert (result.points, result.total) == (1, len(EX10_TESTS))
    assert {test.status for test in result.tests[2:]} == {grading.MISSING}


def test_forged_or_malformed_result_lines_are_skipped_not_fatal():
    from sockserver_lib.grade_one import Submission, _events_of, _result_from

    worker = 4242
    lines = [
        {"pid": worker, "cell": 1},  # no "line"
        {"pid": worker, "test": {"name": []}},  # not a name
        {"pid": worker, "test": "not a dict"},
        {"pid": worker, "cell_error": "cell 2 raised OSError: caf\udce9"},  # a lone surrogate
        {"pid": worker, "grading": "ex10"},
        {"pid": worker, "done": "yes"},  # not a bool
        {"pid": worker, "done": True},
    ]
    text = "\n".join(json.dumps(line) for line in lines).encode()
    events, others = _events_of(worker, text)
    # the shape is checked here; what a test result claims, against the registry below
    assert [next(iter(set(e) - {"pid"})) for e in events] == ["test", "cell_error", "grading",
                                                             "done"]
    submission = Submission(Path("ex10.ipynb"), "ex10")
    result = _result_from(submission, events)
    assert result.points == 0 and len(result.tests) == len(EX10_TESTS)
    assert submission.notes == ["cell 2 raised OSError: caf?"]  # writable as UTF-8
    assert others == set()


def grade_patched(tmp_path: Path, solution: str, patch: str) -> list[dict]:
    """Grade the solution *solution* with a first cell *patch*; the CSV's rows."""
    notebook = json.loads((REPO / "solutions" / solution).read_text())
    notebook["cells"].insert(1, {"cell_type": "code", "execution_count": None, "metadata": {},
                                 "outputs": [], "source": patch})
    patched = tmp_path / solution.replace(".ipynb", "_patched.ipynb")
    patched.write_text(json.dumps(notebook))
    done = subprocess.run(
        [sys.executable, "-m", "sockserver_lib.grade", str(patched),
         "--csv", str(tmp_path / "grades.csv"), "--journal", str(tmp_path / "journal.jsonl")],
        capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "grades.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.mark.timeout(120)
def test_a_notebook_that_patches_the_contract_checks_scores_zero(tmp_path):
    patch = ("import dataclasses\nfrom sockserver_lib import contract\n"
             "for name, found in list(contract.CHECKS.items()):\n"
             "    contract.CHECKS[name] = dataclasses.replace(found, run=lambda *a, **k: None)\n")
    rows = grade_patched(tmp_path, "ex08_threads.ipynb", patch)
    assert {row["status"] for row in rows} == {grading.TAMPERED}
    assert "contract.CHECKS[" in rows[0]["message"]


# --- the tamper check covers every module of the grader --------------------------


def test_the_tamper_check_covers_every_module_of_both_packages():
    from sockserver_lib import contract
    from sockserver_lib.grade_worker import GRADER_MODULES

    for package in (grading, contract):
        folder = Path(package.__file__).parent
        modules = {f"{package.__name__}.{path.stem}" for path in folder.glob("*.py")
                   if path.stem != "__init__"}
        assert len(modules) > 5
        assert {package.__name__, *modules} <= set(GRADER_MODULES)


def _own_code(module) -> tuple[object, str, str]:
    """(owner, name, fingerprint key) of a function defined in *module*: one of the
    module's own, else a method of one of its classes; a package's namespace: check."""
    if module.__name__ in ("sockserver_lib.grading", "sockserver_lib.contract"):
        return module, "check", f"{module.__name__}.check"  # a name it re-exports
    own = [(name, value) for name, value in vars(module).items()
           if getattr(value, "__module__", None) == module.__name__]
    for name, value in own:
        if callable(value) and not isinstance(value, type):
            return module, name, f"{module.__name__}.{name}"
    for name, value in own:
        if isinstance(value, type):
            method = next(member for member, inner in vars(value).items() if callable(inner))
            return value, method, f"{module.__name__}.{name}.{method}"
    raise AssertionError(f"{module.__name__} defines no function")


def test_patching_a_function_of_any_grader_module_changes_the_fingerprint(monkeypatch):
    from sockserver_lib.grade_worker import GRADER_MODULES, _changed, grader_fingerprint

    untouched = grader_fingerprint()
    for module_name in GRADER_MODULES:
        owner, name, key = _own_code(sys.modules[module_name])
        monkeypatch.setattr(owner, name, lambda *args, **kwargs: None)
        assert _changed(untouched, grader_fingerprint()) == f"{key} replaced or patched"
        monkeypatch.undo()
    assert _changed(untouched, grader_fingerprint()) == ""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("patch", "replaced"), [
    ("import sockserver_lib.grading.engine as engine\n"
     "engine._outcome = lambda function: ('passed', '')\n",
     "sockserver_lib.grading.engine._outcome"),
    ("from sockserver_lib.grading import ex10\n"
     "ex10._ex10_refused = lambda students: None\n",
     "sockserver_lib.grading.ex10._ex10_refused"),
    ("from sockserver_lib.contract import core\n"
     "core._fail = lambda *args: None\n",
     "sockserver_lib.contract.core._fail"),
], ids=["engine", "ex10", "contract-core"])
def test_a_notebook_that_patches_a_grader_submodule_scores_zero_with_the_reason(
        tmp_path, patch, replaced):
    rows = grade_patched(tmp_path, "ex10_access_control.ipynb", patch)
    assert [row["test"] for row in rows] == EX10_TESTS
    for row in rows:
        assert (row["status"], row["points"]) == (grading.TAMPERED, "0")
        assert f"changed the grader ({replaced} replaced or patched)" in row["message"]
