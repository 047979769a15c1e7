"""Exercise hints make the learner look before they are told.

Every exercise, and its solution (the single source), gives its hints folded
in ``<details>``, in tiers: ``Hint 1: a nudge`` (what to run or look at),
``Hint 2: where to look``, and last ``Hint N: nearly the answer``, with blank
lines inside ``<details>`` so that the markdown renders. A tier before the
last never quotes a line of the solution's code longer than a short
identifier, and no tier quotes most of a solution region. A stub's message
is one plain line: no string spelled over several lines, no escapes.

Exercise 08 shows its race before it mentions a lock: a Try-it cell with a
``threading.Barrier`` comes before any markdown that says "lock", and that
cell, run on a handler without the lock, prints the lost updates; on the
solution's handler, none; on the exercise's stub, a message, not a crash.

Each check returns a list of problems; the last tests feed them small bad
notebooks, so that a check that can no longer fail is noticed.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from checkout import REPO

SOLUTIONS = sorted((REPO / "solutions").glob("ex[0-9][0-9]_*.ipynb"))
NAMES = [path.name for path in SOLUTIONS]
FOLDERS = ("solutions", "exercises")

#: Labels of the tiers, by the number of tiers in a group.
LABELS = {2: ["a nudge", "nearly the answer"],
          3: ["a nudge", "where to look", "nearly the answer"]}
#: A quoted line of solution code longer than this is more than a short identifier
#: (``self.server.hits_lock`` is 21 characters; ``with self.server.hits_lock:`` 27).
LONG_LINE = 24
#: Lines at least this long count when asking whether a tier copies a region.
CODE_LINE = 16
#: The longest line a stub may be (the project's line length).
MAX_STUB_LINE = 100

DETAILS = re.compile(r"<details>(?P<inside>.*?)</details>", re.S)
FOLDED = re.compile(r"<summary>(?P<summary>[^<]*)</summary>\n\n(?P<body>.*\S)\n\n\Z", re.S)
HINT = re.compile(r"Hint (?P<number>\d+): (?P<label>.+)")
HEADING = re.compile(r"^#{1,6} ", re.M)
HINTS_HEADING = re.compile(r"^#{1,6} +Hints?\b.*$", re.M)
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s", re.M)
#: "lock", "Lock", "hits_lock"; not "block_on_close", "unlocked" or "deadlock".
LOCK = re.compile(r"(?<![a-z])lock", re.I)
LOST = re.compile(r"(\d+) of (\d+) updates lost")


@dataclass
class Tier:
    cell: int
    number: int
    label: str
    body: str


def load(folder: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / folder / name, as_version=4)


def normalized(text: str) -> str:
    return " ".join(text.split())


def folded_hints(notebook: nbformat.NotebookNode) -> tuple[list[list[Tier]], list[str]]:
    """The hint groups of *notebook* (a group starts at Hint 1, within one
    markdown cell) and what is wrong with their form."""
    groups: list[list[Tier]] = []
    problems: list[str] = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        group: list[Tier] | None = None
        for block in DETAILS.finditer(cell.source):
            inside = block["inside"]
            if "Hint" not in inside.partition("</summary>")[0]:
                continue  # another folded note ("What you should see")
            folded = FOLDED.match(inside)
            if folded is None:
                problems.append(f"cell {index}: write <details><summary>Hint N: ...</summary>, "
                                "a blank line, the hint, a blank line, </details>: "
                                f"{block.group(0)[:60]!r}")
                continue
            hint = HINT.fullmatch(folded["summary"].strip())
            if hint is None:
                problems.append(f"cell {index}: summary {folded['summary']!r} is not "
                                "'Hint N: label'")
                continue
            tier = Tier(index, int(hint["number"]), hint["label"], folded["body"])
            if tier.number == 1:
                group = []
                groups.append(group)
            elif group is None or group[-1].number != tier.number - 1:
                problems.append(f"cell {index}: Hint {tier.number} does not follow Hint "
                                f"{tier.number - 1}")
                continue
            group.append(tier)
        problems.extend(_unfolded_hints(index, cell.source))
    for group in groups:
        labels = [tier.label for tier in group]
        if labels != LABELS.get(len(group)):
            problems.append(f"cell {group[0].cell}: tiers {labels}; expected 2 or 3 tiers "
                            "labelled 'a nudge', ('where to look',) 'nearly the answer'")
    return groups, problems


def _unfolded_hints(index: int, source: str) -> list[str]:
    """Hints written out under a Hints heading instead of folded."""
    text = DETAILS.sub("", source)
    problems = []
    for heading in HINTS_HEADING.finditer(text):
        rest = text[heading.end():]
        following = HEADING.search(rest)
        section = rest[: following.start()] if following else rest
        if LIST_ITEM.search(section):
            problems.append(f"cell {index}: a list under {heading.group(0)!r} is not folded")
    return problems


def solution_regions(solution: nbformat.NotebookNode) -> list[list[str]]:
    """The code lines of each BEGIN/END SOLUTION region, and the fixed lines of each
    BEGIN FIX/BROKEN region (a debugging lab's fix), normalized, without comments."""
    regions = []
    for cell in solution.cells:
        if cell.cell_type != "code":
            continue
        region = None
        for line in cell.source.split("\n"):
            text = line.strip()
            if text.startswith(("### BEGIN SOLUTION", "### BEGIN FIX")):
                region = []
            elif text.startswith(("### END SOLUTION", "### BROKEN")):
                regions.append(region)
                region = None
            elif region is not None and text and not text.startswith("#"):
                region.append(normalized(text.split("  #")[0]))
    return regions


def quoted_lines(text: str, regions: list[list[str]], shortest: int) -> list[str]:
    body = normalized(text)
    return [line for region in regions for line in region
            if len(line) >= shortest and line in body]


def hint_leaks(groups: list[list[Tier]], regions: list[list[str]]) -> list[str]:
    """Solution code quoted before the last tier, or most of a region in any tier."""
    problems = []
    for group in groups:
        for tier in group:
            where = f"cell {tier.cell}, Hint {tier.number}"
            if tier is not group[-1]:
                for line in quoted_lines(tier.body, regions, LONG_LINE + 1):
                    problems.append(f"{where} quotes the solution before the last tier: {line!r}")
            for region in regions:
                lines = [line for line in region if len(line) >= CODE_LINE]
                quoted = quoted_lines(tier.body, [lines], CODE_LINE)
                if lines and len(quoted) > len(lines) // 2:
                    problems.append(f"{where} copies {len(quoted)} of the {len(lines)} lines "
                                    f"of a solution region: {quoted}")
    return problems


def stub_problems(exercise: nbformat.NotebookNode, regions: list[list[str]]) -> list[str]:
    """Each NotImplementedError message: one plain line that does not give the code."""
    problems = []
    for index, cell in enumerate(exercise.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.split("\n")
        for node in ast.walk(ast.parse(cell.source)):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and getattr(node.exc.func, "id", None) == "NotImplementedError"):
                continue
            where = f"cell {index}, line {node.lineno}"
            arguments = node.exc.args
            if len(arguments) != 1 or not isinstance(arguments[0], ast.Constant):
                problems.append(f"{where}: the stub's message is not one string")
                continue
            literal = ast.get_source_segment(cell.source, arguments[0])
            if node.lineno != node.end_lineno:
                problems.append(f"{where}: the stub is spelled over several lines")
            if "\\" in literal:
                problems.append(f"{where}: the stub's message has escapes: {literal}")
            if len(lines[node.lineno - 1]) > MAX_STUB_LINE:
                problems.append(f"{where}: the stub is longer than {MAX_STUB_LINE} characters")
            for line in quoted_lines(arguments[0].value, regions, LONG_LINE + 1):
                problems.append(f"{where}: the stub quotes the solution: {line!r}")
    return problems


def race_before_lock(notebook: nbformat.NotebookNode) -> list[str]:
    """A try-it cell with a Barrier (with a timeout) before any markdown saying lock."""
    barrier = next((index for index, cell in enumerate(notebook.cells)
                    if cell.cell_type == "code" and "try-it" in cell.metadata.get("tags", [])
                    and "threading.Barrier(" in cell.source), None)
    if barrier is None:
        return ["no try-it code cell uses threading.Barrier"]
    problems = []
    if not re.search(r"threading\.Barrier\([^)]*timeout=", notebook.cells[barrier].source):
        problems.append(f"cell {barrier}: the Barrier has no timeout: a mistake would hang")
    lock = next((index for index, cell in enumerate(notebook.cells)
                 if cell.cell_type == "markdown" and LOCK.search(cell.source)), None)
    if lock is not None and lock < barrier:
        problems.append(f"markdown cell {lock} mentions a lock before the race is shown "
                        f"(cell {barrier}): {LOCK.search(notebook.cells[lock].source).group(0)!r}")
    return problems


# --- Every exercise and solution ----------------------------------------------

every_notebook = pytest.mark.parametrize(
    "folder, name", [(folder, name) for name in NAMES for folder in FOLDERS],
    ids=lambda value: Path(value).stem)


@every_notebook
def test_hints_are_folded_in_tiers(folder, name):
    groups, problems = folded_hints(load(folder, name))
    assert problems == []
    assert groups, f"{folder}/{name} has no folded hints"


@every_notebook
def test_no_tier_gives_the_solution_away(folder, name):
    groups, _ = folded_hints(load(folder, name))
    assert hint_leaks(groups, solution_regions(load("solutions", name))) == []


@pytest.mark.parametrize("name", NAMES, ids=lambda name: Path(name).stem)
def test_stubs_are_one_plain_line_that_does_not_give_the_code(name):
    exercise = load("exercises", name)
    assert stub_problems(exercise, solution_regions(load("solutions", name))) == []
    solution_code = "".join(cell.source for cell in load("solutions", name).cells
                            if cell.cell_type == "code")
    if "### BEGIN SOLUTION" in solution_code:  # debugging labs (BEGIN FIX) have no stub
        assert "raise NotImplementedError(" in "".join(
            cell.source for cell in exercise.cells if cell.cell_type == "code")


# --- Exercise 08: the race, seen before the lock is named ------------------------

EX08 = "ex08_threads.ipynb"


@pytest.mark.parametrize("folder", FOLDERS)
def test_ex08_shows_the_race_before_any_markdown_mentions_a_lock(folder):
    assert race_before_lock(load(folder, EX08)) == []


def _ex08_race(folder: str, handler_source: str | None = None) -> str:
    """Run exercise 08's cells as a learner would, then its race cell; return what it
    printed.  *handler_source* replaces CountingHandler."""
    notebook = load(folder, EX08)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    race = next(cell for cell in cells if "threading.Barrier(" in cell.source)
    namespace: dict = {"__name__": "__ex08__"}
    for cell in cells[: cells.index(race)]:
        if "try-it" not in cell.metadata.get("tags", []):
            exec(compile(cell.source, f"{folder}/{EX08}", "exec"), namespace)
    if handler_source is not None:
        exec(compile(handler_source, "handler", "exec"), namespace)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(race.source, f"{folder}/{EX08}: race", "exec"), namespace)
    return printed.getvalue()


