"""Regenerate exercises/ from solutions/, the single source of the exercises.

    python tools/make_exercises.py           # (re)write exercises/exNN_*.ipynb
    python tools/make_exercises.py --check   # exit 1 if exercises/ has drifted

A solution notebook marks what the student must do, in two ways.

**Code to write.**  The code sits between two markers, nbgrader-style; the
text after BEGIN says, in one short line, what the code must do (not how)::

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

**A bug to fix** (the debugging labs).  The solution keeps the fixed lines;
the broken lines follow, commented out; the text after BEGIN FIX says what
the fix does, for whoever reads the solution (the exercise never shows it)::

        ### BEGIN FIX: send it all: sendall() loops until every byte is sent
        self.request.sendall(reply)
        ### BROKEN
        # self.request.send(reply)
        ### END FIX

The exercise gets the broken lines, uncommented, and nothing else of the
region: no marker, no fix, no hint that a bug is there::

        self.request.send(reply)

A broken line is uncommented by removing its first ``#`` and one space after
it, so ``#         x`` at the start of a line gives ``        x`` and
``        # x`` gives ``        x``: both spellings keep the indentation.
Either part may be empty (a missing call: no broken lines; a line too many:
no fixed lines), not both, and the two must differ.  A BEGIN FIX without
its text, a BROKEN outside a fix region, a broken line that is not
commented out, nested or unterminated regions: each is a MarkerError that
says the line.  Markers may sit at any indentation, even at the start of
the line inside an indented block (comments may go anywhere).

Everything else is copied; outputs, execution counts and execution timings
are removed (exercises are committed without outputs).  Keep SOLUTION
markers inside function bodies: a stub that raises at class-definition time
would leave the name undefined.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

import nbformat

REPO = Path(__file__).resolve().parent.parent
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
BEGIN_FIX = "### BEGIN FIX"
BROKEN = "### BROKEN"
END_FIX = "### END FIX"
#: Every marker line starts with one of these.
MARKERS = (BEGIN, END, BEGIN_FIX, BROKEN, END_FIX)
#: The kinds of region: code to write, a bug to fix.
SOLUTION, FIX = "solution", "fix"
#: The longest stub line (the project's line length): hints are short.
MAX_STUB_LINE = 100
EXERCISE_FILE = re.compile(r"^(ex\d\d)_\w+\.ipynb$")


class MarkerError(ValueError):
    """The solution markers in a notebook are malformed."""


class Region(NamedTuple):
    """One marked region of a solution cell.

    *kind* is SOLUTION or FIX; *what* the text after its BEGIN marker;
    *line* the number (from 1) of that marker; *indent* its indentation.
    *solution* holds the lines the solution keeps (the answer, or the fix),
    *broken* (FIX only) the lines the exercise gets instead, uncommented.
    """

    kind: str
    what: str
    line: int
    indent: str
    solution: tuple[str, ...]
    broken: tuple[str, ...] = ()

    def exercise_lines(self) -> list[str]:
        """What the exercise has in place of the region."""
        if self.kind == FIX:
            return list(self.broken)
        return [_stub(self.indent, self.what)]


def parse(source: str) -> list[str | Region]:
    """*source* as its lines, each marked region of it as one Region.

    Raises MarkerError, naming the line, for malformed markers.
    """
    parts: list[str | Region] = []
    lines = source.split("\n")
    number = 0
    while number < len(lines):
        line, text = lines[number], lines[number].strip()
        number += 1
        if text.startswith(BEGIN):
            region, number = _solution_region(lines, number)
        elif text.startswith(BEGIN_FIX):
            region, number = _fix_region(lines, number)
        elif text.startswith(END):
            raise MarkerError(f"line {number}: {END} without {BEGIN}")
        elif text.startswith((BROKEN, END_FIX)):
            raise MarkerError(f"line {number}: {text.split(':')[0]} without {BEGIN_FIX}")
        else:
            parts.append(line)
            continue
        parts.append(region)
    return parts


def regions(source: str) -> list[Region]:
    """The marked regions of *source*, in order."""
    return [part for part in parse(source) if isinstance(part, Region)]


def strip_solution(source: str) -> str:
    """*source* as the exercise has it: each SOLUTION region replaced by its
    NotImplementedError stub, each FIX region by its broken lines."""
    output: list[str] = []
    for part in parse(source):
        if isinstance(part, Region):
            output.extend(part.exercise_lines())
        else:
            output.append(part)
    return "\n".join(output)


def marker_kinds(notebook: nbformat.NotebookNode) -> set[str]:
    """The kinds of region (SOLUTION, FIX) in *notebook*'s code cells."""
    return {region.kind for cell in notebook.cells if cell.cell_type == "code"
            for region in regions(cell.source)}


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _solution_region(lines: list[str], number: int) -> tuple[Region, int]:
    """The SOLUTION region whose BEGIN is line *number*; and the index after its END."""
    begin = lines[number - 1]
    hint = begin.strip()[len(BEGIN):].strip().lstrip(":").strip()
    if not hint:
        raise MarkerError(f"line {number}: write a hint after {BEGIN}: for the student")
    if number < len(lines) and _is_comment_hint(lines[number]):
        raise MarkerError(
            f"line {number + 1}: a hint is the one line after {BEGIN}:; longer hints "
            "go in the notebook's markdown, folded in tiers"
        )
    try:
        _stub(_indent(begin), hint)
    except MarkerError as error:
        raise MarkerError(f"line {number}: {error}") from None
    body, after = _body(lines, number, (END,), BEGIN)
    return Region(SOLUTION, hint, number, _indent(begin), tuple(body)), after


