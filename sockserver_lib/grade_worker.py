"""The batch grader's worker: runs one submission's notebook, in its own process, and grades it.

``python -m sockserver_lib.grade`` starts one of these per submission,
``python -m sockserver_lib.grade_worker NOTEBOOK --progress FILE --exercise exNN``,
in a session of its own, in a scratch folder: it limits its resources,
runs the notebook's code cells in order (each with a time limit: a cell still
running after ``--cell-timeout`` seconds is stopped, and the next cells run),
then grades the exercise against the names the cells defined, and reports
every step as a JSON line in the progress file, each tagged with its pid (a
process the notebook forked reports under another, and is not counted).
Before and after the tests it checks that the notebook left the grading code
as it was (grader_fingerprint()); if not, it reports what was changed, and
the submission scores 0.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import linecache
import os
import pkgutil
import signal
import sys
import types
from collections.abc import Iterator
from pathlib import Path

from . import contract, grading
from .grading import EXERCISES

#: Cells with this tag are demonstrations: the batch grader does not run them.
TRY_IT_TAG = "try-it"
#: Seconds one code cell may run before it is interrupted (0: no limit), as
#: nbgrader's per-cell timeout: a cell that waits forever costs this, not the notebook.
DEFAULT_CELL_TIMEOUT = 30.0
#: This module, whatever name it runs under (``-m`` runs it as __main__).
_THIS_MODULE = sys.modules[__name__]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sockserver_lib.grade_worker",
                                     description="(started by python -m sockserver_lib.grade)")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--progress", type=Path, required=True)
    parser.add_argument("--exercise", required=True)
    parser.add_argument("--test-timeout", type=float, default=grading.TEST_TIME_LIMIT)
    parser.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT)
    parser.add_argument("--memory-limit", type=int, default=0)
    parser.add_argument("--file-size-limit", type=int, default=0)
    parser.add_argument("--extra-tests")
    options = parser.parse_args(argv)
    if options.extra_tests:
        grading.load_extra_tests(options.extra_tests)
    limit_resources(options.memory_limit, options.file_size_limit)
    return work(options.notebook, options.progress, options.exercise, options.test_timeout,
                options.cell_timeout)


def limit_resources(memory_mb: int, file_size_mb: int) -> list[str]:
    """Limit this process and its future children; return the limits set.

    RLIMIT_AS (address space): an allocation beyond it raises MemoryError.
    RLIMIT_FSIZE (file size): a write beyond it fails with an OSError
    (SIGXFSZ, which would kill the process instead, is ignored).  A limit
    the platform lacks (no resource module, or macOS refusing RLIMIT_AS) is
    skipped.  0 means no limit.
    """
    try:
        import resource
    except ImportError:  # Windows
        return []
    applied = []
    for name, megabytes in (("RLIMIT_AS", memory_mb), ("RLIMIT_FSIZE", file_size_mb)):
        limit = getattr(resource, name, None)
        if not megabytes or limit is None:
            continue
        _, hard = resource.getrlimit(limit)
        wanted = megabytes * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        try:
            resource.setrlimit(limit, (wanted, hard))
        except (ValueError, OSError):
            continue
        applied.append(name)
    if "RLIMIT_FSIZE" in applied and hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return applied


def work(notebook_path: Path, progress_path: Path, exercise: str, test_timeout: float,
          cell_timeout: float = DEFAULT_CELL_TIMEOUT) -> int:
    """Run the notebook's code cells, then grade; report events as JSON lines."""
    signal.signal(signal.SIGTERM, _stop_now)
    worker = os.getpid()
    with open(progress_path, "a", encoding="utf-8") as progress:

        def report(event: dict) -> None:
            progress.write(json.dumps({**event, "pid": os.getpid()}) + "\n")  # a fork differs
            progress.flush()

        notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
        namespace = _fresh_main_module().__dict__
        untouched = grader_fingerprint()
        for number, source in _code_cells(notebook):
            _run_cell(number, source, namespace, report, cell_timeout)
        if os.getpid() != worker:  # a cell forked and this is the child: it grades nothing
            os._exit(0)
        _reset_signals()  # whatever the cells did to them
        changed = _changed(untouched, grader_fingerprint())
        if changed:
            report({"tampered": changed})
            os._exit(0)
        report({"grading": exercise})
        students = _students(exercise, namespace)
        missing = [name for keyword, name in EXERCISES[exercise].names.items()
                   if students[keyword] is None]
        grading.grade(exercise, students, time_limit=test_timeout,
                      on_result=lambda test: report({"test": vars(test)}))
        changed = _changed(untouched, grader_fingerprint())
        if changed:  # changed while the tests ran (by a thread the notebook started)
            report({"tampered": changed})
            os._exit(0)
        note = f"the notebook does not define {', '.join(missing)}" if missing else ""
        report({"done": True, "note": note})
    with contextlib.suppress(OSError, ValueError):  # e.g. output beyond --file-size-limit
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)  # do not wait for threads the submission left running


