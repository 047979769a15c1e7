"""Feedback for a learner studying alone: checked predictions and quizzes.

A kit helper for the notebooks, not part of ``socketserver``. Two tools:

- ``predict(my_prediction, measured, explain=...)``: the learner writes a
  prediction in one cell, the next cell measures, and this compares the two
  and says why the measurement came out as it did.
- ``Quiz(Question(...), ...)``: a few multiple-choice or short-answer items at
  the end of a notebook; ``quiz.check({1: "b", 2: "..."})`` marks each one
  and explains a wrong answer.

Both return a ``Feedback``: Jupyter shows its text when it is the last line of
a cell, and ``.ok`` / ``.score`` say what was found, for tests. Nothing here
raises on a learner's input: a missing or malformed answer is reported in the
text so that "Run All" goes on.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

#: What an unanswered prediction or quiz item holds in the notebooks.
NOT_ANSWERED = None


@dataclasses.dataclass(frozen=True)
class Feedback:
    """What a check found. ``ok`` is True (right), False (wrong) or None
    (nothing to check yet); ``score`` counts right answers out of ``out_of``."""

    text: str
    ok: bool | None
    score: int = 0
    out_of: int = 1

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


# --- Predictions ------------------------------------------------------------

def predict(prediction: Any, measured: Any, *, explain: str,
            choices: Mapping[str, str] | None = None, tolerance: float = 0.0,
            unit: str = "") -> Feedback:
    """Compare a learner's ``prediction`` with what was ``measured``.

    With ``choices`` ({"a": "it blocks", ...}) both are choice letters; the
    notebook computes ``measured``'s letter from its measurement. Without
    them both are numbers, equal when within ``tolerance``. ``explain`` says
    why the measurement is what it is; it is shown whatever was predicted.
    """
    shown_measured = _shown(measured, choices, unit)
    if prediction is NOT_ANSWERED:
        return Feedback(f"No prediction yet: write one in the cell above and run both cells "
                        f"again.\nMeasured: {shown_measured}\nWhy: {explain}", None)
    problem = _invalid_prediction(prediction, choices)
    if problem:
        return Feedback(f"{problem}\nMeasured: {shown_measured}\nWhy: {explain}", None)
    ok = _same(prediction, measured, choices, tolerance)
    verdict = "Your prediction holds" if ok else "Not what you predicted"
    return Feedback(f"{verdict}: you said {_shown(prediction, choices, unit)}; "
                    f"measured: {shown_measured}.\nWhy: {explain}", ok, int(ok))


def _invalid_prediction(prediction: Any, choices: Mapping[str, str] | None) -> str | None:
    """A sentence saying what is wrong with the prediction's form, or None."""
    if choices is not None:
        if _letter(prediction) not in choices:
            return (f"{prediction!r} is not one of the choices "
                    f"{', '.join(repr(key) for key in choices)}.")
        return None
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)):
        return f"Write the prediction as a number, not {prediction!r}."
    if not math.isfinite(prediction):
        return f"Write the prediction as a finite number, not {prediction!r}."
    return None


def _same(prediction: Any, measured: Any, choices: Mapping[str, str] | None,
          tolerance: float) -> bool:
    if choices is not None:
        return _letter(prediction) == _letter(measured)
    return abs(prediction - measured) <= tolerance


def _shown(value: Any, choices: Mapping[str, str] | None, unit: str) -> str:
    if choices is not None and _letter(value) in choices:
        return f"({_letter(value)}) {choices[_letter(value)]}"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{value} {unit}".strip()


def _letter(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# --- Quizzes ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Question:
    """One quiz item.

    Multiple choice: ``choices`` maps letters to options and ``answer`` is a
    letter. Short answer: no ``choices``; ``answer`` is the accepted answer
    or a tuple of them, compared ignoring case, spaces, quotes, "()" and a
    leading "self." or "socketserver.". ``why`` explains the right answer;
    ``wrong`` may explain a particular wrong choice.
    """

    text: str
    answer: str | tuple[str, ...]
    why: str
    choices: Mapping[str, str] | None = None
    wrong: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def accepts(self, given: Any) -> bool:
        """Whether ``given`` is a right answer."""
        if not isinstance(given, str):
            return False
        accepted = (self.answer,) if isinstance(self.answer, str) else self.answer
        return _normalized(given) in {_normalized(answer) for answer in accepted}

    def shown(self, number: int) -> str:
        lines = [f"{number}. {self.text}"]
        for letter, option in (self.choices or {}).items():
            lines.append(f"   ({letter}) {option}")
        return "\n".join(lines)


def _normalized(answer: str) -> str:
    answer = re.sub(r"[\s'\"`]", "", answer.lower())
    answer = re.sub(r"^(self\.|socketserver\.)", "", answer)
    return answer.removesuffix("()")


class Quiz:
    """A numbered list of questions; ``check`` marks a learner's answers."""

    def __init__(self, *questions: Question) -> None:
        if not questions:
            raise ValueError("a quiz needs at least one question")
        self.questions = questions

    def __repr__(self) -> str:
        blank = ", ".join(f"{number}: None" for number in range(1, len(self.questions) + 1))
        return ("\n\n".join(q.shown(n) for n, q in enumerate(self.questions, 1))
                + f"\n\nAnswer below, with quiz.check({{{blank}}})")

    def check(self, answers: Mapping[int, Any]) -> Feedback:
        """Mark ``answers`` ({question number: answer}); unanswered items are
        listed, not counted wrong, and a number not in the quiz is reported."""
        if not isinstance(answers, Mapping):
            return Feedback("Give the answers as a dict, for example {1: \"b\", 2: \"...\"}.",
                            None, 0, len(self.questions))
        lines = [self._marked(number, question, answers.get(number))
                 for number, question in enumerate(self.questions, 1)]
        unknown = sorted(set(answers) - set(range(1, len(self.questions) + 1)), key=str)
        if unknown:
            lines.append(f"There is no question {', '.join(map(str, unknown))} in this quiz.")
        total = len(self.questions)
        score = sum(q.accepts(answers.get(n)) for n, q in enumerate(self.questions, 1))
        answered = sum(answers.get(n) is not NOT_ANSWERED for n in range(1, total + 1))
        lines.append(f"Score: {score} of {total}"
                     + ("" if answered == total else f" ({total - answered} not answered yet)"))
        ok = None if answered < total else score == total
        return Feedback("\n".join(lines), ok, score, len(self.questions))

    @staticmethod
    def _marked(number: int, question: Question, given: Any) -> str:
        if given is NOT_ANSWERED:
            return f"{number}. not answered yet"
        if question.accepts(given):
            return f"{number}. right. {question.why}"
        if question.choices is not None and _letter(given) not in question.choices:
            return (f"{number}. {given!r} is not one of the choices "
                    f"{', '.join(repr(key) for key in question.choices)}.")
        because = question.wrong.get(_letter(given), "")
        return f"{number}. not quite. {because + ' ' if because else ''}{question.why}"

