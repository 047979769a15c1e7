"""Regenerate exercises/ from solutions/, the single source of the exercises.

    python tools/make_exercises.py           # (re)write exercises/exNN_*.ipynb
    python tools/make_exercises.py --check   # exit 1 if exercises/ has drifted

In a solution notebook the code a student must write sits between two
markers, nbgrader-style; the text after BEGIN says, in one short line, what
the code must do (not how)::

    def get_request(self):
        ### BEGIN SOLUTION: accept a connection: return (connection, client_address)
        return self.socket.accept()
        ### END SOLUTION

The exercise gets, at the marker's indentation::

    def get_request(self):
        raise NotImplementedError("accept a connection: return (connection, client_address)")

That line is all the stub says.  Hints go in the notebook's markdown, folded
in tiers (``<details><summary>Hint 1: a nudge</summary>``...), so that the
student opens them one at a time, after running something; a message that
spells out the solution in an escaped string over several lines is refused:
a hint of more than one line, one with a backslash or both kinds of quote,
or a stub line longer than MAX_STUB_LINE characters is a MarkerError.

Everything else is copied; outputs, execution counts and execution timings
are removed (exercises are committed without outputs).  Keep markers inside
function bodies: a stub that raises at class-definition time would leave the
name undefined.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
#: The longest stub line (the project's line length): hints are short.
MAX_STUB_LINE = 100
EXERCISE_FILE = re.compile(r"^(ex\d\d)_\w+\.ipynb$")


class MarkerError(ValueError):
    """The solution markers in a notebook are malformed."""


def strip_solution(source: str) -> str:
    """Replace each marked region of *source* by a NotImplementedError stub."""
    output: list[str] = []
    lines = source.split("\n")
    number = 0
    while number < len(lines):
        line, text = lines[number], lines[number].strip()
        number += 1
        if text.startswith(END):
            raise MarkerError(f"line {number}: {END} without {BEGIN}")
        if not text.startswith(BEGIN):
            output.append(line)
            continue
        hint = text[len(BEGIN):].strip().lstrip(":").strip()
        if not hint:
            raise MarkerError(f"line {number}: write a hint after {BEGIN}: for the student")
        if number < len(lines) and _is_comment_hint(lines[number]):
            raise MarkerError(
                f"line {number + 1}: a hint is the one line after {BEGIN}:; longer hints "
                "go in the notebook's markdown, folded in tiers"
            )
        try:
            output.append(_stub(line[: len(line) - len(line.lstrip())], hint))
        except MarkerError as error:
            raise MarkerError(f"line {number}: {error}") from None
        number = _skip_region(lines, number)
    return "\n".join(output)


def _is_comment_hint(line: str) -> bool:
    """A ``###`` line right after BEGIN: the old way of writing a longer hint."""
    text = line.strip()
    return text.startswith("###") and not text.startswith((BEGIN, END))


def _skip_region(lines: list[str], number: int) -> int:
    """Index of the line after the END marker of the region starting at *number*."""
    while number < len(lines):
        text = lines[number].strip()
        number += 1
        if text.startswith(BEGIN):
            raise MarkerError(f"line {number}: {BEGIN} inside another solution region")
        if text.startswith(END):
            return number
    raise MarkerError(f"{BEGIN} without {END}")


def _stub(indent: str, hint: str) -> str:
    """The raise statement: one line, the hint as a string literal without escapes."""
    stub = f"{indent}raise NotImplementedError({_literal(hint)})"
    if len(stub) > MAX_STUB_LINE:
        raise MarkerError(
            f"the stub would be {len(stub)} characters long, more than {MAX_STUB_LINE}: "
            "shorten the hint (longer hints go in the notebook's markdown, folded in tiers)"
        )
    return stub


def _literal(text: str) -> str:
    """*text* quoted so that it reads as written: no backslash, no escaped quote."""
    if "\\" in text or not text.isprintable():
        raise MarkerError(f"a hint is plain text: no backslash or control character in {text!r}")
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    raise MarkerError(f"a hint uses one kind of quote, not both: {text!r}")


def exercise_from_solution(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Return the exercise notebook for the solution notebook *solution*."""
    match = EXERCISE_FILE.match(name)
    if match is None:
        raise MarkerError(f"{name}: solution notebooks are named exNN_topic.ipynb")
    declared = solution.metadata.get("sockserver", {}).get("exercise")
    if declared != match.group(1):
        raise MarkerError(
            f"{name}: metadata sockserver.exercise is {declared!r}, expected {match.group(1)!r}"
        )
    exercise = nbformat.from_dict(json.loads(json.dumps(solution)))
    # Only what does not depend on where the solution was last executed.
    exercise.metadata = nbformat.from_dict({
        "kernelspec": solution.metadata.get("kernelspec", {}),
        "language_info": {"name": "python"},
        "sockserver": {"exercise": declared},
    })
    regions = 0
    for index, cell in enumerate(exercise.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        try:
            stripped = strip_solution(cell.source)
        except MarkerError as error:
            raise MarkerError(f"{name}, cell {index}: {error}") from None
        regions += stripped != cell.source
        cell.source = stripped
        cell.outputs = []
        cell.execution_count = None
    if not regions:
        raise MarkerError(f"{name}: no {BEGIN} region, nothing for the student to write")
    return exercise


def render(notebook: nbformat.NotebookNode) -> str:
    """The notebook's file text, exactly as nbformat.write() would write it."""
    text = nbformat.writes(notebook)
    return text if text.endswith("\n") else text + "\n"


def expected_exercises(solutions: Path) -> dict[str, str]:
    """File name -> text of every exercise the solutions in *solutions* give."""
    expected = {}
    for path in sorted(solutions.glob("ex*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        expected[path.name] = render(exercise_from_solution(solution, path.name))
    return expected


def drift(solutions: Path, exercises: Path) -> list[str]:
    """What differs between *exercises* and what *solutions* generate."""
    expected = expected_exercises(solutions)
    problems = []
    for name, text in expected.items():
        path = exercises / name
        if not path.exists():
            problems.append(f"{name}: missing from {exercises}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name}: differs from its solution")
    for path in sorted(exercises.glob("ex*.ipynb")):
        if path.name not in expected:
            problems.append(f"{path.name}: has no solution in {solutions}")
    return problems


def write_exercises(solutions: Path, exercises: Path) -> list[str]:
    """Write every exercise; return the names of the files that changed."""
    changed = []
    for name, text in expected_exercises(solutions).items():
        path = exercises / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if exercises/ has drifted")
    parser.add_argument("--solutions", type=Path, default=REPO / "solutions")
    parser.add_argument("--exercises", type=Path, default=REPO / "exercises")
    options = parser.parse_args(argv)
    try:
        if options.check:
            problems = drift(options.solutions, options.exercises)
            for problem in problems:
                print(problem)
            if problems:
                print("exercises/ is out of date: run python tools/make_exercises.py")
                return 1
            print("exercises/ is in sync with solutions/")
            return 0
        changed = write_exercises(options.solutions, options.exercises)
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(changed)} exercise(s): {', '.join(changed) or 'none changed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