def _grader_modules() -> tuple[str, ...]:
    """The grading and contract packages (their namespaces and every module in them,
    found on disk, so that a new module is covered at once), lab and this module."""
    names = []
    for package in (grading, contract):
        names.append(package.__name__)
        for module in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)  # every one is in sys.modules
            names.append(module.name)
    return (*names, "sockserver_lib.lab", "sockserver_lib.grade_worker")


#: The modules whose code decides a grade.  A notebook that replaces or
#: patches their functions, classes or tests is scored 0.  This catches
#: accidents and casual forgery, not a determined attacker: the notebook
#: runs in the grader's worker process (see README, "What the grader can
#: and cannot protect against").
GRADER_MODULES = _grader_modules()
#: Module-level containers the grader reads its tests from: rebinding one of
#: them (not only changing what is in it) counts as a change.
_REGISTRIES = ("CHECKS", "EXERCISES")


def grader_fingerprint() -> dict:
    """What the grading code is now: the identity of every function, class, method,
    code object and registered test of GRADER_MODULES (not their data, which
    changes as tests run)."""
    found = {}
    for module_name in GRADER_MODULES:
        # this module runs as __main__, and the notebook's cells get a __main__ of their
        # own: find it by the module object kept at import
        module = _THIS_MODULE if module_name == _spec_name() else sys.modules[module_name]
        for name, value in vars(module).items():
            if callable(value) or isinstance(value, (staticmethod, classmethod)):
                found[f"{module_name}.{name}"] = _identity(value)
            if name in _REGISTRIES:
                found[f"{module_name}.{name}"] = (id(value),)
            if isinstance(value, type) and value.__module__ == module_name:
                for member, inner in vars(value).items():
                    if callable(inner):
                        found[f"{module_name}.{name}.{member}"] = _identity(inner)
    for name, check in getattr(sys.modules["sockserver_lib.contract"], "CHECKS", {}).items():
        found[f"contract.CHECKS[{name!r}]"] = (id(check), _identity(getattr(check, "run", None)))
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("sockserver_extra_tests."):
            for name, value in vars(module).items():
                if callable(value):
                    found[f"{module_name}.{name}"] = _identity(value)
    for exercise, spec in grading.EXERCISES.items():
        found[f"EXERCISES[{exercise!r}]"] = (
            id(spec), tuple((id(test), _identity(test.run)) for test in spec.tests))
    return found


def _spec_name() -> str:
    spec = getattr(_THIS_MODULE, "__spec__", None)
    return spec.name if spec is not None else __name__


def _identity(value: object) -> tuple:
    code = getattr(value, "__code__", None)
    return (id(value), id(code), id(getattr(value, "__defaults__", None)))


