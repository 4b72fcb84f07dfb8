"""The extension's CMake files list every file the built extension needs.

A file that is not listed is silently missing from the installed extension (and only
fails inside Slicer), so the folders are globbed here: a new library module, module
script or resource without a CMake entry fails this test.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ROOT / "CMakeLists.txt"
MODULE = ROOT / "InnerEarSeg" / "CMakeLists.txt"


def cmake_sets(path):
    """{variable: [values]} of the ``set(...)`` calls, with ${MODULE_NAME} expanded."""
    text = re.sub(r"#[^\n]*", "", path.read_text())
    text = text.replace("${MODULE_NAME}", "InnerEarSeg")
    sets = {}
    for name, body in re.findall(r"\bset\(\s*(\w+)\s+((?:\"[^\"]*\"|[^)])*)\)", text):
        sets[name] = re.findall(r"\"[^\"]*\"|\S+", body)
    return sets


def files_under(folder, suffix=None):
    return {str(p.relative_to(folder.parent if folder.name == "InnerEarSegLib" else folder)).replace("\\", "/")
            for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
            and (suffix is None or p.suffix == suffix)}


@pytest.fixture(scope="module")
def top():
    return cmake_sets(TOP)


@pytest.fixture(scope="module")
def module():
    return cmake_sets(MODULE)


def test_extension_metadata(top):
    text = TOP.read_text()
    assert top["EXTENSION_CATEGORY"] == ['"Segmentation"']
    assert top["EXTENSION_DEPENDS"] == ['"PyTorch"']
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert top.get(key) and top[key][0].strip('"'), key
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(InnerEarSeg)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in text, line
    # the icon and screenshot the metadata points to are in the repository at those paths
    for key, local in (("EXTENSION_ICONURL", "InnerEarSeg/Resources/Icons/InnerEarSeg.png"),
                       ("EXTENSION_SCREENSHOTURLS", "docs/slicer_panel.png")):
        assert top[key][0].strip('"').endswith("/" + local) and (ROOT / local).is_file()


def test_every_library_file_is_built(top):
    listed = set(top["LIBRARY_PYTHON_SCRIPTS"])
    on_disk = files_under(ROOT / "InnerEarSegLib", ".py")
    assert "InnerEarSegLib/__init__.py" in on_disk
    assert on_disk - listed == set(), "library files missing from CMakeLists.txt"
    assert listed - on_disk == set(), "CMakeLists.txt lists library files that do not exist"


def test_bundled_resources_and_requirements_are_built(top):
    listed = set(top["LIBRARY_RESOURCES"])
    on_disk = {"Resources/" + f for f in files_under(ROOT / "Resources")}
    assert on_disk - listed == set(), "Resources/ files missing from CMakeLists.txt"
    assert "requirements.txt" in listed
    for path in listed:
        assert (ROOT / path).is_file(), f"CMakeLists.txt lists {path}, which does not exist"


def test_every_module_script_and_resource_is_built(module):
    folder = ROOT / "InnerEarSeg"
    scripts = set(module["MODULE_PYTHON_SCRIPTS"])
    resources = set(module["MODULE_PYTHON_RESOURCES"])
    on_disk = files_under(folder)
    python = {f for f in on_disk if f.endswith(".py") and not f.startswith("Testing/")}
    assert python - scripts == set() and scripts - python == set()
    assert {f for f in on_disk if f.startswith("Resources/")} == resources
    assert "slicerMacroBuildScriptedModule(" in MODULE.read_text()
    # only the module itself at the top of the folder: Slicer loads every top-level .py as a module
    assert [s for s in scripts if "/" not in s] == ["InnerEarSeg.py"]
