"""Make a class of submissions to time and test the batch grader on.

    python tools/make_class.py CLASS_FOLDER [--students 100] [--seed 2026]
    python -m sockserver_lib.grade CLASS_FOLDER --csv grades.csv

Each student (a subfolder, student-001 ...) hands in five of the
registry's exercises, each notebook one of these kinds, drawn with a fixed seed:

- correct: the solution;            - partial: the solution, its last part unsolved
- untouched: the exercise as given; - renamed: the solution under another name
- broken: a file that is not JSON;  - and a few bad ones from tests/data/unsafe:
  a cell that never returns, a fork that carries on, endless output.

The rare kinds are placed a fixed number of times (KIND_COUNTS), like the
class the grading issue was measured on, a few fewer where that student
already hands in ex10; the rest are drawn by KIND_WEIGHTS.
Prints how many of each kind it wrote and the points a correct grader gives.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sockserver_lib.grading import EXERCISES  # noqa: E402

SOLUTIONS, EXERCISE_FOLDER = REPO / "solutions", REPO / "exercises"
UNSAFE = REPO / "tests" / "data" / "unsafe"
#: Exercises each student hands in.
PER_STUDENT = 5
#: The kinds drawn at random, and how often.
KIND_WEIGHTS = {"correct": 55, "partial": 15, "untouched": 18, "renamed": 12}
#: Kinds with a fixed count in the whole class: (how many, sample or None).
KIND_COUNTS = {
    "broken": (10, None),
    "hanging": (4, UNSAFE / "ex10_serves_forever_in_a_cell.json"),
    "forking": (4, UNSAFE / "ex10_forks_and_carries_on.json"),
    "flooding": (3, UNSAFE / "ex10_floods_output.json"),
}
#: What a correct grader gives each kind: all of the exercise's points, or none.
FULL_MARKS = {"correct", "renamed", "hanging", "forking", "flooding"}


def notebook_of(folder: Path, exercise: str) -> Path:
    return next(folder.glob(f"{exercise}_*.ipynb"))


def partial(exercise: str) -> dict:
    """The solution with its last solved cell left as the exercise gives it (a student who
    almost finished: the earlier parts, which most tests need, are done)."""
    solved = json.loads(notebook_of(SOLUTIONS, exercise).read_text(encoding="utf-8"))
    given = json.loads(notebook_of(EXERCISE_FOLDER, exercise).read_text(encoding="utf-8"))
    differing = [index for index, (cell, stub)
                 in enumerate(zip(solved["cells"], given["cells"], strict=True))
                 if cell["source"] != stub["source"]]
    solved["cells"][differing[-1]] = given["cells"][differing[-1]]
    return solved


def write(kind: str, exercise: str, folder: Path) -> None:
    """One notebook of *kind* for *exercise* into a student's *folder*."""
    target = folder / notebook_of(SOLUTIONS, exercise).name
    if kind == "correct":
        shutil.copy(notebook_of(SOLUTIONS, exercise), target)
    elif kind == "untouched":
        shutil.copy(notebook_of(EXERCISE_FOLDER, exercise), target)
    elif kind == "renamed":
        shutil.copy(notebook_of(SOLUTIONS, exercise), folder / f"my homework {exercise}.ipynb")
    elif kind == "partial":
        target.write_text(json.dumps(partial(exercise), indent=1), encoding="utf-8")
    elif kind == "broken":
        target.write_text('{"cells": [', encoding="utf-8")  # cut short by a bad upload
    else:
        shutil.copy(KIND_COUNTS[kind][1], folder / f"ex10_{kind}.ipynb")


def plan(students: int, seed: int) -> list:
    """(student, exercise, kind) for the whole class."""
    chooser = random.Random(seed)
    slots = [(student, exercise) for student in range(1, students + 1)
             for exercise in chooser.sample(sorted(EXERCISES), PER_STUDENT)]
    fixed = [kind for kind, (count, _) in KIND_COUNTS.items() for _ in range(count)]
    special = set(chooser.sample(range(len(slots)), len(fixed)))
    kinds = list(KIND_WEIGHTS)
    weights = list(KIND_WEIGHTS.values())
    chosen, fixed_kinds = [], iter(fixed)
    for index, (student, exercise) in enumerate(slots):
        kind = next(fixed_kinds) if index in special else chooser.choices(kinds, weights)[0]
        if kind in KIND_COUNTS and KIND_COUNTS[kind][1] is not None:
            exercise = "ex10"  # the unsafe samples are ex10 notebooks
        chosen.append((student, exercise, kind))
    return _one_file_per_exercise(chosen)


def _one_file_per_exercise(chosen: list) -> list:
    """Drop a second notebook of one exercise for one student (ex10 samples may repeat)."""
    seen, kept = set(), []
    for student, exercise, kind in chosen:
        if (student, exercise) not in seen:
            seen.add((student, exercise))
            kept.append((student, exercise, kind))
    return kept


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2026)
    options = parser.parse_args(argv)
    if options.folder.exists() and any(options.folder.iterdir()):
        parser.error(f"{options.folder} is not empty")
    counts: dict = {}
    expected = total = 0
    for student, exercise, kind in plan(options.students, options.seed):
        folder = options.folder / f"student-{student:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        write(kind, exercise, folder)
        counts[kind] = counts.get(kind, 0) + 1
        points = EXERCISES[exercise].total
        total += points
        expected += points if kind in FULL_MARKS else 0
    print(f"{sum(counts.values())} notebooks for {options.students} students: "
          + ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())))
    print(f"a correct grader gives the full-mark kinds {expected}/{total} points, and "
          "partial ones part of theirs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
