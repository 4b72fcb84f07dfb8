"""A wheel (non-editable install) carries the bundled model and sample, and finds them."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from InnerEarSegLib.core.resources import ROOTS, bundled

ROOT = Path(__file__).resolve().parents[1]


def test_source_tree_finds_the_top_level_resources():
    assert bundled("Models", "InnerEarSeg.json") == ROOT / "Resources" / "Models" / "InnerEarSeg.json"
    assert bundled("Models", "no-such-model.json") == ROOTS[0] / "Models" / "no-such-model.json"


def test_wheel_holds_and_finds_the_bundled_model(tmp_path):
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "output", "build",
                                                                 "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "wheel")], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "wheel").glob("*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    names = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    for name in ("Models/InnerEarSeg.json", "Models/InnerEarSeg.pt", "Samples/sample_t2.nrrd"):
        assert f"InnerEarSegLib/Resources/{name}" in names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "InnerEarSegLib").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules - names == set(), "library modules missing from the wheel (pyproject.toml's packages)"
    code = ("import InnerEarSegLib, InnerEarSegLib.cli as cli; "
            "from InnerEarSegLib.model.model_card import DEFAULT_MODEL, load_model; m = load_model(); "
            "print(InnerEarSegLib.__file__); print(DEFAULT_MODEL); print(cli.SAMPLE)")
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path,
                         env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in out), out
