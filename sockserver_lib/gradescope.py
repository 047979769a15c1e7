"""Build a Gradescope autograder bundle: ``python -m sockserver_lib.gradescope autograder.zip``.

Gradescope grades each submission in a container of its own: upload the zip
as the assignment's autograder ("Zip file upload"), and every submission is
graded by this kit's batch grader there, isolated from every other.  The
zip holds, at its root, as Gradescope's specification asks:

- ``setup.sh``: run once when Gradescope builds the image; installs Python.
- ``run_autograder``: run for each submission; grades the notebooks in
  ``/autograder/submission`` and writes ``/autograder/results/results.json``
  (a test per graded test, visible to the student, with its message).
- ``kit/``: the kit itself (sockserver_lib, its pyproject.toml and README).
- ``extra_tests/``: with ``--extra-tests DIR``, the instructor's own test
  modules (see ``python -m sockserver_lib.grade --extra-tests``), graded for
  every submission; the students never see the bundle.

``run_autograder`` reads the folder it works in from AUTOGRADER_ROOT
(default /autograder) and the Python to use from PYTHON (default python3),
so the bundle can be tried on any machine with a folder laid out as
Gradescope lays it out (tests/test_gradescope.py does).
"""

from __future__ import annotations

import argparse
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
#: The kit's files the bundle carries, relative to the checkout.
KIT_FILES = ("pyproject.toml", "README.md")

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
apt-get update
apt-get install -y python3  # 3.10 or newer; the kit needs nothing else (run_autograder
                            # finds it in /autograder/source/kit)
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission: grade its notebooks, write results.json.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$ROOT"
mkdir -p "$ROOT/results"
export PYTHONPATH="$ROOT/source/kit${{PYTHONPATH:+:$PYTHONPATH}}"
"${{PYTHON:-python3}}" -m sockserver_lib.grade "$ROOT/submission" \\
  --gradescope "$ROOT/results/results.json" \\
  --journal "$(mktemp -d)/journal.jsonl" --jobs 1 {extra}{options}
"""


#: Where the bundle's extra tests are, in Gradescope's container.
EXTRA_TESTS_OPTION = '--extra-tests "$ROOT/source/extra_tests" '


def bundle_files(grade_options: str = "", extra_tests: str | Path | None = None) -> dict:
    """{name in the zip: (bytes, executable)} of the bundle; *extra_tests* is a folder
    of instructor-only test modules to carry and grade with."""
    extra = _extra_test_files(extra_tests) if extra_tests else {}
    script = RUN_AUTOGRADER.format(options=grade_options,
                                   extra=EXTRA_TESTS_OPTION if extra else "")
    files = {
        "setup.sh": (SETUP_SH.encode(), True),
        "run_autograder": (script.encode(), True),
        **extra,
    }
    for name in KIT_FILES:
        files[f"kit/{name}"] = ((KIT / name).read_bytes(), False)
    for path in sorted((KIT / "sockserver_lib").rglob("*.py")):
        files[f"kit/{path.relative_to(KIT).as_posix()}"] = (path.read_bytes(), False)
    return files


def _extra_test_files(folder: str | Path) -> dict:
    """The ``*.py`` modules of *folder* for ``extra_tests/``, after loading them as the
    grader will, in a process of their own (so a broken module fails the build, not every
    student's grading, and this process's exercises stay as they are).

    ValueError with the loader's message if they do not load."""
    loading = subprocess.run(
        [sys.executable, "-c", "import sys; from sockserver_lib import grading; "
                               "print(grading.load_extra_tests(sys.argv[1]))", str(folder)],
        capture_output=True, text=True, timeout=120, cwd=KIT,
    )
    if loading.returncode != 0:
        raise ValueError(loading.stderr.strip().splitlines()[-1] if loading.stderr.strip()
                         else f"loading them failed (exit status {loading.returncode})")
    return {f"extra_tests/{path.name}": (path.read_bytes(), False)
            for path in sorted(Path(folder).glob("*.py"))}


def build(out: str | Path, grade_options: str = "", extra_tests: str | Path | None = None
          ) -> Path:
    """Write the bundle to *out*; scripts are executable (mode 755) in the zip."""
    out = Path(out)
    files = bundle_files(grade_options, extra_tests)  # first: a failure leaves no zip behind
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, (data, executable) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            mode = 0o755 if executable else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)
    return out


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sockserver_lib.gradescope",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("out", metavar="ZIP", help="where to write the bundle, e.g. autograder.zip")
    parser.add_argument("--grade-options", default="", metavar="OPTIONS",
                        help='extra options for the grader, e.g. "--timeout 300"')
    parser.add_argument("--extra-tests", metavar="DIR",
                        help="a folder of instructor-only test modules to grade with "
                             "(as python -m sockserver_lib.grade --extra-tests DIR)")
    options = parser.parse_args(argv)
    try:
        path = build(options.out, options.grade_options, options.extra_tests)
    except Exception as error:  # noqa: BLE001 -- the instructor's modules: say what failed
        print(f"--extra-tests {options.extra_tests}: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}: upload it as the assignment's autograder on Gradescope")
    return 0


if __name__ == "__main__":
    sys.exit(main())
