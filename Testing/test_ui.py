"""The module panel (.ui) loads with plain Qt, matches the module code, and gives the README
screenshot; the option widgets and parameter-node fields are made from the one declaration
(``SegmentParameters``); the widget's code runs Apply, Cancel and loading with stubbed GUI classes.

Slicer's own widget classes are not available outside Slicer, so each is replaced by the Qt
class it behaves like (a collapsible button by a group box, a node selector by a combo box...)
before loading; the layout, names and dynamic properties stay as Slicer would load them.
"""
import ast
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")
from PySide6.QtCore import QBuffer, QByteArray, QIODevice  # noqa: E402
from PySide6.QtGui import QStandardItemModel  # noqa: E402
from PySide6.QtUiTools import QUiLoader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "InnerEarSeg"))
from InnerEarSegLib.parameters import SegmentParameters  # noqa: E402
from InnerEarSegSlicerLib import panel as P  # noqa: E402

UI = ROOT / "InnerEarSeg" / "Resources" / "UI" / "InnerEarSeg.ui"
MODULE = ROOT / "InnerEarSeg" / "InnerEarSeg.py"
SCREENSHOT = ROOT / "docs" / "slicer_panel.png"
STAND_INS = {"qMRMLWidget": "QWidget", "ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox",
             "ctkSliderWidget": "QDoubleSpinBox", "ctkPathLineEdit": "QLineEdit", "qMRMLTableView": "QTableView"}
# the option widgets as plain Qt makes them (Slicer's slider: a spin box with the same setters)
OPTION_WIDGETS = {"choice": QtWidgets.QComboBox, "range": QtWidgets.QDoubleSpinBox, "bool": QtWidgets.QCheckBox}


def plain_qt_ui(path) -> bytes:
    """The .ui with Slicer/CTK classes replaced by Qt ones (unknown ones by their <extends> base)."""
    root = ET.parse(path).getroot()
    extends = {c.findtext("class"): c.findtext("extends") for c in root.iter("customwidget")}
    for w in root.iter("widget"):
        cls = w.get("class")
        if cls in STAND_INS or cls in extends:
            w.set("class", STAND_INS.get(cls) or extends[cls])
            if cls == "ctkCollapsibleButton":  # its "text" is a group box's "title"
                for p in w.findall("property"):
                    if p.get("name") == "text":
                        p.set("name", "title")
    for tag in ("customwidgets", "connections"):  # Slicer-only signals and headers
        for element in root.findall(tag):
            root.remove(element)
    return ET.tostring(root, encoding="utf-8")


@pytest.fixture(scope="module")
def panel():
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    data = QByteArray(plain_qt_ui(UI))
    buffer = QBuffer(data)
    buffer.open(QIODevice.ReadOnly)
    widget = QUiLoader().load(buffer)
    assert widget is not None, "the .ui did not load"
    P.addOptionWidgets(widget.findChild(QtWidgets.QGroupBox, "optionsCollapsibleButton").layout(), OPTION_WIDGETS)
    yield widget
    widget.deleteLater()
    app.processEvents()


def names_in_ui():
    return {w.get("name") for w in ET.parse(UI).getroot().iter("widget")}


def parameter_names_in_ui():
    root = ET.parse(UI).getroot()
    return {w.get("name"): w.find("property[@name='SlicerParameterName']/string").text
            for w in root.iter("widget") if w.find("property[@name='SlicerParameterName']") is not None}


def parameter_node_fields():
    """(name -> annotation source) of the panel's own fields in the module's parameter node class."""
    tree = ast.parse(MODULE.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "InnerEarSegParameterNode")
    return {s.target.id: ast.unparse(s.annotation) for s in cls.body if isinstance(s, ast.AnnAssign)}


def test_every_widget_the_module_uses_exists(panel):
    used = set(re.findall(r"\bui\.([A-Za-z_]\w*)", MODULE.read_text()))
    assert used, "the module uses no widget?"
    assert used - names_in_ui() == set()
    for name in used:
        assert panel.findChild(QtWidgets.QWidget, name) is not None, name


def test_parameter_bindings_match_the_parameter_node(panel):
    fields = parameter_node_fields()
    bound = parameter_names_in_ui()
    options = {o.name for o in SegmentParameters.options()}
    assert set(bound.values()) <= set(fields)
    assert set(fields) - set(bound.values()) == {"statistics", "measures"}  # set by code, shown in table views
    assert not (set(fields) | set(bound.values())) & options  # the options are not written here again
    for widget, field in bound.items():  # the dynamic property survives loading: Slicer binds by it
        assert panel.findChild(QtWidgets.QWidget, widget).property("SlicerParameterName") == field


class Recorded:
    """Stand-in for Slicer's Choice and WithinRange: keeps its arguments."""

    def __init__(self, *args):
        self.args = args


