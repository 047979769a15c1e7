"""The Gradescope bundle, run end to end in a folder laid out as Gradescope lays it out.

Gradescope unzips the bundle into /autograder/source, copies run_autograder
to /autograder/run_autograder, puts the student's files in
/autograder/submission and reads /autograder/results/results.json.  Here
the same layout is made in a temporary folder (AUTOGRADER_ROOT) and
run_autograder is run as Gradescope would run it.  (setup.sh, which
installs the kit in Gradescope's image, is checked for syntax only: the
kit is found on PYTHONPATH instead.)
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from checkout import REPO

from sockserver_lib import gradescope, grading


def autograder(tmp_path: Path, submission: list, bundle: Path | None = None) -> Path:
    """A Gradescope layout with the bundle (by default: built without options) unzipped
    and *submission* (paths) handed in."""
    root = tmp_path / "autograder"
    bundle = bundle or gradescope.build(tmp_path / "autograder.zip")
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(root / "source")
    for name in ("run_autograder", "setup.sh"):
        (root / "source" / name).chmod(0o755)  # extractall() drops the mode bits
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    for path in submission:
        shutil.copy(path, root / "submission" / Path(path).name)
    return root


def run_autograder(root: Path) -> dict:
    environment = {**os.environ, "AUTOGRADER_ROOT": str(root), "PYTHON": sys.executable}
    environment.pop("PYTHONPATH", None)  # only the bundle's own kit
    done = subprocess.run(["bash", str(root / "run_autograder")], env=environment,
                          capture_output=True, text=True, timeout=200, cwd=root)
    results = root / "results" / "results.json"
    assert results.exists(), done.stdout + done.stderr
    return json.loads(results.read_text(encoding="utf-8"))


def test_the_bundle_has_the_two_scripts_at_its_root_executable(tmp_path):
    with zipfile.ZipFile(gradescope.build(tmp_path / "autograder.zip")) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert stat.S_IMODE(modes["setup.sh"]) == stat.S_IMODE(modes["run_autograder"]) == 0o755
    assert "kit/sockserver_lib/grade.py" in modes and "kit/pyproject.toml" in modes
    assert not [name for name in modes if "__pycache__" in name]
    syntax = subprocess.run(["bash", "-n", "-c", gradescope.SETUP_SH], capture_output=True)
    assert syntax.returncode == 0, syntax.stderr


@pytest.mark.timeout(240)
def test_run_autograder_grades_a_submission_into_a_valid_results_json(tmp_path):
    root = autograder(tmp_path, [REPO / "solutions" / "ex08_threads.ipynb",
                                 REPO / "exercises" / "ex04_line_protocol.ipynb"])
    results = run_autograder(root)
    tests = results["tests"]
    assert {"name", "score", "max_score", "output", "visibility"} <= set(tests[0])
    assert results["score"] == sum(test["score"] for test in tests)
    ex08 = [test for test in tests if test["name"].startswith("ex08: ")]
    ex04 = [test for test in tests if test["name"].startswith("ex04: ")]
    assert sum(test["score"] for test in ex08) == grading.EXERCISES["ex08"].total
    assert len(ex04) == len(grading.EXERCISES["ex04"].tests)
    assert all(test["score"] == 0 and test["output"] for test in ex04)  # why, for the student
    assert results["score"] == grading.EXERCISES["ex08"].total


@pytest.mark.timeout(120)
def test_a_submission_without_a_notebook_still_gets_a_results_json_that_says_why(tmp_path):
    root = autograder(tmp_path, [REPO / "README.md"])
    results = run_autograder(root)
    assert results["score"] == 0 and results["tests"] == []
    assert "no notebook (.ipynb) was found in the submission" in results["output"]


def test_the_command_writes_the_bundle(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sockserver_lib.gradescope",
                           str(tmp_path / "ag.zip")], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert zipfile.is_zipfile(tmp_path / "ag.zip")


@pytest.mark.timeout(120)
def test_two_files_of_one_exercise_in_a_submission_are_graded_once(tmp_path):
    root = autograder(tmp_path, [REPO / "solutions" / "ex10_access_control.ipynb"])
    shutil.copy(REPO / "solutions" / "ex10_access_control.ipynb",
                root / "submission" / "ex10_access_control (1).ipynb")
    results = run_autograder(root)
    assert results["score"] == grading.EXERCISES["ex10"].total  # not twice
    assert "only the newest is" in results["output"]


EXTRA_TESTS = REPO / "tests" / "data" / "extra_tests"


@pytest.mark.timeout(240)
def test_the_bundle_carries_extra_tests_and_grades_every_submission_with_them(tmp_path):
    bundle = gradescope.build(tmp_path / "with-extra.zip", extra_tests=EXTRA_TESTS)
    with zipfile.ZipFile(bundle) as archive:
        assert "extra_tests/extra_ex10.py" in archive.namelist()
        assert "--extra-tests" in archive.read("run_autograder").decode()
    root = autograder(tmp_path, [REPO / "solutions" / "ex10_access_control.ipynb"],
                      bundle=bundle)
    tests = run_autograder(root)["tests"]
    extra = [test for test in tests if test["name"] == "ex10: single_address_allowed"]
    assert extra and extra[0]["score"] == extra[0]["max_score"] > 0
    assert len(tests) == len(grading.EXERCISES["ex10"].tests) + 1  # this process: unchanged


def test_a_bundle_without_extra_tests_does_not_name_them():
    assert "--extra-tests" not in gradescope.bundle_files()["run_autograder"][0].decode()


def test_extra_tests_that_do_not_load_fail_the_build_with_the_reason(tmp_path):
    (tmp_path / "broken.py").write_text("EXTRA_TESTS = 'not a dict'\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "sockserver_lib.gradescope",
                           str(tmp_path / "ag.zip"), "--extra-tests", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2
    assert "broken.py defines no EXTRA_TESTS" in done.stderr
    assert not (tmp_path / "ag.zip").exists()
