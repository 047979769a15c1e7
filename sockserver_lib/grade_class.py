"""Grading a whole class: submissions in parallel, results kept as they come, a run resumed.

``python -m sockserver_lib.grade`` uses this for every run.  grade_class()
grades submissions from one shared queue with *jobs* threads, each waiting
for one worker process (sockserver_lib.grade grades each submission in a
process of its own, so threads are enough to keep every core busy).  Each
finished result is appended at once to a journal (one JSON line per
submission), so a crash or Ctrl-C loses nothing; with *resume*, a
submission whose file has not changed since the journal recorded it is
taken from the journal instead of being graded again.

choose() applies the submission rules first: a notebook whose metadata and
file name name different exercises is graded by its metadata, with a note;
of several files of one exercise in one student's folder (a subfolder of a
folder named on the command line), the newest is graded and the others are
reported, not graded.  Files directly in a folder named on the command line
are each a submission of their own (a flat download, one file per student).
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .grade_report import printable
from .grading import Result, TestResult
from .pools import usable_cpu_count

#: The journal's default file, in the current folder.
DEFAULT_JOURNAL = "grading-journal.jsonl"


# --------------------------------------------------------------------------
# Which files to grade


def choose(submissions: list, identify: Callable[[Path], tuple], roots: Iterable[Path] = ()
           ) -> list:
    """The submissions to grade, in order; notes added to the others and to mismatches.

    *identify(path)* returns (exercise from the metadata, exercise from the
    file name), either None.  *roots* are the folders named on the command
    line: a file directly in one is a student of its own.  A submission left
    out keeps result None and gets a note saying which file was graded instead.
    """
    roots = {Path(root).resolve() for root in roots}
    exercises: dict = {}  # id(submission) -> its exercise; each notebook is read once
    newest: dict = {}
    for submission in submissions:
        declared, named = identify(submission.path)
        if declared and named and declared != named:
            submission.notes.append(f"its metadata says {declared} but its name says {named}: "
                                    f"graded as {declared}, as its metadata says")
        exercise = exercises[id(submission)] = declared or named
        if exercise is None or submission.path.parent.resolve() in roots:
            continue  # graded on its own
        key = (submission.path.parent, exercise)
        kept = newest.get(key)
        if kept is None or _modified(submission.path) > _modified(kept.path):
            newest[key] = submission
    chosen = []
    for submission in submissions:
        exercise = exercises[id(submission)]
        kept = newest.get((submission.path.parent, exercise), submission)
        if kept is submission:
            chosen.append(submission)
        else:
            submission.notes.append(f"not graded: {printable(Path(kept.path.name))} is a newer "
                                    f"file of "
                                    f"{exercise} in the same folder, and only the newest is")
    return chosen


def _modified(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


# --------------------------------------------------------------------------
# The journal


class Journal:
    """Finished results, one JSON line per submission, appended as each one finishes.

    A record holds the file's path, size and modification time, so that a
    resumed run grades a file again if it has changed since.  The first line
    holds the settings the results were graded with (limits, extra tests): a
    run with other settings cannot resume from it.
    """

    def __init__(self, path: str | Path, settings: dict | None = None):
        self.path = Path(path)
        self.settings = settings or {}
        self._lock = threading.Lock()
        self._empty_first = False

    def start(self, resume: bool) -> dict:
        """Begin a run: the records so far if *resume* (by path); else {} and the journal is
        emptied when the first result comes (so a run that grades nothing keeps it).

        ValueError, saying what differs, if the journal was graded with other settings.
        """
        if not resume or not self.path.exists():
            self._empty_first = True
            return {}
        self._end_the_last_line()
        records, settings = {}, None
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                if "settings" in record:
                    settings = record["settings"]
                else:
                    records[record["path"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short when the last run was stopped
        if records and settings != self.settings:
            raise ValueError(f"{self.path} was graded with other settings ({settings}, now "
                             f"{self.settings}): run without --resume to grade everything again")
        return records

    def add(self, submission) -> None:
        """Append *submission*'s result (thread-safe; flushed to disk at once)."""
        line = json.dumps(_record(submission)) + "\n"
        with self._lock:
            fresh, self._empty_first = self._empty_first, False
            with open(self.path, "w" if fresh else "a", encoding="utf-8") as file:
                if fresh:
                    file.write(json.dumps({"settings": self.settings}) + "\n")
                file.write(line)
                file.flush()
                os.fsync(file.fileno())

    def _end_the_last_line(self) -> None:
        """End a line cut short by a stopped run, so the next record starts a line."""
        with open(self.path, "rb+") as file:
            if not file.seek(0, os.SEEK_END):
                return  # empty
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                file.write(b"\n")


def _stamp(path: Path) -> list:
    try:
        status = path.stat()
    except OSError:
        return [None, None]
    return [status.st_size, status.st_mtime_ns]


def _record(submission) -> dict:
    result = submission.result
    return {
        "path": str(submission.path), "stamp": _stamp(submission.path),
        "exercise": submission.exercise, "notes": submission.notes,
        "result": {"exercise": result.exercise, "note": result.note,
                   "tests": [vars(test) for test in result.tests]},
    }


def restore(submission, record: dict | None) -> bool:
    """Fill *submission* from its journal *record* if the file is unchanged; True if so."""
    if record is None or record.get("stamp") != _stamp(submission.path):
        return False
    result = record["result"]
    submission.exercise = record["exercise"]
    submission.notes = list(record["notes"])
    submission.result = Result(result["exercise"], [TestResult(**t) for t in result["tests"]],
                               result["note"])
    return True


# --------------------------------------------------------------------------
# The run


def default_jobs() -> int:
    """How many submissions to grade at once by default: one per usable core."""
    return usable_cpu_count()


def grade_class(submissions: Iterable, grade_one: Callable, jobs: int,
                on_done: Callable, stop_workers: Callable) -> None:
    """Grade *submissions* with *jobs* threads sharing one queue.

    *grade_one(submission)* grades one (it never raises); *on_done(submission)*
    is called, in the calling thread, as each one finishes.  On any
    exception in the calling thread (Ctrl-C), no new submission is started,
    *stop_workers()* stops the running ones, and the exception is raised
    once every thread has ended.  The ones that finished before the
    exception and were not yet passed to on_done still are (so their results
    are kept); the stopped ones are not.
    """
    waiting: queue.Queue = queue.Queue()
    for submission in submissions:
        waiting.put(submission)
    total = waiting.qsize()
    finished: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                submission = waiting.get_nowait()
            except queue.Empty:
                return
            try:
                grade_one(submission)
            finally:  # even if it raised: the caller counts on one result per submission
                # stop is set before any worker is stopped: a result that came back before
                # it was not cut short
                finished.put((submission, not stop.is_set()))

    threads = [threading.Thread(target=work, name=f"grade-{n}", daemon=True)
               for n in range(max(1, min(jobs, total)))]
    for thread in threads:
        thread.start()
    try:
        for _ in range(total):
            on_done(finished.get()[0])
    except BaseException:
        stop.set()
        stop_workers()
        for thread in threads:
            thread.join()
        _pass_on_the_finished(finished, on_done)
        raise
    finally:
        for thread in threads:
            thread.join()


def _pass_on_the_finished(finished: queue.Queue, on_done: Callable) -> None:
    """Give on_done the results that came back whole before the run was stopped."""
    while not finished.empty():
        submission, whole = finished.get_nowait()
        if whole:
            on_done(submission)
