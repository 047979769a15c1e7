"""The learner's self-checks: predictions and quizzes mark right, wrong and
missing answers correctly and never raise on a learner's input."""

import pytest

from sockserver_lib.selfcheck import Feedback, Question, Quiz, predict

BLOCKS = {"a": "both clients are answered", "b": "the second client waits"}


def test_prediction_by_choice_right_and_wrong():
    right = predict("b", "b", choices=BLOCKS, explain="one request at a time")
    wrong = predict("a", "b", choices=BLOCKS, explain="one request at a time")
    assert right.ok is True and right.score == 1
    assert right.text.startswith("Your prediction holds: you said (b) the second client waits")
    assert wrong.ok is False and wrong.score == 0
    assert wrong.text.startswith("Not what you predicted: you said (a) both clients")
    assert "measured: (b) the second client waits" in wrong.text
    assert wrong.text.endswith("Why: one request at a time")


def test_prediction_letters_ignore_case_and_spaces():
    assert predict(" B ", "b", choices=BLOCKS, explain="x").ok is True


def test_numeric_prediction_with_tolerance():
    assert predict(8000, 8000, explain="x").ok is True
    assert predict(7990, 8000, explain="x", tolerance=10).ok is True
    assert predict(7989, 8000, explain="x", tolerance=10).ok is False
    assert "measured: 8000 hits" in predict(1, 8000, explain="x", unit="hits").text


def test_no_prediction_is_neither_right_nor_wrong():
    feedback = predict(None, "b", choices=BLOCKS, explain="why")
    assert feedback.ok is None and feedback.score == 0
    assert feedback.text.startswith("No prediction yet")
    assert "Measured: (b) the second client waits" in feedback.text


@pytest.mark.parametrize("prediction, choices, says", [
    ("c", BLOCKS, "'c' is not one of the choices 'a', 'b'."),
    ("many", None, "Write the prediction as a number, not 'many'."),
    (True, None, "Write the prediction as a number, not True."),
    (float("nan"), None, "Write the prediction as a finite number, not nan."),
])
def test_malformed_prediction_is_explained_not_raised(prediction, choices, says):
    feedback = predict(prediction, "a" if choices else 3, choices=choices, explain="why")
    assert feedback.ok is None
    assert feedback.text.startswith(says)


def test_feedback_shows_as_its_text():
    feedback = Feedback("hello", True)
    assert repr(feedback) == str(feedback) == "hello"


QUIZ = Quiz(
    Question("Which method serves exactly one request?", answer="b",
             choices={"a": "serve_forever()", "b": "handle_request()"},
             why="handle_request() waits for one request and returns.",
             wrong={"a": "serve_forever() loops until shutdown()."}),
    Question("Which method stops serve_forever()?", answer=("shutdown", "server.shutdown"),
             why="shutdown() asks the loop to stop and waits for it."),
)


def test_quiz_all_right():
    feedback = QUIZ.check({1: "b", 2: "shutdown()"})
    assert (feedback.ok, feedback.score, feedback.out_of) == (True, 2, 2)
    assert feedback.text.splitlines()[-1] == "Score: 2 of 2"


def test_quiz_wrong_answer_gets_its_explanation():
    feedback = QUIZ.check({1: "a", 2: "server_close"})
    assert (feedback.ok, feedback.score) == (False, 0)
    lines = feedback.text.splitlines()
    assert lines[0] == ("1. not quite. serve_forever() loops until shutdown(). "
                        "handle_request() waits for one request and returns.")
    assert lines[1].startswith("2. not quite. shutdown() asks")


@pytest.mark.parametrize("given", ["shutdown", "Shutdown()", "self.shutdown()",
                                   " 'shutdown' ", "socketserver.shutdown", "server.shutdown"])
def test_short_answers_are_normalized(given):
    assert QUIZ.questions[1].accepts(given)


@pytest.mark.parametrize("given", ["shut", "server_close", 3, None, ["shutdown"]])
def test_short_answers_that_are_wrong(given):
    assert not QUIZ.questions[1].accepts(given)


def test_unanswered_items_are_listed_not_counted_wrong():
    feedback = QUIZ.check({1: "b", 2: None})
    assert feedback.ok is None and feedback.score == 1
    assert "2. not answered yet" in feedback.text
    assert feedback.text.splitlines()[-1] == "Score: 1 of 2 (1 not answered yet)"


def test_bad_answers_are_reported():
    assert "not one of the choices 'a', 'b'" in QUIZ.check({1: "z", 2: None}).text
    assert "There is no question 3 in this quiz." in QUIZ.check({3: "a"}).text
    assert QUIZ.check(["b", "shutdown"]).ok is None
    assert QUIZ.check(["b", "shutdown"]).text.startswith("Give the answers as a dict")


def test_quiz_shows_questions_and_how_to_answer():
    shown = repr(QUIZ)
    assert shown.startswith("1. Which method serves exactly one request?\n   (a) serve_forever()")
    assert shown.endswith("quiz.check({1: None, 2: None})")


def test_empty_quiz_is_a_mistake():
    with pytest.raises(ValueError):
        Quiz()
