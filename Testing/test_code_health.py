"""Every function in the library stays short and simple enough to read at a glance.

A function or method over ``MAX_LINES`` lines (its ``def`` line to its last line,
decorators excluded) or with a cyclomatic complexity over ``MAX_COMPLEXITY`` (radon's
count: one plus each branch, loop, boolean operator, ``except`` and comprehension; a
closure counts on its own, not in the function around it) fails this test, which names
every offender with its numbers so the fix can start from the list.

The flow of one ``segment`` call reads top-down in one file, ``flow.py``, of under
``MAX_FLOW_LINES`` lines, and none of the modules it calls imports it or ``pipeline`` back.

Data flows one way between the library's parts (``MAY_IMPORT``): ``core`` <- ``model`` <-
``inference`` <- ``outputs``, with ``training``, ``evaluation`` and ``stacks`` on top and ``synth``
beside ``model``; no part imports the top-level modules (``flow``, ``pipeline``, ``cohort``, ``cli``)
except ``parameters`` (the options, which import nothing of the library) and the version, and
nothing in the library imports slicer or qt.
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

# Which of the library's parts each part may import (besides itself, ``parameters`` and the version).
MAY_IMPORT = {
    "core": set(),
    "model": {"core"},
    "inference": {"core", "model"},
    "outputs": {"core", "model", "inference"},
    "synth": {"core"},
    "training": {"core", "model", "inference", "outputs", "synth"},
    "evaluation": {"core", "model", "inference", "outputs"},
    "stacks": {"core", "model", "inference", "outputs"},
}
SHARED = {"InnerEarSegLib", "InnerEarSegLib.parameters"}  # the package itself (``__version__``) and the options
GUI = ("slicer", "qt", "ctk", "PythonQt", "vtkSlicer", "vtkMRML")  # never imported by the library


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


def module_name(path, root=ROOT):
    """``InnerEarSegLib/inference/infer.py`` -> ``InnerEarSegLib.inference.infer`` (a package: its folder's name)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_imports(path, root=ROOT):
    """The library modules (and packages) ``path`` imports, anywhere in it, as absolute dotted names:
    ``from ..core import grid`` gives ``InnerEarSegLib.core.grid``."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names
                      if (root / f"{module}.{a.name}".replace(".", "/")).with_suffix(".py").is_file()}
    return {name for name in found if name.split(".")[0] == "InnerEarSegLib" or is_gui(name)}


def is_gui(name):
    top = name.split(".")[0]
    return top in GUI or top.startswith(GUI[-2:])


def module_path(name):
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def test_the_flow_of_one_segment_call_reads_in_one_short_file():
    from InnerEarSegLib import flow, pipeline
    lines = len(FLOW.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_FLOW_LINES, f"{FLOW.name} has {lines} lines; move helpers to the modules of their concern"
    assert pipeline.segment is flow.segment
    called = {name.split(".")[-1]: name for name in library_imports(FLOW)}
    assert {"read", "preprocess", "confirm", "postprocess", "measure"} <= set(called)
    calling_back = {name: library_imports(module_path(name)) & {"InnerEarSegLib.flow", "InnerEarSegLib.pipeline"}
                    for name in called.values() if module_path(name).is_file()}
    assert {name: up for name, up in calling_back.items() if up} == {}


def wrong_way_imports(library=LIBRARY):
    """[(module, what it imports that its part may not)] over the whole library."""
    parts = {p.name for p in library.iterdir() if (p / "__init__.py").is_file()}
    assert parts - set(MAY_IMPORT) == set(), "a new part of the library needs its place in MAY_IMPORT"
    found = []
    for path in sorted(p for p in library.rglob("*.py") if "__pycache__" not in p.parts):
        rel = path.relative_to(library).parts
        part = rel[0] if len(rel) > 1 else None
        for name in sorted(library_imports(path, library.parent)):
            if is_gui(name):
                found.append((module_name(path, library.parent), name))
            elif part is None:  # a top-level module: only parameters is held to importing nothing
                if path.name == "parameters.py":
                    found.append((module_name(path, library.parent), name))
            elif name not in SHARED:
                other = name.split(".")[1]
                if other != part and other not in MAY_IMPORT[part]:
                    found.append((module_name(path, library.parent), name))
    return found


def test_data_flows_one_way_between_the_parts_of_the_library():
    assert wrong_way_imports() == []


def test_the_import_check_resolves_relative_imports_and_finds_wrong_ways(tmp_path):
    library = tmp_path / "InnerEarSegLib"
    for part in ("core", "outputs"):
        (library / part).mkdir(parents=True)
        (library / part / "__init__.py").write_text("")
    (library / "outputs" / "write.py").write_text("from ..core import labels\n")
    probe = library / "core" / "grid.py"
    probe.write_text("from .. import __version__\nfrom ..outputs import write\nfrom .labels import X\n"
                     "def f():\n    import slicer\n")
    assert library_imports(probe, tmp_path) == {"InnerEarSegLib", "InnerEarSegLib.outputs",
                                                "InnerEarSegLib.outputs.write", "InnerEarSegLib.core.labels", "slicer"}
    assert wrong_way_imports(library) == [("InnerEarSegLib.core.grid", "InnerEarSegLib.outputs"),
                                          ("InnerEarSegLib.core.grid", "InnerEarSegLib.outputs.write"),
                                          ("InnerEarSegLib.core.grid", "slicer")]


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