def test_options_come_from_the_declaration(panel):
    """One widget and one parameter-node field per option, with its name, default, choices or range, help."""
    node = P.withOptions(type("Fields", (), {"__annotations__": {"inputVolume": object}}), Recorded, Recorded)
    offered = [o for o in SegmentParameters.options() if o.panel]
    assert list(node.__annotations__) == ["inputVolume"] + [o.name for o in offered] and len(offered) > 1
    assert [o.name for o in SegmentParameters.options() if not o.panel] == ["preview"]  # no widget, no field
    assert panel.findChild(QtWidgets.QWidget, P.widgetName("preview")) is None
    for o in offered:
        widget = panel.findChild(QtWidgets.QWidget, P.widgetName(o.name))
        assert widget.property("SlicerParameterName") == o.name and o.help[1:] in widget.toolTip()
        assert getattr(node, o.name) == o.word(o.default)
        kind = node.__annotations__[o.name]
        if o.kind == "choice":
            assert [widget.itemText(i) for i in range(widget.count())] == list(o.choices) == kind.__metadata__[0].args[0]
            assert widget.currentText() == o.word(o.default)
        elif o.kind == "range":
            assert (widget.minimum(), widget.maximum(), widget.value()) == (*o.range, o.default) == \
                (*kind.__metadata__[0].args, o.default)
        else:
            assert kind is bool and widget.isChecked() is o.default and widget.text() == o.label
    values = {"cpu_bf16": "fp32", "modality": "CT", "smoothing": 0.2, "tta": False}
    filled = type("Node", (), {**{o.name: o.word(o.default) for o in offered}, **values})()
    assert P.segmentParameters(filled) == SegmentParameters(cpu_bf16=False, modality="ct", smoothing=0.2, tta=False)


def test_screenshot(panel):
    """Fill the panel as Slicer shows it before a run and save docs/slicer_panel.png for the README
    (no numbers: nothing was segmented here)."""
    panel.findChild(QtWidgets.QComboBox, "inputVolumeSelector").addItem("T2 CISS temporal bone")
    panel.findChild(QtWidgets.QComboBox, "outputSegmentationSelector").addItem("Create new segmentation")
    from InnerEarSegSlicerLib.logic import model_card_summary
    panel.findChild(QtWidgets.QLabel, "modelCardLabel").setText(model_card_summary())   # the bundled card
    panel.findChild(QtWidgets.QLabel, "statusLabel").setText("Select a volume and press Apply.")
    panel.findChild(QtWidgets.QPushButton, "applyButton").setEnabled(True)
    model = QStandardItemModel()
    model.setHorizontalHeaderLabels(["structure", "side", "voxels", "volume_mm3", "surface_area_mm2"])
    table = panel.findChild(QtWidgets.QTableView, "statisticsTableView")
    table.setModel(model)
    table.resizeColumnsToContents()
    measures = QStandardItemModel()
    measures.setHorizontalHeaderLabels(["measure", "unit", "left", "left status"])
    panel.findChild(QtWidgets.QTableView, "measuresTableView").setModel(measures)
    panel.resize(460, 760)
    panel.show()
    QtWidgets.QApplication.processEvents()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    tmp = SCREENSHOT.with_name(".tmp-" + SCREENSHOT.name)
    assert panel.grab().save(str(tmp), "PNG")
    tmp.replace(SCREENSHOT)
    from PySide6.QtGui import QImage
    image = QImage(str(SCREENSHOT))
    assert image.width() >= 400 and image.height() >= 600
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20  # drawn widgets, not a blank image


# --- the widget's code, run outside Slicer: Qt and Slicer's GUI classes are stubs, MRML is real