UNLOCKED = '''
class CountingHandler(BaseRequestHandler):
    def handle(self):
        self.server.hits += 1
        self.request.sendall(b"%d\\n" % self.server.hits)
'''


def test_ex08_race_cell_loses_updates_without_the_lock_every_time():
    for _ in range(3):
        printed = _ex08_race("solutions", UNLOCKED)
        lost, clients = map(int, LOST.search(printed).groups())
        assert lost == clients - 1, printed  # every handler read 0 and wrote 1


def test_ex08_race_cell_loses_nothing_with_the_solutions_lock():
    printed = _ex08_race("solutions")
    assert LOST.search(printed).group(1) == "0", printed
    assert "barrier gave up" not in printed  # no deadlock waited out


def test_ex08_race_cell_reports_a_stub_instead_of_crashing():
    printed = _ex08_race("exercises")
    assert "NotImplementedError" in printed and not LOST.search(printed)


def test_ex08_solution_was_run_and_showed_no_lost_update():
    race = next(cell for cell in load("solutions", EX08).cells
                if cell.cell_type == "code" and "threading.Barrier(" in cell.source)
    printed = "".join(output.get("text", "") for output in race.outputs)
    assert LOST.search(printed) and LOST.search(printed).group(1) == "0", printed


# --- The checks can fail ----------------------------------------------------------

