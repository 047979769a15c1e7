"""Write the GitHub Classroom autograding workflow: one command per exercise.

    python tools/make_classroom_workflow.py > docs/classroom.yml

Copy the file to ``.github/workflows/classroom.yml`` in the assignment's
template repository (the kit, or the exercises you hand out).  Each
exercise is one step: ``python -m sockserver_lib.grade <its notebook>
--require-all``, worth the exercise's points, which Classroom awards when
the step succeeds; the reporter sends the results to Classroom.  The
points come from the grader's registry, so the file never disagrees with
it (tests/test_grade_class.py checks the committed copy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sockserver_lib.grading import EXERCISES  # noqa: E402

HEAD = """\
# GitHub Classroom autograding for the sockserver kit: one step per exercise.
# Made by tools/make_classroom_workflow.py; copy to .github/workflows/classroom.yml.
name: Autograding Tests
"on":
  - push
  - repository_dispatch
permissions:
  checks: write
  actions: read
  contents: read
jobs:
  run-autograding-tests:
    runs-on: ubuntu-latest
    if: github.actor != 'github-classroom[bot]'
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - name: Install the kit
        run: python -m pip install -r requirements.txt
"""

STEP = """\
      - name: {id}
        id: {id}
        uses: classroom-resources/autograding-command-grader@v1
        with:
          test-name: {name}
          command: python -m sockserver_lib.grade exercises/{notebook} --require-all
          timeout: 5
          max-score: {points}
"""

RESULT = '          {env}_RESULTS: "${{{{steps.{id}.outputs.result}}}}"'

REPORTER = """\
      - name: Autograding Reporter
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
{results}
        with:
          runners: {runners}
"""


def workflow() -> str:
    """The whole workflow file, from the registry."""
    steps = "".join(STEP.format(id=spec.id, name=json.dumps(f"{spec.id} {spec.title}"),
                                notebook=spec.notebook, points=spec.total)
                    for spec in EXERCISES.values())
    results = "\n".join(RESULT.format(env=spec.id.upper(), id=spec.id)
                        for spec in EXERCISES.values())
    return HEAD + steps + REPORTER.format(results=results, runners=",".join(EXERCISES))


if __name__ == "__main__":
    sys.stdout.write(workflow())
