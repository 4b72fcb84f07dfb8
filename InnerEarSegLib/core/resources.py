"""Where the bundled files (model, sample scan) are, whichever way the library was installed.

Source tree and Slicer extension: ``Resources/`` beside the ``InnerEarSegLib`` folder (the
extension's CMake copies it there). Wheel (``pip install .``): ``InnerEarSegLib/Resources/``,
which pyproject.toml maps onto the same top-level folder, so there is one copy in the repository.
"""
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # the InnerEarSegLib folder
ROOTS = (HERE.parent / "Resources", HERE / "Resources")


def bundled(*parts: str) -> Path:
    """The first existing ``Resources/<parts>``; the source-tree path when none exists (for errors)."""
    for root in ROOTS:
        if root.joinpath(*parts).exists():
            return root.joinpath(*parts)
    return ROOTS[0].joinpath(*parts)


def default_model() -> Path:
    """The bundled model card (torch-free, so the Slicer panel can show it before torch is installed)."""
    return bundled("Models", "InnerEarSeg.json")