def _notebook(*cells: tuple[str, str], tags: dict | None = None) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    for index, (kind, source) in enumerate(cells):
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                else nbformat.v4.new_code_cell(source))
        cell.metadata["tags"] = (tags or {}).get(index, [])
        notebook.cells.append(cell)
    return notebook


def _tier(number: int, label: str, body: str) -> str:
    return f"<details><summary>Hint {number}: {label}</summary>\n\n{body}\n\n</details>"


SOLUTION = _notebook(("code", "def f(self):\n    ### BEGIN SOLUTION: do it\n"
                              "    self.socket.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)\n"
                              "    self.socket.bind(self.server_address)\n"
                              "    ### END SOLUTION"))
GOOD = "\n\n".join([_tier(1, "a nudge", "Run it and look."),
                    _tier(2, "where to look", "Notebook 03."),
                    _tier(3, "nearly the answer", "`self.socket.bind(self.server_address)`")])


def test_the_hint_checks_accept_good_hints():
    groups, problems = folded_hints(_notebook(("markdown", "### Hints\n\n" + GOOD)))
    assert problems == [] and [len(group) for group in groups] == [3]
    assert hint_leaks(groups, solution_regions(SOLUTION)) == []


@pytest.mark.parametrize("markdown, problem", [
    ("### Hints\n\n- `bind()` then `listen()`", "is not folded"),
    (_tier(2, "where to look", "a") + _tier(1, "a nudge", "b"), "does not follow"),
    (_tier(1, "a nudge", "a") + _tier(3, "nearly the answer", "b"), "does not follow"),
    (_tier(1, "a nudge", "a") + _tier(2, "the answer", "b"), "expected 2 or 3 tiers"),
    ("<details><summary>Hint 1: a nudge</summary>no blank line</details>", "a blank line"),
    ("<details><summary>Hint one</summary>\n\na\n\n</details>", "is not 'Hint N: label'"),
])
def test_the_form_check_finds_unfolded_or_disordered_hints(markdown, problem):
    _, problems = folded_hints(_notebook(("markdown", markdown)))
    assert any(problem in found for found in problems), problems


