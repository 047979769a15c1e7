"""The notebooks give a learner working alone what the kit promises.

Every notebook declares whether it is on the core path or optional. Every
Questions section has a folded answer under each question and every "Try this"
item says what you should see; every core notebook has a prediction checked by
``selfcheck.predict`` and a self-check quiz whose answer key is consistent; a
core notebook's prose (outside folded answers) stays short enough for one
sitting; every link resolves; the glossary's terms are linked from the
notebooks; every documented class is used somewhere; no test machinery sits
in a learner's code. (nbval re-executes the notebooks themselves.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import sockserver_lib
from sockserver_lib.selfcheck import Quiz

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]*.ipynb"))
#: The most words of prose (outside folded <details>) a core notebook may have.
CORE_WORDS = 1800
#: Terms the glossary must explain (anchor ids in notebooks/glossary.md).
GLOSSARY_TERMS = ("port", "loopback", "handshake", "backlog", "time-wait", "percentiles",
                  "gil", "copy-on-write", "zombie", "eof", "rst")
#: Errors the troubleshooting page must explain (anchor ids in notebooks/troubleshooting.md).
TROUBLES = ("econnrefused", "econnreset", "epipe", "eaddrinuse", "etimedout",
            "socket-timeout", "hung-cell")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _markdown(notebook: dict) -> list[str]:
    return [_source(cell) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]


def _code(notebook: dict) -> list[str]:
    return [_source(cell) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _path_of(notebook: dict) -> str | None:
    return notebook["metadata"].get("sockserver_kit", {}).get("path")


def _core() -> list[Path]:
    return [path for path in NOTEBOOKS if _path_of(_load(path)) == "core"]


def _section(notebook: dict, title: str) -> str:
    """The markdown from the heading ``## <title>`` to the next ``## `` heading."""
    text = "\n".join(_markdown(notebook))
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def _without_details(text: str) -> str:
    return re.sub(r"<details>.*?</details>", "", text, flags=re.S)


def prose_words(notebook: dict) -> int:
    """Words of markdown a learner reads on the main path: folded answers,
    hints and "what you should see" notes are not counted."""
    return sum(len(_without_details(text).split()) for text in _markdown(notebook))


def folded_items(section: str, summary: str) -> tuple[int, int]:
    """(numbered items ``**N.**``, folded ``<summary>{summary}</summary>`` blocks)."""
    items = len(re.findall(r"^\*\*\d+\.\*\*", _without_details(section), re.M))
    return items, section.count(f"<summary>{summary}</summary>")


by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)


@by_name
def test_notebook_says_whether_it_is_core_or_optional(path):
    assert _path_of(_load(path)) in ("core", "optional"), (
        f'{path.name}: set metadata "sockserver_kit": {{"path": "core" or "optional"}}')


@by_name
def test_no_test_machinery_in_the_learners_code(path):
    for code in _code(_load(path)):
        assert not re.search(r"#\s*NBVAL", code), f"{path.name}: use an nbval cell tag instead"


@by_name
def test_every_question_has_a_folded_answer(path):
    notebook = _load(path)
    section = _section(notebook, "Questions")
    if _path_of(notebook) == "core":
        assert section, f"{path.name} has no '## Questions' section"
    questions, answers = folded_items(section, "Answer")
    assert questions == answers, f"{path.name}: {questions} questions, {answers} answers"


@by_name
def test_every_try_this_says_what_you_should_see(path):
    items, notes = folded_items(_section(_load(path), "Try this"), "What you should see")
    assert items == notes, f"{path.name}: {items} Try-this items, {notes} notes"
    assert "\n- " not in "\n" + _without_details(_section(_load(path), "Try this")), (
        f"{path.name}: number the Try-this items (**1.**) so each has its note")


def _prediction_names(codes: list[str]) -> list[tuple[int, str]]:
    return [(index, name) for index, code in enumerate(codes)
            for name in re.findall(r"^(\w*prediction\w*) = None\b", code, re.M)]


@pytest.mark.parametrize("path", _core(), ids=lambda path: path.stem)
def test_core_notebook_checks_a_prediction(path):
    codes = _code(_load(path))
    predictions = _prediction_names(codes)
    assert predictions, f"{path.name}: no cell with `my_prediction = None` for the learner"
    for index, name in predictions:
        later = "\n".join(codes[index + 1:])
        assert re.search(rf"predict\(\s*{name}\b", later), (
            f"{path.name}: {name} is never checked with predict()")


def _quiz_in(path: Path) -> tuple[Quiz, list[str]]:
    codes = _code(_load(path))
    defining = [code for code in codes if "Quiz(" in code]
    assert len(defining) == 1, f"{path.name}: expected one cell that builds the quiz"
    namespace: dict = {}
    exec(compile(defining[0], f"{path.name}: quiz cell", "exec"), namespace)  # the kit's own cell
    return namespace["quiz"], codes[codes.index(defining[0]) + 1:]


@pytest.mark.parametrize("path", _core(), ids=lambda path: path.stem)
def test_core_notebook_ends_with_a_consistent_quiz(path):
    quiz, after = _quiz_in(path)
    assert any("quiz.check(" in code for code in after), f"{path.name}: no quiz.check() cell"
    assert len(quiz.questions) >= 3
    right = {}
    for number, question in enumerate(quiz.questions, 1):
        answer = question.answer if isinstance(question.answer, str) else question.answer[0]
        if question.choices is not None:
            assert answer in question.choices, f"{path.name} quiz {number}: answer not a choice"
            assert set(question.wrong) <= set(question.choices) - {answer}
        right[number] = answer
    assert quiz.check(right).ok is True