def _fix_region(lines: list[str], number: int) -> tuple[Region, int]:
    """The FIX region whose BEGIN FIX is line *number*; and the index after its END FIX."""
    begin = lines[number - 1]
    what = begin.strip()[len(BEGIN_FIX):].strip().lstrip(":").strip()
    if not what:
        raise MarkerError(f"line {number}: say what the fix does after {BEGIN_FIX}: "
                          "(one line, for whoever reads the solution)")
    fixed, after_broken = _body(lines, number, (BROKEN, END_FIX), BEGIN_FIX)
    if not lines[after_broken - 1].strip().startswith(BROKEN):
        raise MarkerError(f"line {after_broken}: {END_FIX} without {BROKEN}: write the "
                          f"broken lines, commented out, between {BROKEN} and {END_FIX}")
    commented, after = _body(lines, after_broken, (END_FIX,), BEGIN_FIX)
    broken = [_uncomment(line, after_broken + 1 + offset)
              for offset, line in enumerate(commented)]
    if not any(line.strip() for line in fixed + broken):
        raise MarkerError(f"line {number}: the fix region has neither fixed nor broken lines")
    if [line.strip() for line in fixed if line.strip()] == [
            line.strip() for line in broken if line.strip()]:
        raise MarkerError(f"line {number}: the broken lines are the same as the fixed ones: "
                          "nothing to fix")
    return Region(FIX, what, number, _indent(begin), tuple(fixed), tuple(broken)), after


def _uncomment(line: str, number: int) -> str:
    """A broken line as the exercise has it: its first '#' and one space after it removed."""
    if not line.strip():
        return line
    text = line.lstrip()
    if not text.startswith("#"):
        raise MarkerError(f"line {number}: a broken line is commented out in the solution "
                          f"(# ...): {line.strip()!r}")
    rest = text[1:]
    return _indent(line) + (rest[1:] if rest.startswith(" ") else rest)


def _body(lines: list[str], number: int, ends: tuple[str, ...],
          begin: str) -> tuple[list[str], int]:
    """The lines from index *number* up to a marker in *ends*; and the index after it.

    Any other marker in between is a MarkerError, and so is no end at all.
    """
    body = []
    while number < len(lines):
        text = lines[number].strip()
        number += 1
        if text.startswith(ends):
            return body, number
        if text.startswith(MARKERS):
            marker = next(marker for marker in MARKERS if text.startswith(marker))
            if marker in (BEGIN, BEGIN_FIX):
                raise MarkerError(f"line {number}: {marker} inside another "
                                  f"{'solution' if begin == BEGIN else 'fix'} region")
            raise MarkerError(f"line {number}: {marker} inside a region opened by {begin}")
        body.append(lines[number - 1])
    raise MarkerError(f"{begin} without {' or '.join(ends) if begin == BEGIN else END_FIX}")


def _is_comment_hint(line: str) -> bool:
    """A ``###`` line right after BEGIN: the old way of writing a longer hint."""
    text = line.strip()
    return text.startswith("###") and not text.startswith(MARKERS)


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
    found = 0
    for index, cell in enumerate(exercise.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        try:
            found += len(regions(cell.source))
            cell.source = strip_solution(cell.source)
        except MarkerError as error:
            raise MarkerError(f"{name}, cell {index}: {error}") from None
        cell.outputs = []
        cell.execution_count = None
    if not found:
        raise MarkerError(f"{name}: no {BEGIN} or {BEGIN_FIX} region, nothing for the "
                          "student to write or fix")
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
