"""The panel's code under hostile conditions (issue 24, S5 and S6), with the stubbed GUI of
``test_ui``: installing runs as a watched process, a mistyped model path is an error."""
import sys
import time

import pytest

from test_ui import load_module_with_stubbed_gui, stubbed_option_widgets

slicer = pytest.importorskip("slicer")


@pytest.fixture
def panel(monkeypatch):
    import test_slicer_logic as T
    scene = slicer.vtkMRMLScene()
    module, ui, errors = load_module_with_stubbed_gui(monkeypatch, scene)
    widget = module.InnerEarSegWidget(optionWidgetClasses=stubbed_option_widgets())
    widget.setup()
    volume, _ = T.add_volume(scene, T.GEOMETRIES["axial"], [(T.center_ras(T.GEOMETRIES["axial"]), 100)])
    widget._parameterNode.inputVolume = volume
    yield module, widget, ui, errors
    widget.cleanup()


def test_a_mistyped_model_path_stops_apply_with_an_error(panel, tmp_path):
    module, widget, ui, errors = panel
    slicer.app.testingEnabled = lambda: False  # so that tryWithErrorDisplay shows the error
    ui.modelPathLineEdit.currentPath = str(tmp_path / "modle.json")
    widget.onApplyButton()
    assert widget.job is None and widget.jobFolder is None
    assert any("modle.json" in e for e in errors), errors


def test_installing_runs_as_a_watched_process_then_the_segmentation_starts(panel, monkeypatch, tmp_path):
    module, widget, ui, errors = panel
    from InnerEarSegSlicerLib import dependencies
    monkeypatch.setattr(dependencies, "find_requirements", lambda folder: folder)
    monkeypatch.setattr(dependencies, "install_torch_if_needed", lambda requirements, confirm: ["monai"])
    pip = [sys.executable, "-c", "import time; print('Collecting monai', flush=True); time.sleep(0.5)"]
    monkeypatch.setattr(dependencies, "pip_command", lambda python, missing, constraints: pip + [str(constraints)])
    widget.onApplyButton()
    assert widget.installing and widget.running() and ui.applyButton.text == "Cancel"  # the GUI was not blocked
    assert (widget.job.command[-1]).endswith("constraints.txt")
    deadline = time.time() + 30
    while widget.job.poll() == "running" and time.time() < deadline:
        time.sleep(0.05)
    widget.onPoll()  # the timer's slot: pip is done, the segmentation starts
    assert not widget.installing and widget.running() and "InnerEarSegLib.cli segment" in " ".join(widget.job.command)
    widget.onApplyButton()  # Cancel
    assert widget.job.state == "cancelled" and widget.jobFolder is None and errors == []
