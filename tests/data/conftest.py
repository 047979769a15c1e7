"""The notebooks here are sample submissions for the batch grader's tests
(tests/test_grading.py), not notebooks to run: some hang, crash or are not
valid on purpose.  Keep nbval from collecting them."""

collect_ignore_glob = ["*.ipynb"]