def load_module_with_stubbed_gui(monkeypatch, scene):
    """Import InnerEarSeg.py with stand-ins for qt, ScriptedLoadableModule and parameterNodeWrapper."""
    import importlib.util
    import sys
    import types
    import unittest
    from unittest.mock import MagicMock
    slicer = pytest.importorskip("slicer")
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "app", MagicMock(), raising=False)
    qt = MagicMock()

    class Timer:  # polled by hand in the test
        setInterval = start = stop = lambda self, *a: None
        connect = lambda self, signal, slot: None
    qt.QTimer = Timer
    monkeypatch.setitem(sys.modules, "qt", qt)

    class Logic:
        def __init__(self, parent=None):
            pass

        def getParameterNode(self):
            return scene.GetFirstNodeByName("P") or scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "P")

    class Widget:
        def __init__(self, parent=None):
            self.parent = parent or MagicMock()

        def setup(self):
            self.layout = MagicMock()

        def resourcePath(self, name):
            return str(ROOT / "InnerEarSeg" / "Resources" / name)
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    slm.ScriptedLoadableModule, slm.ScriptedLoadableModuleLogic = object, Logic
    slm.ScriptedLoadableModuleWidget, slm.ScriptedLoadableModuleTest = Widget, unittest.TestCase
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", slm)

    def parameterNodeWrapper(cls):  # plain attributes with the declared defaults
        defaults = {k: getattr(cls, k, None) for k in cls.__annotations__}

        class Wrapped:
            def __init__(self, node):
                self.__dict__.update(defaults, node=node)
            connectGui = lambda self, ui: "tag"
            disconnectGui = lambda self, tag: None
            AddObserver = lambda self, *a: self.node.AddObserver(*a)
            RemoveObserver = lambda self, *a: self.node.RemoveObserver(*a)
        return Wrapped
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper, pnw.Choice, pnw.WithinRange = parameterNodeWrapper, MagicMock(), MagicMock()
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", pnw)

    ui = types.SimpleNamespace(**{name: MagicMock() for name in names_in_ui()})
    ui.modelPathLineEdit.currentPath = ""
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: MagicMock())
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda widget: ui)
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", MagicMock())
    errors = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: errors.append(text))
    monkeypatch.syspath_prepend(str(ROOT / "InnerEarSeg"))
    spec = importlib.util.spec_from_file_location("InnerEarSeg_under_test", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, ui, errors


def stubbed_option_widgets():
    """Option widget classes for the stubbed GUI: every widget a MagicMock."""
    from unittest.mock import MagicMock
    return {"choice": MagicMock, "range": MagicMock, "bool": MagicMock}


def test_widget_apply_run_load_and_cancel(monkeypatch, tiny_model_path):
    slicer = pytest.importorskip("slicer")
    scene = slicer.vtkMRMLScene()
    module, ui, errors = load_module_with_stubbed_gui(monkeypatch, scene)
    widget = module.InnerEarSegWidget(optionWidgetClasses=stubbed_option_widgets())
    widget.setup()
    try:
        check_widget_flow(widget, ui, errors, scene, monkeypatch, tiny_model_path)
    finally:
        widget.cleanup()  # removes its scene observers


def check_widget_flow(widget, ui, errors, scene, monkeypatch, tiny_model_path):
    import time
    from InnerEarSegSlicerLib import dependencies
    import test_slicer_logic as T
    assert (ui.applyButton.text, ui.applyButton.enabled) == ("Apply", False)  # no volume yet

    volume, _ = T.add_volume(scene, T.GEOMETRIES["axial"], [(T.center_ras(T.GEOMETRIES["axial"]), 100)])
    widget._parameterNode.inputVolume = volume
    widget._parameterNode.device = "cpu"
    assert widget.segmentParameters().cpu_bf16 is None   # auto by default: bf16 where native
    widget._parameterNode.cpu_bf16 = "fp32"
    assert widget.segmentParameters().cpu_bf16 is False  # fp32 forced
    assert all(hasattr(ui, P.widgetName(o.name)) for o in P.OPTIONS)  # bound by connectGui
    ui.modelPathLineEdit.currentPath = str(tiny_model_path)
    widget.updateGUI()
    assert ui.applyButton.enabled
    monkeypatch.setattr(dependencies, "install_torch_if_needed", lambda requirements, confirm: [])
    monkeypatch.setattr(dependencies, "find_requirements", lambda folder: folder)
    before = scene.GetNumberOfNodes()

    widget.onApplyButton()  # Apply: the command line runs, the button becomes Cancel
    folder = widget.jobFolder
    assert widget.running() and ui.applyButton.text == "Cancel" and not ui.inputsCollapsibleButton.enabled
    # the command line gets the flags of the panel's options (its own surfaces off: Slicer builds them; no
    # preview: the panel never shows it)
    expected = SegmentParameters(device="cpu", cpu_bf16=False, surfaces=False, preview=False).asArgList()
    assert "--no-preview" in expected
    assert " ".join(expected) in " ".join(widget.job.command)
    widget.onApplyButton()  # Cancel: process killed, temporary files gone, scene unchanged
    assert widget.job.state == "cancelled" and ui.applyButton.text == "Apply"
    assert not Path(folder).exists() and scene.GetNumberOfNodes() == before

    widget.onApplyButton()
    folder = widget.jobFolder
    deadline = time.time() + 300
    while widget.job.poll() == "running" and time.time() < deadline:
        time.sleep(0.1)
    widget.onPoll()  # the timer's slot: loads the result
    assert widget.job.state == "done", widget.job.error
    assert errors == [] and not Path(folder).exists()
    segNode = widget._parameterNode.outputSegmentation
    assert segNode is not None and segNode.GetNodeReference(segNode.GetReferenceImageGeometryReferenceRole()) is volume
    assert widget._parameterNode.statistics is not None and ui.statusLabel.text.startswith("Done")
    assert widget._parameterNode.measures is not None
    ui.measuresTableView.setMRMLTableNode.assert_called_with(widget._parameterNode.measures)