@pytest.mark.parametrize("path", _core(), ids=lambda path: path.stem)
def test_core_notebook_fits_one_sitting(path):
    words = prose_words(_load(path))
    assert words <= CORE_WORDS, f"{path.name}: {words} words of prose (at most {CORE_WORDS})"


def _links(text: str) -> list[str]:
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z]+:", target)]


def _anchors(path: Path) -> set[str]:
    """Ids a link may name in ``path``: explicit ids and JupyterLab/GitHub heading slugs."""
    if path.suffix == ".ipynb":
        text = "\n".join(_markdown(_load(path)))
    else:
        text = path.read_text(encoding="utf-8")
    found = set(re.findall(r"""<a (?:id|name)=["']([^"']+)["']""", text))
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        found.add(heading.strip().replace(" ", "-"))                     # JupyterLab
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))  # GitHub
    return found


def _documents() -> list[Path]:
    return NOTEBOOKS + [NOTEBOOK_DIR / "README.md", NOTEBOOK_DIR / "glossary.md",
                        NOTEBOOK_DIR / "troubleshooting.md", ROOT / "README.md"]


@pytest.mark.parametrize("path", _documents(), ids=lambda path: path.name)
def test_every_link_resolves(path):
    text = ("\n".join(_markdown(_load(path))) if path.suffix == ".ipynb"
            else path.read_text(encoding="utf-8"))
    for link in _links(text):
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.exists(), f"{path.name}: link to missing {link}"
        if anchor and file.suffix in (".md", ".ipynb"):
            assert anchor in _anchors(file), f"{path.name}: no #{anchor} in {file.name}"


@pytest.mark.parametrize("page, terms", [("glossary.md", GLOSSARY_TERMS),
                                         ("troubleshooting.md", TROUBLES)])
def test_glossary_and_troubleshooting_explain_each_term_and_are_linked(page, terms):
    anchors = _anchors(NOTEBOOK_DIR / page)
    linked = {link.partition("#")[2] for path in NOTEBOOKS
              for link in _links("\n".join(_markdown(_load(path))))
              if link.partition("#")[0] == page}
    for term in terms:
        assert term in anchors, f"{page} does not explain {term}"
        assert term in linked, f"no notebook links to {page}#{term}"


def test_every_documented_class_is_used_in_a_notebook():
    code = "\n".join(code for path in NOTEBOOKS for code in _code(_load(path)))
    unused = [name for name in sockserver_lib.__all__ if not re.search(rf"\b{name}\b", code)]
    assert not unused, f"never used in a notebook: {unused}"


@pytest.mark.parametrize("readme", ["README.md", "notebooks/README.md"])
def test_learning_path_lists_every_notebook_as_core_or_optional(readme):
    text = (ROOT / readme).read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        row = next((line for line in text.splitlines()
                    if line.startswith("|") and f"{path.name})" in line), None)
        assert row, f"{readme}: {path.name} is not in the learning path"
        assert f"| {_path_of(_load(path))} |" in row, (
            f"{readme}: {path.name}'s row does not say {_path_of(_load(path))}")


# --- The rules' own helpers, checked both ways ------------------------------

def test_prose_words_leave_out_folded_text():
    notebook = {"cells": [{"cell_type": "markdown", "source": "one two\n<details>three four "
                           "five</details>\nsix"},
                          {"cell_type": "code", "source": "seven eight"}]}
    assert prose_words(notebook) == 3


def test_folded_items_count_questions_and_their_answers():
    answered = "**1.** Why?\n\n<details><summary>Answer</summary>\n\nBecause.\n\n</details>\n"
    assert folded_items(answered * 2, "Answer") == (2, 2)
    assert folded_items(answered + "**2.** And?\n", "Answer") == (2, 1)
    assert folded_items("**1.** x\n<details><summary>Hint</summary>y</details>", "Answer") == (1, 0)


def test_anchors_include_explicit_ids_and_heading_slugs(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('<a id="time-wait"></a>\n### TIME_WAIT\n## Try this\n', encoding="utf-8")
    assert {"time-wait", "TIME_WAIT", "time_wait", "Try-this", "try-this"} <= _anchors(page)
    assert "backlog" not in _anchors(page)


#: The notebooks that draw a picture of their own run (the tracer's figures).
TRACED = ("00_start_here", "02_request_loop", "03_tcp_servers", "06_unix_servers",
          "07_serve_forever_shutdown", "08_threads", "09_processes", "11_select_server")


@pytest.mark.parametrize("stem", TRACED)
def test_notebook_shows_a_figure_drawn_from_its_own_run_and_asks_what_to_find(stem):
    notebook = _load(NOTEBOOK_DIR / f"{stem}.ipynb")
    drawing = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"
               and re.search(r"figures\.plot_\w+\(", _source(cell))]
    assert drawing, f"{stem}: no cell draws with sockserver_lib.figures"
    assert any("image/png" in output.get("data", {}) for cell in notebook["cells"]
               for output in cell.get("outputs", [])), f"{stem}: no figure in the outputs"
    assert "**Find it.**" in "\n".join(_markdown(notebook)), f"{stem}: nothing to find in it"
