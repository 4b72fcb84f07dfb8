"""Every script of ``release/`` and ``experiments/`` builds its command line: ``--help`` exits 0.

Why: the scripts take the product's options (``SegmentParameters.add_arguments``) beside their
own, so a new product option can clash with a script's flag (``--preview`` did) and nothing else
would notice before the next model release."""
import sys
from pathlib import Path

import pytest
from conftest import SCRIPT_FOLDERS, load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for d in SCRIPT_FOLDERS for p in (ROOT / d).glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_exits_cleanly(name, capsys):
    for folder in SCRIPT_FOLDERS:   # experiments import release's modules (PYTHONPATH=release)
        if str(ROOT / folder) not in sys.path:
            sys.path.append(str(ROOT / folder))
    with pytest.raises(SystemExit) as stop:
        load_script(name).main(["--help"])
    assert stop.value.code == 0
    assert "usage" in capsys.readouterr().out