def _changed(before: dict, after: dict) -> str:
    """Which names of the grading code differ between two fingerprints ("" if none)."""
    names = sorted(name for name in before.keys() | after.keys()
                   if before.get(name) != after.get(name))
    if not names:
        return ""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{shown} replaced or patched"


def _reset_signals() -> None:
    """No cell timer left armed, and SIGTERM stops the running test (a cell may have
    changed either)."""
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, _stop_now)


def _stop_now(signal_number: int, frame: object) -> None:
    """SIGTERM in the worker: the time is up; stop the running test, then exit."""
    grading.stop_running_test()
    os._exit(128 + signal_number)


def _students(exercise: str, namespace: dict) -> dict:
    """What to grade: what the notebook's last check() call for *exercise* was
    given (what the student saw graded), else the names the exercise asks for."""
    names = EXERCISES[exercise].names
    students = {keyword: namespace.get(name) for keyword, name in names.items()}
    calls = [given for called, given in grading.BATCH_CALLS if called == exercise]
    if calls:
        students.update({keyword: value for keyword, value in calls[-1].items()
                         if keyword in names and value is not None})
    return students


def _fresh_main_module() -> types.ModuleType:
    """A new ``__main__`` for the cells, as a kernel gives them."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    return module


def _code_cells(notebook: dict) -> Iterator[tuple[int, str]]:
    """(cell number counted from 1, source) of each code cell the grader runs.

    Cells tagged ``try-it`` are demonstrations for the student, not needed
    for grading: they are skipped (a demo that waits for a broken server
    would only cost time).
    """
    for number, cell in enumerate(notebook["cells"], start=1):
        tags = (cell.get("metadata") or {}).get("tags") or ()
        if cell.get("cell_type") == "code" and TRY_IT_TAG not in tags:
            source = cell["source"]
            yield number, source if isinstance(source, str) else "".join(source)


class CellTimeout(BaseException):
    """Raised in a cell that ran past the per-cell limit (a BaseException, so that a
    cell's ``except Exception`` does not swallow it)."""


def _interrupt_cell(signal_number: int, frame: object) -> None:
    raise CellTimeout


@contextlib.contextmanager
def _cell_time_limit(seconds: float) -> Iterator[None]:
    """Raise CellTimeout in this (the main) thread after *seconds*; no limit if 0 or
    where there is no SIGALRM (Windows: the whole-notebook limit still holds)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _interrupt_cell)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # again each second if caught
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_cell(number: int, source: str, namespace: dict, report,
              time_limit: float = DEFAULT_CELL_TIMEOUT) -> None:
    first_line = next((line.strip() for line in source.splitlines() if line.strip()), "")
    report({"cell": number, "line": first_line[:80]})
    if source.lstrip().startswith("%%"):
        report({"cell_error": f"cell {number} is a cell magic ({first_line}); not run"})
        return
    code, skipped = _without_ipython_lines(source)
    if skipped:
        report({"cell_error": f"cell {number}: IPython lines not run: {'; '.join(skipped)}"})
    filename = f"<cell {number}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    try:
        with _cell_time_limit(time_limit):
            exec(compile(code, filename, "exec"), namespace)
    except CellTimeout:
        report({"cell_error": f"cell {number} was stopped after {time_limit:g} s (the "
                              "per-cell limit, --cell-timeout); the next cells still ran"})
    except BaseException as error:  # noqa: B036 -- the next cells still run
        report({"cell_error": f"cell {number} raised {type(error).__name__}: {error}"})


def _without_ipython_lines(source: str) -> tuple[str, list[str]]:
    """*source* with ``%magic`` and ``!command`` lines replaced by ``pass``."""
    lines, skipped = [], []
    for line in source.splitlines():
        text = line.lstrip()
        if text.startswith(("%", "!")):
            skipped.append(text)
            line = line[: len(line) - len(text)] + "pass"
        lines.append(line)
    return "\n".join(lines), skipped


if __name__ == "__main__":
    sys.exit(main())
