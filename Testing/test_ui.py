"""The module panel (.ui) loads with plain Qt, matches the module code, and gives the README screenshot.

Slicer's own widget classes are not available outside Slicer, so each is replaced by the Qt
class it behaves like (a collapsible button by a group box, a node selector by a combo box...)
before loading; the layout, names and dynamic properties stay as Slicer would load them.
"""
import ast
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")
from PySide6.QtCore import QBuffer, QByteArray, QIODevice  # noqa: E402
from PySide6.QtGui import QStandardItemModel  # noqa: E402
from PySide6.QtUiTools import QUiLoader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "InnerEarSeg" / "Resources" / "UI" / "InnerEarSeg.ui"
MODULE = ROOT / "InnerEarSeg" / "InnerEarSeg.py"
SCREENSHOT = ROOT / "docs" / "slicer_panel.png"
STAND_INS = {"qMRMLWidget": "QWidget", "ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox",
             "ctkSliderWidget": "QDoubleSpinBox", "ctkPathLineEdit": "QLineEdit", "qMRMLTableView": "QTableView"}


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
    """(name -> annotation source) of the module's parameterNodeWrapper class."""
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
    assert set(bound.values()) <= set(fields)
    assert set(fields) - set(bound.values()) == {"statistics"}  # set by code, shown in the table view
    for widget, field in bound.items():  # the dynamic property survives loading: Slicer binds by it
        assert panel.findChild(QtWidgets.QWidget, widget).property("SlicerParameterName") == field
    for widget, field in (("modalityComboBox", "modality"), ("deviceComboBox", "device")):
        combo = panel.findChild(QtWidgets.QComboBox, widget)
        items = [combo.itemText(i) for i in range(combo.count())]
        assert f"Choice({items!r})".replace("'", '"') in fields[field].replace("'", '"')


def test_screenshot(panel):
    """Fill the panel as Slicer shows it before a run and save docs/slicer_panel.png for the README
    (no numbers: nothing was segmented here)."""
    panel.findChild(QtWidgets.QComboBox, "inputVolumeSelector").addItem("T2 CISS temporal bone")
    panel.findChild(QtWidgets.QComboBox, "outputSegmentationSelector").addItem("Create new segmentation")
    panel.findChild(QtWidgets.QLabel, "modelCardLabel").setText("Bundled model: InnerEarSeg-synthetic "
                                                                 "(trained on synthetic images only)")
    panel.findChild(QtWidgets.QLabel, "statusLabel").setText("Select a volume and press Apply.")
    panel.findChild(QtWidgets.QPushButton, "applyButton").setEnabled(True)
    model = QStandardItemModel()
    model.setHorizontalHeaderLabels(["structure", "side", "voxels", "volume_mm3", "surface_area_mm2"])
    table = panel.findChild(QtWidgets.QTableView, "statisticsTableView")
    table.setModel(model)
    table.resizeColumnsToContents()
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