@pytest.mark.parametrize("first, last, problem", [
    ("Type `self.socket.bind(self.server_address)`.", "b", "before the last tier"),
    ("a", "`self.socket.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)` then "
          "`self.socket.bind(self.server_address)`", "copies 2 of the 2 lines"),
])
def test_the_leak_check_finds_the_solution_in_a_hint(first, last, problem):
    markdown = _tier(1, "a nudge", first) + "\n\n" + _tier(2, "nearly the answer", last)
    groups, _ = folded_hints(_notebook(("markdown", markdown)))
    assert any(problem in found for found in hint_leaks(groups, solution_regions(SOLUTION)))


def test_the_leak_check_finds_the_old_ex08_hint():
    old = ("`with self.server.hits_lock:` around `self.server.hits += 1` and reading the new "
           "value.")
    groups = [[Tier(1, 1, "a nudge", old), Tier(1, 2, "nearly the answer", "...")]]
    leaks = hint_leaks(groups, solution_regions(load("solutions", EX08)))
    assert leaks == ["cell 1, Hint 1 quotes the solution before the last tier: "
                     "'with self.server.hits_lock:'"]


@pytest.mark.parametrize("stub, problem", [
    ('raise NotImplementedError(\n    "split at b\\"\\\\n\\" "\n    "and keep the rest")',
     "several lines"),
    ('raise NotImplementedError("split at b\\"\\\\n\\"")', "has escapes"),
    ('raise NotImplementedError("self.socket.bind(self.server_address)")', "quotes the solution"),
    ('raise NotImplementedError("' + "x" * 80 + '")', "longer than"),
])
def test_the_stub_check_finds_escaped_or_revealing_messages(stub, problem):
    problems = stub_problems(_notebook(("code", stub)), solution_regions(SOLUTION))
    assert any(problem in found for found in problems), problems


def test_the_race_check_finds_a_lock_named_before_the_barrier():
    race = "barrier = threading.Barrier(10, timeout=2.5)"
    shown_late = _notebook(("markdown", "Use self.server.hits_lock."), ("code", race),
                           tags={1: ["try-it"]})
    assert "mentions a lock" in race_before_lock(shown_late)[0]
    no_timeout = _notebook(("code", "threading.Barrier(10)"), ("markdown", "a Lock"),
                           tags={0: ["try-it"]})
    assert "no timeout" in race_before_lock(no_timeout)[0]
    assert race_before_lock(_notebook(("markdown", "block_on_close, unlocked, deadlock"),
                                      ("code", race), tags={1: ["try-it"]})) == []


def test_the_leak_check_finds_a_debugging_labs_fix_but_not_its_broken_lines():
    lab = _notebook(("code", "def handle(self):\n"
                             "    ### BEGIN FIX: send it all\n"
                             "    self.request.sendall(report)\n"
                             "    ### BROKEN\n"
                             "    # self.request.send(report)\n"
                             "    ### END FIX"))
    assert solution_regions(lab) == [["self.request.sendall(report)"]]
    markdown = (_tier(1, "a nudge", "`self.request.sendall(report)`") + "\n\n"
                + _tier(2, "nearly the answer", "Not `self.request.send(report)`."))
    groups, _ = folded_hints(_notebook(("markdown", markdown)))
    assert hint_leaks(groups, solution_regions(lab)) == [  # nothing about Hint 2
        "cell 0, Hint 1 quotes the solution before the last tier: "
        "'self.request.sendall(report)'",
        "cell 0, Hint 1 copies 1 of the 1 lines of a solution region: "
        "['self.request.sendall(report)']"]
