"""The chat capstone (notebook 15, exercise 15): its tests grade what they claim.

The chats that notebook 15 builds, the threaded one (standard library) and
the one on the kit's event loop, pass every test of exercise 15: the
notebook and the exercise speak the same protocol.  And each test can fail:
the solution with one mistake put back (a naive sendall() in the speaker's
thread, an unbounded outbox, a line told to every room, a half line said,
a sender that hears itself, a client that never leaves its room) fails the
test written for that mistake.
"""

from __future__ import annotations

import ast

import nbformat
import pytest
from checkout import REPO

from sockserver_lib.grading import EXERCISES, run_isolated
from sockserver_lib.grading.engine import TEST_TIME_LIMIT
from sockserver_lib.grading.model import FAILED, PASSED

TESTS = {test.name: test for test in EXERCISES["ex15"].tests}


def definitions(path, skip_tags=("try-it",)) -> dict:
    """Run the imports, classes, functions and assignments of a notebook's code cells
    (not its demonstrations); return the namespace."""
    namespace: dict = {"__name__": "__chat__"}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or set(skip_tags) & set(cell.metadata.get("tags", [])):
            continue
        tree = ast.parse(cell.source)
        tree.body = [node for node in tree.body if _is_definition(node)]
        exec(compile(tree, str(path), "exec"), namespace)
    return namespace


def _is_definition(node: ast.stmt) -> bool:
    """An import, a class, a function, or a CONSTANT = ... assignment."""
    if isinstance(node, ast.Assign):
        return all(isinstance(target, ast.Name) and target.id.isupper()
                   for target in node.targets)
    return isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef))


def grade(test_name: str, server: type, handler: type) -> tuple[str, str]:
    students = {"ChatServer": server, "ChatHandler": handler}
    return run_isolated(lambda: TESTS[test_name].run(students), TEST_TIME_LIMIT)


NOTEBOOK = definitions(REPO / "notebooks" / "15_chat_server.ipynb")


@pytest.mark.parametrize("server, handler", [
    ("ChatServer", "ChatHandler"), ("SelectorChatServer", "SelectorChatHandler")])
@pytest.mark.parametrize("test_name", sorted(TESTS))
def test_the_notebooks_chats_pass_the_exercises_tests(test_name, server, handler):
    status, message = grade(test_name, NOTEBOOK[server], NOTEBOOK[handler])
    assert status == PASSED, message


SOLUTION = (REPO / "solutions" / "ex15_chat_server.ipynb")

NAIVE_SEND = '''
def send(self, text):
    self.sock.sendall(text.encode() + b"\\n")
'''
UNBOUNDED = '''
def __init__(self, sock, name, max_queued):
    Original.__init__(self, sock, name, 0)  # a Queue(0) has no bound
'''
EVERY_ROOM = '''
def tell(self, room, text, but=None):
    for members in self.rooms.values():
        for client in members:
            if client is not but:
                client.send(text)
'''
SENDER_HEARS_ITSELF = '''
def say(self, client, text):
    with self.lock:
        self.tell(client.room, f"<{client.name}> {text}")
'''
HALF_LINE_SAID = '''
def handle(self):
    client = Client(self.connection, f"guest{next(self.server.guests)}", self.server.max_queued)
    try:
        client.send(f"* hello {client.name}")
        self.server.join(client, "lobby")
        for raw in self.rfile:
            if not self.on_line(client, raw.decode(errors="replace").rstrip("\\r\\n")):
                break
    except OSError:
        pass
    finally:
        self.server.leave(client)
        client.close()
'''
NEVER_LEAVES = '''
def handle(self):
    client = Client(self.connection, f"guest{next(self.server.guests)}", self.server.max_queued)
    client.send(f"* hello {client.name}")
    self.server.join(client, "lobby")
    for raw in self.rfile:
        if not raw.endswith(b"\\n") or not self.on_line(client, raw.decode().rstrip()):
            break
    client.close()
'''


def with_mistake(class_name: str, source: str) -> dict:
    """The solution's namespace, *class_name* replaced by a subclass with *source*'s methods."""
    namespace = definitions(SOLUTION)
    cls = namespace["Original"] = namespace[class_name]
    exec(compile(source, "mistake", "exec"), namespace)
    mistaken = type(class_name, (cls,), {
        name: namespace[name] for name in ("send", "__init__", "tell", "say", "handle")
        if name in namespace and f"def {name}(" in source})
    namespace[class_name] = mistaken
    return namespace


@pytest.mark.parametrize("class_name, source, failing", [
    ("Client", NAIVE_SEND, "nonreader_does_not_stall_the_room"),
    ("Client", UNBOUNDED, "nonreader_is_dropped"),
    ("ChatServer", EVERY_ROOM, "messages_reach_the_room_only"),
    ("ChatServer", SENDER_HEARS_ITSELF, "messages_reach_the_room_only"),
    ("ChatHandler", HALF_LINE_SAID, "half_line_then_close"),
    ("ChatHandler", NEVER_LEAVES, "every_way_out_leaves_the_room"),
], ids=["naive-send", "unbounded", "every-room", "hears-itself", "half-line", "never-leaves"])
def test_each_mistake_fails_its_test(class_name, source, failing):
    namespace = with_mistake(class_name, source)
    status, message = grade(failing, namespace["ChatServer"], namespace["ChatHandler"])
    assert status == FAILED, f"{failing} gave {status} with the mistake: {message}"
    assert "see the hints" in message  # the symptom, and where to look; not the fix
    solution = definitions(SOLUTION)
    assert grade(failing, solution["ChatServer"], solution["ChatHandler"])[0] == PASSED
