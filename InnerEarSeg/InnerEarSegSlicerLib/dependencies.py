"""First-use installation of the Python packages the library needs inside Slicer.

torch comes from the PyTorch extension (``PyTorchUtils``), which picks the build that fits
the GPU driver; the rest from ``requirements.txt`` with pip, run as a separate process
(``pip_command``) that the panel watches like a segmentation, so Slicer stays responsive and
shows pip's progress. Only missing packages are installed, and pip runs with a constraints
file pinning every package already installed (``write_constraints``): a dependency of a new
package can never upgrade or downgrade Slicer's own numpy, SimpleITK, vtk... (pip refuses
instead, with its reason), since replacing them can break the application.
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


def write_constraints(path) -> Path:
    """A pip constraints file pinning every installed distribution to its installed version."""
    pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                   if d.metadata["Name"]}, key=str.lower)
    path = Path(path)
    path.write_text("\n".join(pins) + "\n")
    return path


def pip_command(python: str, requirements: List[str], constraintsFile) -> List[str]:
    """The command installing ``requirements`` without changing any package already installed."""
    return [python, "-m", "pip", "install", "--disable-pip-version-check", "-c", str(constraintsFile), *requirements]


def install_torch_if_needed(requirementsFile, confirm) -> Optional[List[str]]:
    """After ``confirm(text) -> bool`` agrees: install torch (PyTorch extension, blocking) and return
    the requirements still to install with ``pip_command``; None when the user declined. Slicer only."""
    needTorch = not _installed("torch")
    missing = missing_requirements(requirementsFile)
    if not needTorch and not missing:
        return []
    text = ("InnerEarSeg needs these Python packages, which will be downloaded and installed now "
            "(this can take several minutes):\n" + "\n".join((["torch"] if needTorch else []) + missing))
    if not confirm(text):
        return None
    if needTorch:
        try:
            import PyTorchUtils
        except ImportError as e:
            raise RuntimeError("the PyTorch extension is needed to install torch: install 'PyTorch' from the "
                               "Extensions Manager and restart Slicer") from e
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            raise RuntimeError("PyTorch could not be installed; see the PyTorch Utils module")
    return missing
