"""First-use installation of the Python packages the library needs inside Slicer.

torch comes from the PyTorch extension (``PyTorchUtils``), which picks the build that fits
the GPU driver; the rest from ``requirements.txt`` with ``slicer.util.pip_install``. Only
missing packages are installed: Slicer's own packages (SimpleITK, vtk, numpy...) are never
reinstalled, since replacing them can break the application.
"""
import importlib.metadata
import re
from pathlib import Path
from typing import List, Optional

NEVER_INSTALL = {"simpleitk", "vtk", "torch"}  # Slicer's own, or installed by PyTorchUtils


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def requirement_name(line: str) -> Optional[str]:
    """Distribution name of a requirements line (``monai==1.6.1`` -> ``monai``); None for comments."""
    line = line.split("#", 1)[0].strip()
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return match.group(0) if match else None


def missing_requirements(requirementsFile) -> List[str]:
    """The lines of ``requirementsFile`` whose package is not installed at all (any version)."""
    missing = []
    for line in Path(requirementsFile).read_text().splitlines():
        name = requirement_name(line)
        if not name or name.lower() in NEVER_INSTALL:
            continue
        if not _installed(name):
            missing.append(line.split("#", 1)[0].strip())
    return missing


def find_requirements(moduleDir) -> Path:
    """requirements.txt beside the module (built extension) or at the repository root (source tree)."""
    for folder in (Path(moduleDir), Path(moduleDir).parent):
        if (folder / "requirements.txt").is_file():
            return folder / "requirements.txt"
    raise FileNotFoundError(f"{moduleDir}: requirements.txt not found beside the module or above it")


def install_dependencies(requirementsFile, confirm) -> bool:
    """Install torch and missing requirements after ``confirm(text) -> bool`` agrees; Slicer only."""
    import slicer
    needTorch = not _installed("torch")
    missing = missing_requirements(requirementsFile)
    if not needTorch and not missing:
        return True
    text = ("InnerEarSeg needs these Python packages, which will be downloaded and installed now "
            "(this can take several minutes):\n" + "\n".join((["torch"] if needTorch else []) + missing))
    if not confirm(text):
        return False
    if needTorch:
        try:
            import PyTorchUtils
        except ImportError as e:
            raise RuntimeError("the PyTorch extension is needed to install torch: install 'PyTorch' from the "
                               "Extensions Manager and restart Slicer") from e
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            raise RuntimeError("PyTorch could not be installed; see the PyTorch Utils module")
    if missing:
        slicer.util.pip_install(missing)
    return True
