"""Every function in the library stays short and simple enough to read at a glance.

A function or method over ``MAX_LINES`` lines (its ``def`` line to its last line,
decorators excluded) or with a cyclomatic complexity over ``MAX_COMPLEXITY`` (radon's
count: one plus each branch, loop, boolean operator, ``except`` and comprehension; a
closure counts on its own, not in the function around it) fails this test, which names
every offender with its numbers so the fix can start from the list.

The flow of one ``segment`` call reads top-down in one file, ``flow.py``, of under
``MAX_FLOW_LINES`` lines, and none of the modules it calls imports it or ``pipeline`` back.
"""
import ast
import textwrap
from pathlib import Path
from typing import NamedTuple

from radon.complexity import cc_visit_ast

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "InnerEarSegLib"
MAX_LINES = 60
MAX_COMPLEXITY = 15
FLOW = LIBRARY / "flow.py"
MAX_FLOW_LINES = 100


class Offender(NamedTuple):
    path: str
    line: int
    name: str  # qualified: Class.method, function.closure
    lines: int
    complexity: int

    def __str__(self):
        return f"{self.path}:{self.line} {self.name}: {self.lines} lines, complexity {self.complexity}"


def function_nodes(tree):
    """Every function and method in ``tree`` with its qualified name, nested ones included."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def complexity(node):
    """Radon's cyclomatic complexity of one function node."""
    blocks = cc_visit_ast(ast.Module(body=[node], type_ignores=[]))
    return next(b.complexity for b in blocks if b.lineno == node.lineno and b.name == node.name)


def offenders(source, path):
    """Each function in ``source`` over ``MAX_LINES`` lines or ``MAX_COMPLEXITY``."""
    found = []
    for name, node in function_nodes(ast.parse(source)):
        function = Offender(path, node.lineno, name, node.end_lineno - node.lineno + 1, complexity(node))
        if function.lines > MAX_LINES or function.complexity > MAX_COMPLEXITY:
            found.append(function)
    return found


def library_offenders():
    paths = sorted(p for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(paths) > 20  # the walk found the library
    found = []
    for path in paths:
        found += offenders(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    return found


def test_library_functions_are_short_and_simple():
    found = [str(f) for f in library_offenders()]
    assert found == [], (f"{len(found)} functions over {MAX_LINES} lines or complexity {MAX_COMPLEXITY}; "
                         "split them:\n" + "\n".join(found))


def library_imports(path):
    """The library modules ``path`` imports (relative imports, at any depth), by module name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
    return found


def test_the_flow_of_one_segment_call_reads_in_one_short_file():
    from InnerEarSegLib import flow, pipeline
    lines = len(FLOW.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_FLOW_LINES, f"{FLOW.name} has {lines} lines; move helpers to the modules of their concern"
    assert pipeline.segment is flow.segment
    called = library_imports(FLOW)
    assert {"read", "preprocess", "confirm", "postprocess", "measure"} <= called
    calling_back = {name: library_imports(LIBRARY / f"{name}.py") & {"flow", "pipeline"}
                    for name in called if (LIBRARY / f"{name}.py").is_file()}
    assert {name: up for name, up in calling_back.items() if up} == {}


def branches(indent, count=MAX_COMPLEXITY):
    """``count`` if-branches; the default, with the function's own 1, is one over the limit."""
    return textwrap.indent("".join(f"if x == {i}:\n    return {i}\n" for i in range(count)), indent)


def test_the_check_reports_long_complex_and_nested_functions():
    long_body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    source = ("def short(x):\n    return x\n\n"
              f"def too_long():\n{long_body}    return 0\n\n"
              f"def too_branchy(x):\n{branches('    ')}    return -1\n\n"
              "class Holder:\n"
              "    def method(self, x):\n"
              f"        def closure(x):\n{branches('            ')}            return -1\n"
              "        return closure(x)\n")
    lines = source.splitlines()
    line_of = {name: next(i + 1 for i, text in enumerate(lines) if f"def {name}(" in text)
               for name in ("too_long", "too_branchy", "closure")}
    found = offenders(source, "example.py")
    assert [str(f) for f in found] == [
        f"example.py:{line_of['too_long']} too_long: {MAX_LINES + 2} lines, complexity 1",
        f"example.py:{line_of['too_branchy']} too_branchy: {2 * MAX_COMPLEXITY + 2} lines, "
        f"complexity {MAX_COMPLEXITY + 1}",
        f"example.py:{line_of['closure']} Holder.method.closure: {2 * MAX_COMPLEXITY + 2} lines, "
        f"complexity {MAX_COMPLEXITY + 1}"]
    # exactly at the limits passes: 60 lines (def and 59 body lines), complexity 15
    assert offenders("def f():\n" + long_body.split("\n", 1)[1], "example.py") == []
    assert offenders("def f(x):\n" + branches("    ", MAX_COMPLEXITY - 1), "example.py") == []
